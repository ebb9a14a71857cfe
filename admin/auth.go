package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// withAuth requires token on every request but the login page's: as
// "Authorization: Bearer <token>", as the password of Basic auth (any user
// name), or as the console's session cookie, which the login form sets.
// Both sides of a token are hashed before the constant-time comparison, so
// neither the token's bytes nor its length leak through timing. A console
// page asked for without any goes to the login form; anything else is
// answered 401. An empty token lets every request through. Wrong tokens
// are throttled, counted and logged in aggregate (g).
func withAuth(token string, ss *sessions, g *guesses, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authedKey{}, true)))
			return
		}
		if got := presented(r); got != "" {
			if g.throttled(w, r) {
				return
			}
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authedKey{}, true)))
				return
			}
			g.failed(r, "wrong_token")
			refuseAuth(w)
			return
		}
		if s, ok := ss.get(r); (ok && s.authed) || publicPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if consolePath(r.URL.Path) && safeMethod(r.Method) {
			// A browser without a session: to the login form, and back.
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		g.refused(r, clientOf(r), "no_credentials")
		refuseAuth(w)
	})
}

// refuseAuth answers 401, saying which credentials would do.
func refuseAuth(w http.ResponseWriter) {
	w.Header().Add("WWW-Authenticate", `Bearer realm="inbox admin"`)
	w.Header().Add("WWW-Authenticate", `Basic realm="inbox admin", charset="UTF-8"`)
	writeProblem(w, http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer, Basic with the token as password, or the console's login at /login)", "")
}

// presented returns the token a request carries: a bearer token, or Basic
// auth's password.
func presented(r *http.Request) string {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// consolePath reports whether path is one of the console's pages or
// forms (console.go) rather than the API's, the metrics', River UI's or
// pprof's.
func consolePath(path string) bool {
	if path == "/" {
		return true
	}
	for _, p := range []string{"/login", "/logout", "/messages", "/forwarding", "/destinations", "/accounts"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// publicPath reports whether path is served without a token: the login
// form, the console's stylesheet, and the icon every browser asks for.
func publicPath(path string) bool {
	return path == "/login" || path == "/favicon.ico" || strings.HasPrefix(path, "/static/")
}
