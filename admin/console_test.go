package admin_test

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"inbox/account"
	"inbox/admin"
	"inbox/internal/fixture"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/message"
	"inbox/metrics"
	"inbox/store"
)

const consoleToken = "console-test-token-0123456789"

// browser is a cookie-keeping client that does not follow redirects, so a
// test sees each 303.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form as a browser on the console's own page would: with
// the console's Origin and Sec-Fetch-Site same-origin.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	return b.postFrom(path, form, b.base, "same-origin")
}

func (b *browser) postFrom(path string, form url.Values, origin, site string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	return b.do(req)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	resp, body := b.get(path)
	m := csrfInput.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token in\n%s", path, resp.StatusCode, body)
	}
	return m[1]
}

// login logs in with token and fails the test unless it worked.
func (b *browser) login(token string) {
	b.t.Helper()
	resp, body := b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "token": {token}, "next": {"/forwarding"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/forwarding" {
		b.t.Fatalf("login: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

func (f *harness) paused(t *testing.T) bool {
	t.Helper()
	var reason *string
	if err := f.pool.QueryRow(t.Context(), `SELECT paused_reason FROM forwarding_control`).Scan(&reason); err != nil {
		t.Fatal(err)
	}
	return reason != nil
}

func withToken(c *admin.Config) { c.Token = consoleToken }

// TestConsoleRefusesWithoutASession: with a token, a page asked for without
// a session goes to the login form, a form or the API without one is
// refused, a wrong token logs nothing in, and the right one sets a session
// cookie a script cannot read and no other site's request carries.
func TestConsoleRefusesWithoutASession(t *testing.T) {
	t.Parallel()
	f := setupWith(t, withToken)
	b := newBrowser(t, f.url)
	for _, path := range []string{"/", "/messages", "/forwarding", "/accounts", "/messages/" + fixture.SID()} {
		resp, _ := b.get(path)
		if path == "/" && resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/messages" {
			continue // / is the messages page, which then asks for a login
		}
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without a session: %d %s, want 303 to the login form", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, path := range []string{"/forwarding/pause", "/forwarding/retry-failed", "/messages/" + fixture.SID() + "/forward"} {
		resp, _ := b.post(path, url.Values{"csrf": {"x"}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d, want 401", path, resp.StatusCode)
		}
	}
	if f.paused(t) {
		t.Fatal("a form without a session paused forwarding")
	}

	resp, body := b.get("/login")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<label for="token">Token</label>`) ||
		!strings.Contains(body, `type="password"`) {
		t.Fatalf("login form: %d\n%s", resp.StatusCode, body)
	}
	resp, body = b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "token": {"not-the-token-at-all"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not this server") {
		t.Fatalf("a wrong token: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := b.get("/messages"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after a wrong token, /messages: %d, want still the login form", resp.StatusCode)
	}

	resp, _ = b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "token": {consoleToken}, "next": {"/accounts"}})
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/accounts" ||
		!strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, "Secure") {
		t.Fatalf("login: %d %s, cookie %q; want 303 back, HttpOnly, SameSite=Strict, not Secure over http", resp.StatusCode, resp.Header.Get("Location"), cookie)
	}
	for _, path := range []string{"/messages", "/forwarding", "/accounts", "/api/forwarding"} {
		if resp, body := b.get(path); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the session: %d\n%s", path, resp.StatusCode, body)
		}
	}
	// Behind a proxy that speaks https, the cookie is Secure.
	b = newBrowser(t, f.url)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/login", strings.NewReader(url.Values{
		"csrf": {b.csrf("/login")}, "token": {consoleToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	if resp, _ := b.do(req); !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Fatalf("login over https: cookie %q, want Secure", resp.Header.Get("Set-Cookie"))
	}
	// A login cannot send the browser elsewhere.
	b = newBrowser(t, f.url)
	resp, _ = b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "token": {consoleToken}, "next": {"//evil.example/"}})
	if resp.Header.Get("Location") != "/messages" {
		t.Fatalf("login with next=//evil.example/: to %q, want /messages", resp.Header.Get("Location"))
	}
}

// TestForgedCrossSiteFormIsRefused: a logged-in operator's browser made
// to post the console's forms by another site: refused whether the
// browser says where the form came from (403 before any handler) or, an
// old one, says nothing and so the form lacks the session's CSRF token
// (403); forwarding stays as it was.
func TestForgedCrossSiteFormIsRefused(t *testing.T) {
	t.Parallel()
	f := setupWith(t, withToken)
	b := newBrowser(t, f.url)
	b.login(consoleToken)
	token := b.csrf("/forwarding")
	for name, try := range map[string]func() (*http.Response, string){
		"cross-site, with the token": func() (*http.Response, string) {
			return b.postFrom("/forwarding/pause", url.Values{"csrf": {token}}, "https://evil.example", "cross-site")
		},
		"another origin": func() (*http.Response, string) {
			return b.postFrom("/forwarding/pause", url.Values{"csrf": {token}}, "https://evil.example", "")
		},
		"no origin, no token": func() (*http.Response, string) {
			return b.postFrom("/forwarding/pause", url.Values{}, "", "")
		},
		"no origin, a made-up token": func() (*http.Response, string) {
			return b.postFrom("/forwarding/pause", url.Values{"csrf": {"bm90LWEtdG9rZW4"}}, "", "")
		},
		"a bulk retry, no token": func() (*http.Response, string) {
			return b.postFrom("/forwarding/retry-failed", url.Values{}, "", "")
		},
	} {
		if resp, body := try(); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403\n%s", name, resp.StatusCode, body)
		}
	}
	var runs int
	if err := f.pool.QueryRow(t.Context(), `SELECT count(*) FROM forward_retries`).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	if f.paused(t) || runs != 0 {
		t.Fatalf("after forged forms: paused %v, %d bulk retries; want nothing changed", f.paused(t), runs)
	}
	// The same form from the console itself works.
	if resp, _ := b.post("/forwarding/pause", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther || !f.paused(t) {
		t.Fatalf("the console's own pause: %d, paused %v", resp.StatusCode, f.paused(t))
	}
}

// TestStaleCSRFTokenIsRefused: a form's token from an earlier session
// (logged out, logged in again) is refused in the new one.
func TestStaleCSRFTokenIsRefused(t *testing.T) {
	t.Parallel()
	f := setupWith(t, withToken)
	b := newBrowser(t, f.url)
	b.login(consoleToken)
	stale := b.csrf("/forwarding")
	if resp, _ := b.post("/logout", url.Values{"csrf": {stale}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/forwarding"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout, /forwarding: %d, want the login form", resp.StatusCode)
	}
	b.login(consoleToken)
	resp, body := b.post("/forwarding/pause", url.Values{"csrf": {stale}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "reload the page") || f.paused(t) {
		t.Fatalf("a stale token: %d, paused %v\n%s", resp.StatusCode, f.paused(t), body)
	}
	// Without a token at all, the console needs no login, but its forms
	// still need the page's token.
	open := setup(t)
	o := newBrowser(t, open.url)
	if resp, _ := o.post("/forwarding/pause", url.Values{"csrf": {stale}}); resp.StatusCode != http.StatusForbidden || open.paused(t) {
		t.Fatalf("no-token console, a foreign token: %d", resp.StatusCode)
	}
	if resp, _ := o.post("/forwarding/pause", url.Values{"csrf": {o.csrf("/forwarding")}}); resp.StatusCode != http.StatusSeeOther || !open.paused(t) {
		t.Fatalf("no-token console, its own token: %d", resp.StatusCode)
	}
}

// TestBulkRetryTwiceAtOnceMakesOneJob: 20 presses of Retry all failed at
// once, through the API and the console: one background job, one run, and
// every answer names it.
func TestBulkRetryTwiceAtOnceMakesOneJob(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := newBrowser(t, f.url)
	token := b.csrf("/forwarding")
	var wg sync.WaitGroup
	ids := make(chan string, 20)
	created := make(chan bool, 20)
	for i := range 20 {
		wg.Go(func() {
			if i%2 == 0 {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/api/forwarding/retry-failed", strings.NewReader(`{}`))
				req.Header.Set("Content-Type", "application/json")
				resp, body := b.do(req)
				var run struct {
					ID      int64 `json:"id"`
					Created bool  `json:"created"`
				}
				if err := json.Unmarshal([]byte(body), &run); err != nil || (resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK) ||
					run.Created != (resp.StatusCode == http.StatusAccepted) {
					t.Errorf("API: %d %s", resp.StatusCode, body)
					return
				}
				ids <- fmt.Sprint(run.ID)
				created <- run.Created
				return
			}
			resp, _ := b.post("/forwarding/retry-failed", url.Values{"csrf": {token}})
			loc := resp.Header.Get("Location")
			id, ok := strings.CutPrefix(loc, "/forwarding/retries/")
			done := noticeOf(resp)
			if resp.StatusCode != http.StatusSeeOther || !ok || done == "" {
				t.Errorf("console: %d %s", resp.StatusCode, loc)
				return
			}
			ids <- id
			created <- done == "retrying"
		})
	}
	wg.Wait()
	close(ids)
	close(created)
	distinct := map[string]bool{}
	for id := range ids {
		distinct[id] = true
	}
	news := 0
	for c := range created {
		if c {
			news++
		}
	}
	var jobs, runs int
	if err := f.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM river_job WHERE kind = 'inbox_retry_failed'), (SELECT count(*) FROM forward_retries)`).Scan(&jobs, &runs); err != nil {
		t.Fatal(err)
	}
	if len(distinct) != 1 || news != 1 || jobs != 1 || runs != 1 {
		t.Fatalf("20 presses at once: answers named runs %v, %d said new, %d jobs, %d runs; want one of each", distinct, news, jobs, runs)
	}
	for id := range distinct {
		if resp, body := b.get("/forwarding/retries/" + id); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Under way") {
			t.Fatalf("the run's page: %d\n%s", resp.StatusCode, body)
		}
	}
}

// TestControlsThroughTheAPI: pause, resume and the rate as a script sets
// them, and what the API refuses.
func TestControlsThroughTheAPI(t *testing.T) {
	t.Parallel()
	f := setup(t)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, f.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, out := call(http.MethodPost, "/api/forwarding/pause", `{"detail":"deploy"}`); st != 200 || out["paused"] != true || out["changed"] != true ||
		out["paused_reason"] != "operator" || out["paused_detail"] != "deploy" {
		t.Fatalf("pause: %d %v", st, out)
	}
	if st, out := call(http.MethodPost, "/api/forwarding/pause", ``); st != 200 || out["changed"] != false || out["paused_detail"] != "deploy" {
		t.Fatalf("pause again: %d %v", st, out)
	}
	if st, out := call(http.MethodPost, "/api/forwarding/resume", ``); st != 200 || out["paused"] != false || out["changed"] != true {
		t.Fatalf("resume: %d %v", st, out)
	}
	if st, out := call(http.MethodPut, "/api/forwarding/rate", `{"per_second": 50}`); st != 200 || out["rate_per_second"] != 50.0 {
		t.Fatalf("rate: %d %v", st, out)
	}
	if st, out := call(http.MethodPut, "/api/forwarding/rate", `{"per_second": null}`); st != 200 || out["rate_per_second"] != nil {
		t.Fatalf("unlimited: %d %v", st, out)
	}
	for body, want := range map[string]int{`{"per_second": 0}`: 400, `{"per_second": -3}`: 400, `{"per_second": 1e9}`: 400, `{"per_second": "fast"}`: 400, `[`: 400} {
		if st, out := call(http.MethodPut, "/api/forwarding/rate", body); st != want {
			t.Errorf("rate %s: %d %v, want %d", body, st, out, want)
		}
	}
	for body, want := range map[string]int{`{"forward": "forwarded"}`: 400, `{"colour": "red"}`: 400, `{"direction": "outbound"}`: 400, `{"forward": ["failed"]}`: 400} {
		if st, out := call(http.MethodPost, "/api/forwarding/retry-failed", body); st != want {
			t.Errorf("retry %s: %d %v, want %d", body, st, out, want)
		}
	}
	if st, _ := call(http.MethodGet, "/api/forwarding/retries/12345", ``); st != 404 {
		t.Errorf("an unknown run: %d, want 404", st)
	}
	var rate *float64
	if err := f.pool.QueryRow(t.Context(), `SELECT rate FROM forwarding_control`).Scan(&rate); err != nil || rate != nil || f.paused(t) {
		t.Fatalf("after the refusals: rate %v, paused %v, %v; want unlimited and running", rate, f.paused(t), err)
	}
}

// TestConsolePagesFindAMessage: the search field opens a sid's story, and
// Forward again replays it, once however often it is pressed while the
// replay waits.
func TestConsolePagesFindAMessage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	sid := f.insert(t, "+15550000001", "+15550000100", accountA)
	b := newBrowser(t, f.url)
	// Words are not a number: the box says what it takes instead of
	// filtering by a number that matches nothing.
	if resp, body := b.get("/messages?q=hello+world"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Message bodies are not searched") {
		t.Errorf("search words: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := b.get("/messages?q=%2B15550000001"); resp.StatusCode != http.StatusOK || !strings.Contains(body, sid) {
		t.Errorf("search a number: %d", resp.StatusCode)
	}
	// The time presets are links with since set, and the message just
	// stored is among the last hour's.
	_, body := b.get("/messages")
	i := strings.Index(body, `<a href="/messages?since=`)
	if i < 0 || !strings.Contains(body, "Today (UTC)") {
		t.Fatalf("no time presets on the Messages page:\n%s", body)
	}
	link := html.UnescapeString(strings.SplitN(body[i+len(`<a href="`):], `"`, 2)[0])
	if resp, body := b.get(link); resp.StatusCode != http.StatusOK || !strings.Contains(body, sid) {
		t.Errorf("the last hour's preset %s: %d", link, resp.StatusCode)
	}
	resp, _ := b.get("/messages?q=" + sid)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/messages/"+sid {
		t.Fatalf("search a sid: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = b.get("/messages/" + sid)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, ">Forward again</button>") || !strings.Contains(body, "&#43;15550000001") ||
		resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("the message's page: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	token := csrfInput.FindStringSubmatch(body)[1]
	for i, want := range []string{"forwarded", "pending"} {
		resp, _ := b.post("/messages/"+sid+"/forward", url.Values{"csrf": {token}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/messages/"+sid || noticeOf(resp) != want {
			t.Fatalf("Forward again #%d: %d %s", i+1, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	var jobs int
	if err := f.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&jobs); err != nil || jobs != 1 {
		t.Fatalf("jobs for %s: %d, %v; want the one replay", sid, jobs, err)
	}
	for query, want := range map[string]string{
		"q=%2B15550000001":       sid,
		"q=" + accountA:          sid,
		"number=%2B15550000100":  sid,
		"forward=pending":        sid,
		"q=%2B19999999999":       "No message matches.",
		"since=2026-01-01T00:00": sid,
	} {
		if resp, body := b.get("/messages?" + query); resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/messages?%s: %d, want %q in\n%s", query, resp.StatusCode, want, body)
		}
	}
	if resp, body := b.get("/messages?direction=sideways"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "direction must be") {
		t.Errorf("a bad filter: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := b.get("/messages/" + fixture.SID()); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "No message with sid") {
		t.Errorf("an unknown sid: %d\n%s", resp.StatusCode, body)
	}
}

// TestAMessageAnEventStoredShowsItsOptOut: a message an Event Streams
// event stored first says so, with its opt-out and its group's recipients,
// and the source filter finds it.
func TestAMessageAnEventStoredShowsItsOptOut(t *testing.T) {
	t.Parallel()
	f := setup(t)
	sid := fixture.SID()
	m := fixture.Between(sid, "+15550000001", "+15550000100", accountA)
	m.Metadata.Source = message.SourceEventStream
	m.Metadata.Params["OptOutType"] = "STOP"
	m.Metadata.Params["Recipients"] = `["+15550000100","+15550000200"]`
	if _, _, err := f.store.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	other := f.insert(t, "+15550000002", "+15550000100", accountA)
	b := newBrowser(t, f.url)
	resp, body := b.get("/messages/" + sid)
	for _, want := range []string{"Event Streams", "Opt-out", "<strong>STOP</strong>", "&#43;15550000200"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("the page of an event's message lacks %q:\n%s", want, body)
		}
	}
	_, body = b.get("/messages?source=event-stream")
	if !strings.Contains(body, sid) || strings.Contains(body, other) || !strings.Contains(body, "opt-out STOP") {
		t.Fatalf("?source=event-stream: want %s only, with its opt-out:\n%s", sid, body)
	}
}

// TestLoginNeverSendsTheBrowserElsewhere: the classic open-redirect
// bypasses as next=, both where a login redirects (POST /login) and where
// a logged-in browser is sent at once (GET /login): the Location, read as
// a browser reads it (tabs and newlines dropped, control characters and
// spaces trimmed at the ends, backslashes as slashes), stays on the
// listener; a path on it is kept.
func TestLoginNeverSendsTheBrowserElsewhere(t *testing.T) {
	t.Parallel()
	f := setupWith(t, withToken)
	b := newBrowser(t, f.url)
	b.login(consoleToken)
	base, _ := url.Parse(f.url)
	asBrowser := func(loc string) *url.URL {
		loc = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(loc)
		loc = strings.TrimFunc(loc, func(r rune) bool { return r <= ' ' })
		u, err := base.Parse(strings.ReplaceAll(loc, "\\", "/"))
		if err != nil {
			return &url.URL{Host: "unparsable"}
		}
		return u
	}
	bypasses := []string{"//evil.example/", "///evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\r\n/evil.example/",
		"/\\evil.example/", "\\/evil.example/", "/\\/evil.example/", " //evil.example/", "\x00//evil.example/", "/\x00/evil.example/",
		"/\x0b/evil.example/", "/\x1f/evil.example/", "https://evil.example/", "http:evil.example", "//evil.example@local/",
		"/ /evil.example/", "/\u3000/evil.example/", "/\uff0f/evil.example/", "javascript:alert(1)", "/.//evil.example/", "/..//evil.example/",
		"%2F%2Fevil.example/", "/%2F/evil.example/", "", "login"}
	for _, next := range bypasses {
		for _, how := range []string{"GET", "POST"} {
			var resp *http.Response
			if how == "GET" {
				resp, _ = b.get("/login?next=" + url.QueryEscape(next))
			} else {
				resp, _ = newBrowser(t, f.url).post("/login", url.Values{"csrf": {""}, "token": {consoleToken}, "next": {next}})
				if resp.StatusCode == http.StatusForbidden { // no CSRF token: log in properly
					nb := newBrowser(t, f.url)
					resp, _ = nb.post("/login", url.Values{"csrf": {nb.csrf("/login")}, "token": {consoleToken}, "next": {next}})
				}
			}
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther || asBrowser(loc).Host != base.Host {
				t.Errorf("%s /login with next=%q: %d to %q, which a browser takes to host %q", how, next, resp.StatusCode, loc, asBrowser(loc).Host)
			}
		}
	}
	if resp, _ := b.get("/login?next=" + url.QueryEscape("/messages/SM123?account=AC1")); resp.Header.Get("Location") != "/messages/SM123?account=AC1" {
		t.Fatalf("a path on the listener is not kept: %q", resp.Header.Get("Location"))
	}
}

// TestWrongTokensAreThrottledCountedAndLoggedInAggregate: 200 wrong bearer
// tokens and 20 wrong logins at once from one address: after the first
// ten, each is answered 429 with Retry-After before its token is compared;
// all are counted by reason in inbox_admin_auth_refused_total; the log has
// one line for them all, not one each. Meanwhile an operator at another
// address is let in with the right token, by bearer and by the login form.
func TestWrongTokensAreThrottledCountedAndLoggedInAggregate(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	log := &logtest.Buffer{}
	f := setupWith(t, func(c *admin.Config) {
		withToken(c)
		c.AuthMetrics, c.Metrics, c.Logger = m, m.Handler(), slog.New(slog.NewJSONHandler(log, nil))
	})
	// The operator's browser, at 127.0.0.2.
	operator := newBrowser(t, f.url)
	operator.c.Transport = fromAddress(t, "127.0.0.2")
	var statuses sync.Map
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			st, _, _ := bearer(t, f.url+"/api/messages", fmt.Sprintf("wrong-token-%03d-0123456789", i), nil)
			n, _ := statuses.LoadOrStore(st, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		})
	}
	wg.Wait()
	got := map[int]int64{}
	statuses.Range(func(k, v any) bool { got[k.(int)] = v.(*atomic.Int64).Load(); return true })
	if got[http.StatusUnauthorized] < 1 || got[http.StatusUnauthorized] > 12 || got[http.StatusTooManyRequests] < 188 {
		t.Fatalf("200 wrong tokens at once from one address: %v, want about 10 compared (401) and the rest 429", got)
	}
	if st, h, _ := bearer(t, f.url+"/api/messages", "another-wrong-token-0123", nil); st != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("a guess while throttled: %d Retry-After %q, want 429 with Retry-After", st, h.Get("Retry-After"))
	}
	// The right token from the throttled address is not compared either;
	// from another address it is, at once.
	if st, _, _ := bearer(t, f.url+"/api/messages", consoleToken, nil); st != http.StatusTooManyRequests {
		t.Fatalf("the right token from the throttled address: %d, want 429", st)
	}
	if st, _, body := bearer(t, f.url+"/api/messages", consoleToken, fromAddress(t, "127.0.0.2")); st != http.StatusOK {
		t.Fatalf("the right token from another address: %d %s, want 200", st, body)
	}
	operator.login(consoleToken)
	if resp, _ := operator.get("/forwarding"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the operator's console while another address guesses: %d", resp.StatusCode)
	}
	b := newBrowser(t, f.url)
	if resp, body := b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "token": {"wrong-wrong-wrong-wrong"}}); resp.StatusCode != http.StatusTooManyRequests ||
		!strings.Contains(body, "Too many wrong tokens") {
		t.Fatalf("a wrong login from the throttled address: %d", resp.StatusCode)
	}
	if lines := strings.Count(log.String(), `"msg":"admin credentials refused"`); lines != 1 {
		t.Fatalf("%d log lines for 202 refusals, want 1:\n%s", lines, log)
	}
	counts := map[string]float64{}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "inbox_admin_auth_refused_total" {
			for _, mt := range mf.GetMetric() {
				counts[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
			}
		}
	}
	if counts["wrong_token"]+counts["throttled"] != 203 || counts["throttled"] < 190 {
		t.Fatalf("inbox_admin_auth_refused_total: %v, want 203 wrong_token and throttled, most throttled", counts)
	}
}

// fromAddress is a transport whose connections come from the loopback
// address ip, another client to the listener.
func fromAddress(t *testing.T, ip string) *http.Transport {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// bearer GETs url with token as a bearer token, through tr (nil: the
// default's), and returns the answer.
func bearer(t *testing.T, url, token string, tr http.RoundTripper) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestLogoutEndsEveryCopyOfTheSessionOnEveryReplica: a copy of a
// logged-in browser's cookie (taken by an extension, a shared machine, a
// log) stops working when the operator logs out, on this replica at once
// and on another sharing the database within its freshness; logging in
// again works; a new ADMIN_TOKEN ends every session.
func TestLogoutEndsEveryCopyOfTheSessionOnEveryReplica(t *testing.T) {
	t.Parallel()
	var st *store.Store
	f := setupWith(t, func(c *admin.Config) { withToken(c); st = c.Accounts.(*account.Manager).Store; c.Revocations = st })
	other := httptest.NewServer(admin.NewServer(admin.Config{Logger: slog.New(slog.DiscardHandler), Token: consoleToken, Revocations: st,
		Metrics: metrics.New().Handler()}))
	t.Cleanup(other.Close)
	otherToken := httptest.NewServer(admin.NewServer(admin.Config{Logger: slog.New(slog.DiscardHandler), Token: consoleToken + "-rotated",
		Revocations: st, Metrics: metrics.New().Handler()}))
	t.Cleanup(otherToken.Close)

	b := newBrowser(t, f.url)
	b.login(consoleToken)
	cookie := b.c.Jar.Cookies(mustURL(t, f.url))
	withCookie := func(base string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
		for _, c := range cookie {
			req.AddCookie(c)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, o := withCookie(f.url), withCookie(other.URL); a != http.StatusOK || o != http.StatusOK {
		t.Fatalf("the copied cookie before the logout: %d here, %d on the other replica; want 200", a, o)
	}
	if st := withCookie(otherToken.URL); st != http.StatusUnauthorized {
		t.Fatalf("the cookie on a replica with a new ADMIN_TOKEN: %d, want 401", st)
	}
	if resp, _ := b.post("/logout", url.Values{"csrf": {b.csrf("/forwarding")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if st := withCookie(f.url); st != http.StatusUnauthorized {
		t.Fatalf("the copied cookie after the logout: %d, want 401", st)
	}
	poll.Until(t, "the other replica to refuse the copied cookie", func() bool { return withCookie(other.URL) == http.StatusUnauthorized })
	b.login(consoleToken)
	if resp, _ := b.get("/forwarding"); resp.StatusCode != http.StatusOK {
		t.Fatalf("logging in again after the logout: %d", resp.StatusCode)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// noticeOf is the notice a form's redirect leaves for the next page.
func noticeOf(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == "inbox_notice" && c.MaxAge > 0 {
			return c.Value
		}
	}
	return ""
}

// TestANoticeIsShownOnce: the line a form's redirect shows ("Forwarding
// paused") is on the page it lands on, and not again when it is reloaded.
func TestANoticeIsShownOnce(t *testing.T) {
	t.Parallel()
	f := setupWith(t, withToken)
	b := newBrowser(t, f.url)
	b.login(consoleToken)
	resp, _ := b.post("/forwarding/pause", url.Values{"csrf": {b.csrf("/forwarding")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pause: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	_, first := b.get(loc)
	_, reload := b.get(loc)
	if !strings.Contains(first, `class="notice"`) || strings.Contains(reload, `class="notice"`) {
		t.Fatalf("the notice after a pause: on the page %v, on its reload %v; want once", strings.Contains(first, `class="notice"`), strings.Contains(reload, `class="notice"`))
	}
}

// TestTheBrowsersIconRequestIsQuiet: every page view makes a browser ask
// for /favicon.ico, with or without a session; it is answered 204 and
// logs no refusal.
func TestTheBrowsersIconRequestIsQuiet(t *testing.T) {
	t.Parallel()
	log := &logtest.Buffer{}
	f := setupWith(t, func(c *admin.Config) { withToken(c); c.Logger = slog.New(slog.NewJSONHandler(log, nil)) })
	resp, _ := newBrowser(t, f.url).get("/favicon.ico")
	if resp.StatusCode != http.StatusNoContent || strings.Contains(log.String(), "refused") {
		t.Fatalf("/favicon.ico: %d, log:\n%s", resp.StatusCode, log)
	}
}
