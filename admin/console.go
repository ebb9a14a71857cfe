package admin

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"inbox/destination"
	"inbox/internal/clip"
	"inbox/media"
)

// The console: server-rendered pages over the same services as the API,
// with forms for the controls (docs/console.md), a page per page_*.go
// file. No script: every control is a form, every view a URL.

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// maxFormBody bounds what a console form may send.
const maxFormBody = 64 << 10

// console serves the pages.
type console struct {
	cfg      Config
	sessions *sessions
	guesses  *guesses // the login form's wrong tokens
	pages    map[string]*template.Template
	logger   *slog.Logger
}

// templateFuncs are what the pages' templates may call.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"age":     age,
		"short":   shorten,
		"deref":   func(s *string) string { return derefOr(s, "") },
		"derefTime": func(t *time.Time) time.Time {
			if t == nil {
				return time.Time{}
			}
			return *t
		},
		"seconds": func(d time.Duration) string { return d.Round(time.Second).String() },
		"rate": func(r *float64) string {
			if r == nil {
				return ""
			}
			return strconv.FormatFloat(*r, 'f', -1, 64)
		},
		"forwardStates": destination.ForwardStates,
		// inlineImage: a medium the story shows in place; its bytes come
		// from the console (the session), never from Twilio.
		"inlineImage": func(ct string) bool { return strings.HasPrefix(ct, "image/") && media.Inline(ct) },
		"bytes":       formatBytes,
		"num":         func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
		"lower":       strings.ToLower,
		"millis":      func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"safeHref": func(s string) template.URL {
			// Only web links: a stored media URL is Twilio's, but it came
			// over the wire.
			if u, err := url.Parse(s); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				return template.URL(u.String())
			}
			return "#"
		},
	}
}

func newConsole(cfg Config, ss *sessions, g *guesses) *console {
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "overview", "messages", "message", "forwarding", "retry", "accounts", "destinations", "destination", "problem"} {
		pages[name] = template.Must(template.New(name).Funcs(templateFuncs()).ParseFS(templateFiles,
			"templates/base.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return &console{cfg: cfg, sessions: ss, guesses: g, pages: pages, logger: cfg.Logger}
}

// withPageHeaders keeps the console's pages out of frames (a hidden
// frame would let another site make an operator click), caches and other
// origins.
func withPageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func withCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// view is what every page's template gets.
type view struct {
	Title string
	// Section is the navigation entry the page is under.
	Section  string
	CSRF     string
	LoggedIn bool
	// Auth is whether the listener needs a token (and so a login).
	Auth    bool
	RiverUI bool
	// Notice is a line on what the last action did.
	Notice string
	Data   any
}

// render writes page with data, as status.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, page, section, title string, data any) {
	s := sessionOf(r)
	v := view{Title: title, Section: section, CSRF: c.sessions.csrf(s), LoggedIn: c.cfg.Token != "" && s.authed,
		Auth: c.cfg.Token != "", RiverUI: c.cfg.RiverUI != nil, Notice: takeNotice(w, r), Data: data}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "base", v); err != nil {
		c.logger.ErrorContext(r.Context(), "console page failed to render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// notices are the lines a redirect after an action shows, by the key its
// form left (back): fixed text, so nothing can make the console say
// anything else.
var notices = map[string]string{
	"forwarded":           "A new forward of this message is queued.",
	"pending":             "A replay of this message is already queued; no other was added.",
	"paused":              "Forwarding is paused. Messages are still stored; their forwards wait.",
	"resumed":             "Forwarding resumed: the forwards that waited are being sent.",
	"rate":                "Delivery rate saved.",
	"unlimited":           "Delivery rate lifted: forwards go as fast as the workers take them.",
	"retrying":            "Bulk retry started.",
	"running":             "A bulk retry is already under way; this one shows its progress. No other was started.",
	"unchanged":           "Nothing changed: it already was as asked.",
	"destination-paused":  "Paused. Messages are still stored; this destination's deliveries wait.",
	"destination-resumed": "Resumed: the deliveries that waited are being sent.",
}

// page adapts a page handler: an error becomes a page saying what went
// wrong, with its status (statusOf, as the API's).
func (c *console) page(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			ae := statusOf(r, c.logger, err)
			c.render(w, r, ae.status, "problem", "", http.StatusText(ae.status), struct{ Detail string }{capitalize(ae.detail)})
		}
	})
}

// form adapts the handler of a console form: it reads the form, bounded,
// and refuses it, 403, unless it carries the CSRF token of the session that
// sent it. A form from another site cannot (it cannot read the token, and
// the browser sends no session with it), nor can one from a session that
// ended.
func (c *console) form(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return c.page(func(w http.ResponseWriter, r *http.Request) error {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			return &apiError{status: http.StatusBadRequest, detail: "the form could not be read: " + clip.Clip(err.Error())}
		}
		if !c.sessions.checkCSRF(sessionOf(r), r.PostForm.Get(csrfField)) {
			c.logger.WarnContext(r.Context(), "console form refused: its CSRF token is not this session's",
				"path", r.URL.Path, "origin", clip.Clip(r.Header.Get("Origin")), "remote", r.RemoteAddr)
			return &apiError{status: http.StatusForbidden,
				detail: "this form was not sent by this console session (it is from an earlier session, or another site): reload the page and try again"}
		}
		return fn(w, r)
	})
}

// noticeCookie carries, from a form to the page it redirects to, the key
// of the notice that page shows once: in the URL, the notice came back on
// every reload.
const noticeCookie = "inbox_notice"

// back redirects, after a form, to path, which shows the notice done once.
func back(w http.ResponseWriter, r *http.Request, path, done string) error {
	http.SetCookie(w, &http.Cookie{Name: noticeCookie, Value: done, Path: "/", MaxAge: 60, HttpOnly: true, Secure: overHTTPS(r),
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

// takeNotice returns the notice a form left for this page, and clears it.
func takeNotice(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(noticeCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: noticeCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: overHTTPS(r), SameSite: http.SameSiteStrictMode})
	return notices[c.Value]
}

// doneIf is done when a control changed something, else otherwise.
func doneIf(changed bool, done, otherwise string) string {
	if changed {
		return done
	}
	return otherwise
}

// capitalize starts a detail as a sentence on a page: the API's
// "no message with sid SM…" is the console's "No message with sid SM…".
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// age says how long ago t was, roughly, as people say it.
func age(t time.Time) string {
	d := time.Since(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	default:
		s = fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// shorten cuts s to n runes, with an ellipsis: how a list shows a body.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func derefOr(s *string, or string) string {
	if s == nil {
		return or
	}
	return *s
}

// formatBytes is n bytes in the unit that reads best.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
