package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"inbox/message"
	"inbox/process"
	"inbox/store"
	"inbox/twilio"
)

// The console: server-rendered pages over the same data as the API, with
// forms for the controls (docs/console.md). No script: every control is a
// form, every view a URL.

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// maxFormBody bounds what a console form may send.
const maxFormBody = 64 << 10

// consoleParams are what the Messages page's URL takes: the API's filter,
// and q, the search field.
var consoleParams = []string{"q", "direction", "status", "from", "to", "number", "account_sid", "source", "forward", "since", "until", "cursor"}

// console serves the pages.
type console struct {
	cfg      Config
	sessions *sessions
	pages    map[string]*template.Template
	logger   *slog.Logger
}

func newConsole(cfg Config, ss *sessions) *console {
	funcs := template.FuncMap{
		"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"age":     age,
		"short":   func(s string, n int) string { return shorten(s, n) },
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
		"forwardStates": store.ForwardStates,
		"safeHref": func(s string) template.URL {
			// Only web links: a stored media URL is Twilio's, but it came
			// over the wire.
			if u, err := url.Parse(s); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				return template.URL(u.String())
			}
			return "#"
		},
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "messages", "message", "forwarding", "retry", "accounts", "problem"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/base.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return &console{cfg: cfg, sessions: ss, pages: pages, logger: cfg.Logger}
}

// addConsoleRoutes adds the console's routes to r.
func (c *console) addRoutes(r *mux.Router) {
	static, _ := fs.Sub(staticFiles, "static")
	r.PathPrefix("/static/").Handler(withCache(http.StripPrefix("/static/", http.FileServerFS(static)))).Methods(http.MethodGet)

	s := r.NewRoute().Subrouter()
	s.Use(c.sessions.withSession, withPageHeaders)
	s.Handle("/", http.RedirectHandler("/messages", http.StatusSeeOther)).Methods(http.MethodGet)
	s.Handle("/login", c.handle(c.loginPage)).Methods(http.MethodGet)
	s.Handle("/login", c.form(c.login)).Methods(http.MethodPost)
	s.Handle("/logout", c.form(c.logout)).Methods(http.MethodPost)
	s.Handle("/messages", c.handle(c.messagesPage)).Methods(http.MethodGet)
	s.Handle("/messages/{sid}", c.handle(c.messagePage)).Methods(http.MethodGet)
	s.Handle("/messages/{sid}/forward", c.form(c.forwardAgain)).Methods(http.MethodPost)
	s.Handle("/accounts", c.handle(c.accountsPage)).Methods(http.MethodGet)
	if c.cfg.Forwarding != nil {
		s.Handle("/forwarding", c.handle(c.forwardingPage)).Methods(http.MethodGet)
		s.Handle("/forwarding/pause", c.form(c.pause)).Methods(http.MethodPost)
		s.Handle("/forwarding/resume", c.form(c.resume)).Methods(http.MethodPost)
		s.Handle("/forwarding/rate", c.form(c.setRate)).Methods(http.MethodPost)
		s.Handle("/forwarding/retry-failed", c.form(c.retryFailed)).Methods(http.MethodPost)
		s.Handle("/forwarding/retries/{id}", c.handle(c.retryPage)).Methods(http.MethodGet)
	}
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
	// Forwarding is whether the forwarding controls are served.
	Forwarding bool
	// Notice is a line on what the last action did.
	Notice string
	Data   any
}

// render writes page with data, as status.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, page, section, title string, data any) {
	s := sessionOf(r)
	v := view{Title: title, Section: section, CSRF: c.sessions.csrf(s), LoggedIn: c.cfg.Token != "" && s.authed,
		Auth: c.cfg.Token != "", RiverUI: c.cfg.RiverUI != nil, Forwarding: c.cfg.Forwarding != nil,
		Notice: notices[r.URL.Query().Get("done")], Data: data}
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

// notices are the lines a redirect after an action shows, by its done=
// value: fixed text, so no URL can make the console say anything else.
var notices = map[string]string{
	"forwarded": "A new forward of this message is queued.",
	"pending":   "A replay of this message is already queued; no other was added.",
	"paused":    "Forwarding is paused. Messages are still stored; their forwards wait.",
	"resumed":   "Forwarding resumed: the forwards that waited are being sent.",
	"rate":      "Delivery rate saved.",
	"unlimited": "Delivery rate lifted: forwards go as fast as the workers take them.",
	"retrying":  "Bulk retry started.",
	"running":   "A bulk retry is already under way; this one shows its progress. No other was started.",
	"unchanged": "Nothing changed: forwarding already was as asked.",
}

// handle adapts a page handler: an error becomes a page saying what went
// wrong, with its status.
func (c *console) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			c.problem(w, r, err)
		}
	})
}

func (c *console) problem(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := errors.AsType[*apiError](controlError(err))
	if !ok {
		ae = &apiError{status: http.StatusInternalServerError, detail: "internal error: the log has the cause", err: err}
	}
	if ae.status >= 500 {
		c.logger.ErrorContext(r.Context(), "console request failed", "path", r.URL.Path, "status", ae.status, "err", err)
	} else {
		c.logger.WarnContext(r.Context(), "console request refused", "path", r.URL.Path, "status", ae.status, "reason", ae.detail)
	}
	c.render(w, r, ae.status, "problem", "", http.StatusText(ae.status), struct{ Detail string }{ae.detail})
}

// form adapts the handler of a console form: it reads the form, bounded,
// and refuses it, 403, unless it carries the CSRF token of the session that
// sent it. A form from another site cannot (it cannot read the token, and
// the browser sends no session with it), nor can one from a session that
// ended.
func (c *console) form(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return c.handle(func(w http.ResponseWriter, r *http.Request) error {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			return &apiError{status: http.StatusBadRequest, detail: "the form could not be read: " + truncate(err.Error())}
		}
		if !c.sessions.checkCSRF(sessionOf(r), r.PostForm.Get(csrfField)) {
			c.logger.WarnContext(r.Context(), "console form refused: its CSRF token is not this session's",
				"path", r.URL.Path, "origin", truncate(r.Header.Get("Origin")), "remote", r.RemoteAddr)
			return &apiError{status: http.StatusForbidden,
				detail: "this form was not sent by this console session (it is from an earlier session, or another site): reload the page and try again"}
		}
		return fn(w, r)
	})
}

// back redirects, after a form, to path with done= the notice to show.
func back(w http.ResponseWriter, r *http.Request, path, done string) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	http.Redirect(w, r, path+sep+"done="+done, http.StatusSeeOther)
	return nil
}

// Login.

type loginView struct {
	Next  string
	Error string
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) error {
	next := localPath(r.URL.Query().Get("next"))
	if c.cfg.Token == "" || sessionOf(r).authed {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	c.render(w, r, http.StatusOK, "login", "", "Log in", loginView{Next: next})
	return nil
}

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

// Messages.

type messagesView struct {
	// Q is the page's parameters, as the filter form shows them.
	Q        map[string]string
	Filtered bool
	Error    string
	Rows     []messageRow
	// Next is the URL of the next page, "" on the last.
	Next string
	// RetryURL is the Forwarding page with the same filter.
	RetryURL string
}

type messageRow struct {
	message.Message
	Forward string
}

// consoleQuery reads a console page's query: each parameter at most once,
// empty fields (a GET form sends every field) dropped, and the browser's
// datetime-local values (no zone) taken as UTC.
func consoleQuery(r *http.Request) (map[string]string, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	delete(q, "done")
	for k, v := range q {
		v = strings.TrimSpace(v)
		if v == "" {
			delete(q, k)
			continue
		}
		if k == "since" || k == "until" {
			for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
				if t, err := time.Parse(layout, v); err == nil {
					v = t.UTC().Format(time.RFC3339)
					break
				}
			}
		}
		q[k] = v
	}
	return q, nil
}

func (c *console) messagesPage(w http.ResponseWriter, r *http.Request) error {
	q, err := consoleQuery(r)
	if err != nil {
		return err
	}
	v := messagesView{Q: q}
	// The search field: a message sid opens its story, an account sid
	// filters by account, anything else is a phone number.
	if s, ok := q["q"]; ok {
		switch {
		case twilio.IsMessageSID(s):
			http.Redirect(w, r, "/messages/"+s, http.StatusSeeOther)
			return nil
		case twilio.IsAccountSID(s):
			q["account_sid"] = s
		default:
			q["number"] = s
		}
	}
	filter := maps.Clone(q)
	delete(filter, "q")
	f, err := parseFilter(filter, consoleParams)
	if err != nil {
		ae, _ := errors.AsType[*apiError](err)
		if ae == nil {
			return err
		}
		v.Error = ae.detail
		c.render(w, r, http.StatusBadRequest, "messages", "messages", "Messages", v)
		return nil
	}
	ms, err := c.cfg.Store.ListMessages(r.Context(), f)
	if err != nil {
		return err
	}
	if v.Rows, err = c.withForwardStates(r, ms); err != nil {
		return err
	}
	delete(filter, "cursor")
	v.Filtered = len(filter) > 0
	if next := nextCursor(ms, f.Limit); next != nil {
		v.Next = "/messages?" + encode(q, "cursor", *next)
	}
	// The Forwarding page lists failed forwards only: a filter on another
	// state would match none there.
	if fw := filter["forward"]; fw != store.ForwardFailed && fw != store.ForwardCancelled {
		delete(filter, "forward")
	}
	v.RetryURL = "/forwarding?" + encode(filter, "", "")
	c.render(w, r, http.StatusOK, "messages", "messages", "Messages", v)
	return nil
}

func (c *console) withForwardStates(r *http.Request, ms []message.Message) ([]messageRow, error) {
	sids := make([]string, len(ms))
	for i, m := range ms {
		sids[i] = m.SID()
	}
	states, err := c.cfg.Store.ForwardStatesOf(r.Context(), sids)
	if err != nil {
		return nil, err
	}
	rows := make([]messageRow, len(ms))
	for i, m := range ms {
		rows[i] = messageRow{Message: m, Forward: states[m.SID()]}
	}
	return rows, nil
}

// encode is q as a query string, with key set to value when key is not "".
func encode(q map[string]string, key, value string) string {
	vs := url.Values{}
	for k, v := range q {
		vs.Set(k, v)
	}
	if key != "" {
		vs.Set(key, value)
	}
	return vs.Encode()
}

// One message.

type messageView struct {
	M          message.Message
	Forward    string
	Events     []message.StatusEvent
	Jobs       []store.Job
	Params     [][2]string
	Processing bool
}

func (c *console) messagePage(w http.ResponseWriter, r *http.Request) error {
	sid, err := sidParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	m, err := c.cfg.Store.GetMessageBySID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{status: http.StatusNotFound, detail: "No message with sid " + sid + " is stored."}
	} else if err != nil {
		return err
	}
	v := messageView{M: m, Processing: c.cfg.ForwardAttempts > 0}
	if v.Events, err = c.cfg.Store.ListStatusEvents(ctx, sid, maxDetailRows); err != nil {
		return err
	}
	if v.Jobs, err = c.cfg.Store.MessageJobs(ctx, sid, maxDetailRows); err != nil {
		return err
	}
	states, err := c.cfg.Store.ForwardStatesOf(ctx, []string{sid})
	if err != nil {
		return err
	}
	v.Forward = states[sid]
	for _, k := range slices.Sorted(maps.Keys(m.Metadata.Params)) {
		v.Params = append(v.Params, [2]string{k, m.Metadata.Params[k]})
	}
	c.render(w, r, http.StatusOK, "message", "messages", sid, v)
	return nil
}

// forwardAgain is the Forward again button: a replay, as POST
// /api/messages/{sid}/forward makes.
func (c *console) forwardAgain(w http.ResponseWriter, r *http.Request) error {
	sid, err := sidParam(r)
	if err != nil {
		return err
	}
	if c.cfg.ForwardAttempts == 0 {
		return process.ErrProcessingOff
	}
	job, created, err := c.cfg.Store.InsertMessageJob(r.Context(), sid, c.cfg.ForwardAttempts)
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{status: http.StatusNotFound, detail: "No inbound message with sid " + sid + ": only inbound messages are forwarded."}
	} else if err != nil {
		return err
	}
	if !created {
		return back(w, r, "/messages/"+sid, "pending")
	}
	c.logger.InfoContext(r.Context(), "forward requested again from the console", "sid", sid, "job", job.ID)
	return back(w, r, "/messages/"+sid, "forwarded")
}

// Forwarding.

type forwardingView struct {
	State   process.State
	Retries []store.RetryRun
	// Q is the filter of the failing messages and of Retry all failed.
	Q       map[string]string
	Error   string
	Failing []messageRow
	// MoreFailing is whether more failing messages match than are shown.
	MoreFailing bool
}

// failingShown is how many failing messages the Forwarding page lists.
const failingShown = 20

func (c *console) forwardingPage(w http.ResponseWriter, r *http.Request) error {
	op := c.cfg.Forwarding
	st, err := op.State(r.Context())
	if err != nil {
		return err
	}
	v := forwardingView{State: st}
	if v.Retries, err = op.RetryRuns(r.Context(), 5); err != nil {
		return err
	}
	q, err := consoleQuery(r)
	if err != nil {
		return err
	}
	delete(q, "cursor")
	delete(q, "q")
	v.Q = q
	f, err := parseFilter(q, retryParams)
	status := http.StatusOK
	if err != nil {
		ae, _ := errors.AsType[*apiError](err)
		if ae == nil {
			return err
		}
		v.Error, status = ae.detail, http.StatusBadRequest
	} else {
		f.Limit = failingShown + 1
		for _, s := range f.Forward {
			if s != store.ForwardFailed && s != store.ForwardCancelled {
				v.Error, status = "The failed forwards are the failed and the cancelled ones: forward must be failed or cancelled here.", http.StatusBadRequest
			}
		}
		if len(f.Forward) == 0 {
			f.Forward = []string{store.ForwardFailed, store.ForwardCancelled}
		}
		ms, err := c.cfg.Store.ListMessages(r.Context(), f)
		if err != nil {
			return err
		}
		if len(ms) > failingShown {
			ms, v.MoreFailing = ms[:failingShown], true
		}
		if v.Failing, err = c.withForwardStates(r, ms); err != nil {
			return err
		}
	}
	c.render(w, r, status, "forwarding", "forwarding", "Forwarding", v)
	return nil
}

func (c *console) pause(w http.ResponseWriter, r *http.Request) error {
	detail := strings.TrimSpace(r.PostForm.Get("detail"))
	if len(detail) > 200 || !message.Storable(detail) {
		return &apiError{status: http.StatusBadRequest, detail: "the note must be at most 200 bytes of text"}
	}
	changed, err := c.cfg.Forwarding.Pause(r.Context(), detail)
	if err != nil {
		return err
	}
	return back(w, r, "/forwarding", doneIf(changed, "paused"))
}

func (c *console) resume(w http.ResponseWriter, r *http.Request) error {
	changed, err := c.cfg.Forwarding.Resume(r.Context())
	if err != nil {
		return err
	}
	return back(w, r, "/forwarding", doneIf(changed, "resumed"))
}

func doneIf(changed bool, done string) string {
	if changed {
		return done
	}
	return "unchanged"
}

func (c *console) setRate(w http.ResponseWriter, r *http.Request) error {
	raw := strings.TrimSpace(r.PostForm.Get("per_second"))
	if raw == "" {
		if err := c.cfg.Forwarding.SetRate(r.Context(), nil); err != nil {
			return err
		}
		return back(w, r, "/forwarding", "unlimited")
	}
	rate, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, detail: fmt.Sprintf("the rate must be a number of forwards a second, or empty for unlimited; got %q", truncate(raw))}
	}
	if err := c.cfg.Forwarding.SetRate(r.Context(), &rate); err != nil {
		return err
	}
	return back(w, r, "/forwarding", "rate")
}

// retryFailed is Retry all failed: the filter comes as the form's hidden
// fields, the ones the page was shown with.
func (c *console) retryFailed(w http.ResponseWriter, r *http.Request) error {
	q := map[string]string{}
	for k, vs := range r.PostForm {
		if k == csrfField || len(vs) == 0 || strings.TrimSpace(vs[0]) == "" {
			continue
		}
		if len(vs) > 1 {
			return badParam(k, "parameter "+strconv.Quote(truncate(k))+" is repeated")
		}
		q[k] = strings.TrimSpace(vs[0])
	}
	f, err := parseFilter(q, retryParams)
	if err != nil {
		return err
	}
	run, created, err := c.cfg.Forwarding.RetryFailed(r.Context(), f)
	if err != nil {
		return err
	}
	done := "running"
	if created {
		done = "retrying"
	}
	return back(w, r, "/forwarding/retries/"+strconv.FormatInt(run.ID, 10), done)
}

type retryView struct {
	Run store.RetryRun
}

func (c *console) retryPage(w http.ResponseWriter, r *http.Request) error {
	run, err := retryRun(r, c.cfg.Forwarding)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "retry", "forwarding", "Bulk retry "+strconv.FormatInt(run.ID, 10), retryView{Run: run})
	return nil
}

// Accounts.

func (c *console) accountsPage(w http.ResponseWriter, r *http.Request) error {
	accounts, err := listAccounts(r, c.cfg)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "accounts", "accounts", "Accounts", accounts)
	return nil
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

// shorten cuts s to n runes, with an ellipsis.
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
