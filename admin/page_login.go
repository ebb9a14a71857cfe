package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
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
	got := sha256.Sum256([]byte(r.PostForm.Get("token")))
	want := sha256.Sum256([]byte(c.cfg.Token))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		c.logger.WarnContext(r.Context(), "console login refused: wrong token", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", "", "Log in",
			loginView{Next: next, Error: "That is not this server's admin token (ADMIN_TOKEN)."})
		return nil
	}
	c.sessions.issue(w, r, true)
	c.logger.InfoContext(r.Context(), "console login", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// logout answers POST /logout.
func (c *console) logout(w http.ResponseWriter, r *http.Request) error {
	c.sessions.clear(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// localPath returns p when it is a path on this listener, else /messages:
// a login must not send the browser anywhere else.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") || p == "/login" {
		return "/messages"
	}
	return p
}
