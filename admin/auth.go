package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
)

// withAuth requires token on every request, as "Authorization: Bearer
// <token>" or as the password of Basic auth (any user name), so a browser
// can open /riverui/. Both sides are hashed before the constant-time
// comparison, so neither the token's bytes nor its length leak through
// timing. An empty token lets every request through.
func withAuth(token string, logger *slog.Logger, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, scheme := presented(r)
		sum := sha256.Sum256([]byte(got))
		if got == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			reason := "no credentials"
			if got != "" {
				reason = "wrong " + scheme + " token"
			}
			logger.WarnContext(r.Context(), "admin request refused", "reason", reason, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Add("WWW-Authenticate", `Bearer realm="inbox admin"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="inbox admin", charset="UTF-8"`)
			writeProblem(w, http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer, or Basic with the token as password)", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// presented returns the token a request carries and how: a bearer token,
// or Basic auth's password.
func presented(r *http.Request) (token, scheme string) {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass, "basic"
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), "bearer"
	}
	return "", ""
}
