package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
)

// loginView is what the login page shows.
type loginView struct {
	Next  string
	Error string
}

// loginPage answers GET /login: the form that asks for ADMIN_TOKEN.
func (c *console) loginPage(w http.ResponseWriter, r *http.Request) error {
	next := localPath(r.URL.Query().Get("next"))
	if c.cfg.Token == "" || sessionOf(r).authed {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	c.render(w, r, http.StatusOK, "login", "", "Log in", loginView{Next: next})
	return nil
}

// login answers POST /login: a session for the right token.
func (c *console) login(w http.ResponseWriter, r *http.Request) error {
	next := localPath(r.PostForm.Get("next"))
	if c.cfg.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	if c.guesses.overLimit(r) {
		c.guesses.refused(r, clientOf(r), "throttled")
		w.Header().Set("Retry-After", strconv.Itoa(guessRetryAfter))
		c.render(w, r, http.StatusTooManyRequests, "login", "", "Log in",
			loginView{Next: next, Error: "Too many wrong tokens from this address: wait a minute, then try again."})
		return nil
	}
	got := sha256.Sum256([]byte(r.PostForm.Get("token")))
	want := sha256.Sum256([]byte(c.cfg.Token))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		c.guesses.failed(r, "wrong_token")
		c.render(w, r, http.StatusUnauthorized, "login", "", "Log in",
			loginView{Next: next, Error: "That is not this server's admin token (ADMIN_TOKEN)."})
		return nil
	}
	c.sessions.issue(w, r, true)
	c.logger.InfoContext(r.Context(), "console login", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// logout answers POST /logout: it ends every session issued before it,
// this one and any copy of its cookie, on every replica.
func (c *console) logout(w http.ResponseWriter, r *http.Request) error {
	if err := c.sessions.revoke(r.Context()); err != nil {
		return err
	}
	c.sessions.clear(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// localPath returns p when it is a path on this listener, else /messages:
// a login must not send the browser anywhere else. A browser removes tabs
// and newlines anywhere in a URL and control characters and spaces at its
// ends, reads a backslash as a slash, and takes "//" for another host: so
// only printable ASCII without backslash or space passes, starting with one
// slash, and "/login" (which would loop) does not.
func localPath(p string) string {
	const fallback = "/messages"
	if len(p) < 1 || p[0] != '/' || strings.HasPrefix(p, "//") || p == "/login" || len(p) > 2048 {
		return fallback
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return fallback
		}
	}
	return p
}
