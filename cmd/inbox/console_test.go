package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/chromedp"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// The console is tested in a real browser: headless Chromium, driven over
// the DevTools protocol, finding every control by its accessible name (as
// a screen reader or a script would), never by a CSS selector.

// chromium returns the browser to drive, or skips the test, loudly, where
// none is installed; scripts/test installs one and sets
// INBOX_REQUIRE_BROWSER, and then a missing browser fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "NO BROWSER: the console's browser test needs Chromium (apt-get install -y chromium); scripts/test installs it where it can"
	if os.Getenv("INBOX_REQUIRE_BROWSER") != "" {
		t.Fatal(msg)
	}
	t.Skip("\n\n*** " + msg + " ***\n")
	return ""
}

// page is one browser tab on the console.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
	// shots is where screenshots go.
	shots string
}

// openBrowser starts Chromium at 1280x800, stopped when the test ends.
func openBrowser(t *testing.T, base string) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.NoFirstRun, chromedp.Headless, chromedp.DisableGPU, chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		// This machine reaches nothing outside: keep Chromium from trying.
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-default-browser-check", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	shots := os.Getenv("INBOX_SCREENSHOTS")
	if shots == "" {
		shots = t.ArtifactDir()
	}
	t.Logf("screenshots of each console page: %s", shots)
	return &page{t: t, ctx: ctx, base: base, shots: shots}
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func get[T any](p *page, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// navigate opens path and waits for it to load.
func (p *page) navigate(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.base+path))
}

// named is a query for the element whose accessible role and name are
// these, as the browser computes them for assistive technology.
func named(role, name string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, n *chromedp.Node) ([]cdp.NodeID, error) {
		res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{
			BackendNodeID: n.BackendNodeID, AccessibleName: name, Role: role})
		if err != nil {
			return nil, err
		}
		var backend []cdp.BackendNodeID
		for _, ax := range res.Nodes {
			if !ax.Ignored && ax.BackendDOMNodeID != 0 {
				backend = append(backend, ax.BackendDOMNodeID)
			}
		}
		if len(backend) == 0 {
			return nil, nil // not (yet) on the page: the query waits
		}
		pushed, err := cdp.Call(ctx, t, dom.PushNodesByBackendIDsToFrontend, dom.PushNodesByBackendIDsToFrontendParams{BackendNodeIDs: backend})
		return pushed.NodeIDs[:1], err
	})
}

// press clicks the button named name and waits for the page it leads to.
func (p *page) press(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click("button "+name, named("button", name))); err != nil {
		p.t.Fatalf("press %q: %v", name, err)
	}
}

// fill types text into the field with this role and name.
func (p *page) fill(role, name, text string) {
	p.t.Helper()
	p.do(fmt.Sprintf("type into %q", name), chromedp.SendKeys(role+" "+name, text, named(role, name)))
}

// text is what the page's main region says.
func (p *page) text() string {
	p.t.Helper()
	return get(p, "read the page", chromedp.Text(chromedp.CSS("main")))
}

// shows fails the test unless the page says each of want.
func (p *page) shows(want ...string) {
	p.t.Helper()
	text := p.text()
	for _, w := range want {
		if !strings.Contains(text, w) {
			p.t.Fatalf("the page does not say %q; it says:\n%s", w, text)
		}
	}
}

// consoleScreenshots are the pages the browser test photographs: each is
// committed in docs/console/ and shown in docs/console.md
// (./scripts/screenshots writes them there).
var consoleScreenshots = []string{"login", "overview", "messages", "message", "message-phone", "message-media", "forwarding",
	"forwarding-paused", "forwarding-breaker", "retry", "accounts", "destinations", "destination"}

// screenshot saves the whole page as name.png.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if !slices.Contains(consoleScreenshots, name) {
		p.t.Fatalf("screenshot %q is not in consoleScreenshots, so the docs would not show it", name)
	}
	png := get(p, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(p.shots, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// location is the page's URL.
func (p *page) location() string {
	p.t.Helper()
	return get(p, "read the URL", chromedp.Location())
}

// TestConsoleInABrowser plays an operator: logs in, finds a refused
// forward by its sid and reads why, forwards it again; pauses forwarding,
// sees 20 new messages wait and none reach the app, resumes and sees each
// arrive once; watches the breaker pause forwarding when the app answers
// 500, and resumes once it heals.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	chromium(t) // before anything starts: skipped where there is none
	const (
		ok = iota
		refuse
		fail
	)
	var mode atomic.Int32
	app := teamapp.New(t, teamapp.Options{Answer: func(int64, http.Header) int {
		switch mode.Load() {
		case refuse:
			return http.StatusUnprocessableEntity
		case fail:
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}})
	const token = "browser-test-admin-token"
	databaseURL, key := dbtest.URL(t), newKeyB64()
	// Three accounts for the Accounts page: one that delivers, one
	// disabled, one sealed under a key this server does not have.
	acme, acmeToken := newAccount()
	paused, pausedToken := newAccount()
	lost, lostToken := newAccount()
	mustAccounts(t, databaseURL, key, acmeToken, "add", acme, "-label", "acme")
	mustAccounts(t, databaseURL, key, pausedToken, "add", paused, "-label", "acme-staging")
	mustAccounts(t, databaseURL, key, "", "disable", paused)
	mustAccounts(t, databaseURL, newKeyB64(), lostToken, "add", lost, "-label", "old-key", "-force")
	s := startServe(t, databaseURL, map[string]string{
		"FORWARD_URL": app.URL, "FORWARD_SECRET": teamapp.Secret, "ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": token,
		"FORWARD_BREAK_AFTER": "10", "ENCRYPTION_KEY": key,
	})
	pool := dbtest.Connect(t, databaseURL, 4)
	deliver := func(sid string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(signedRequest(t, s.addr, testToken, simulate.InboundForm(simulate.SMS, sid, 1)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("delivery of %s: %d", sid, resp.StatusCode)
		}
	}
	forwardState := func(sid string) string {
		var st string
		if err := pool.QueryRow(t.Context(), `SELECT message_delivery_state(id, NULL) FROM messages WHERE metadata->>'message_sid' = $1`, sid).Scan(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	p := openBrowser(t, "http://"+s.adminAddr)
	p.navigate("/messages")
	p.shows("Log in")
	p.screenshot("login")
	p.fill("textbox", "Token", token)
	p.press("Log in")
	p.shows("Messages", "Search")

	// A forward the app refuses for good.
	mode.Store(refuse)
	refused := fixture.SID()
	deliver(refused)
	poll.Until(t, "the refused forward to be cancelled", func() bool { return forwardState(refused) == "cancelled" })
	p.navigate("/messages")
	p.fill("searchbox", "Search", refused)
	p.press("Search")
	p.shows(refused, "cancelled", "receiver answered 422, which a retry cannot change")
	p.screenshot("message")

	mode.Store(ok)
	p.press("Forward again to default")
	p.shows("A new forward of this message is queued.")
	poll.Until(t, "the replay at the app", func() bool { return app.Deliveries(refused) == 1 })

	// Pause, 20 new messages, none at the app; resume, each once.
	p.navigate("/forwarding")
	p.shows("Running")
	p.press("Pause forwarding")
	p.shows("Paused by an operator", "Resume forwarding")
	held := make([]string, 20)
	for i := range held {
		held[i] = fixture.SID()
		deliver(held[i])
	}
	poll.Until(t, "the 20 forwards to wait", func() bool {
		var n int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+dbtest.EnqueuedJobs+` WHERE sid = ANY($1) AND state = 'available' AND attempt = 0`, held).Scan(&n)
		return err == nil && n == 20
	})
	p.navigate("/forwarding")
	p.shows("20\nwaiting")
	for _, sid := range held {
		if n := app.Deliveries(sid); n != 0 {
			t.Fatalf("%s reached the app while forwarding was paused", sid)
		}
	}
	p.screenshot("forwarding-paused")
	p.press("Resume forwarding")
	p.shows("Forwarding resumed")
	poll.Until(t, "the 20 held forwards at the app", func() bool {
		for _, sid := range held {
			if app.Deliveries(sid) != 1 {
				return false
			}
		}
		return true
	})

	// The app fails: the breaker pauses forwarding after 10 failures.
	mode.Store(fail)
	failing := make([]string, 10)
	for i := range failing {
		failing[i] = fixture.SID()
		deliver(failing[i])
	}
	poll.Until(t, "the breaker to pause forwarding", func() bool {
		var reason *string
		err := pool.QueryRow(t.Context(), `SELECT paused_reason FROM forwarding_control`).Scan(&reason)
		return err == nil && reason != nil && *reason == "breaker"
	})
	p.navigate("/forwarding")
	p.shows("The circuit breaker paused forwarding", "10 consecutive failed attempts", "receiver answered 500")
	p.screenshot("forwarding-breaker")
	mode.Store(ok)
	p.press("Resume forwarding")
	poll.Within(t, 60*time.Second, "the failed forwards, retried, at the app", func() bool {
		for _, sid := range failing {
			if app.Deliveries(sid) != 1 {
				return false
			}
		}
		return true
	})

	// Retry all failed, over one refused forward; the accounts.
	mode.Store(refuse)
	again := fixture.SID()
	deliver(again)
	poll.Until(t, "a second refused forward", func() bool { return forwardState(again) == "cancelled" })
	mode.Store(ok)
	p.navigate("/forwarding")
	p.shows(again)
	p.press("Retry all failed")
	p.shows("Bulk retry")
	poll.Until(t, "the bulk retry's forward at the app", func() bool { return app.Deliveries(again) == 1 })
	p.navigate(strings.TrimPrefix(p.location(), p.base))
	p.shows("Done", "1 of 1 failed forwards given a new forward")
	p.screenshot("retry")
	if st, _ := deliverAs(t, s.addr, acme, acmeToken); st != http.StatusOK {
		t.Fatalf("delivery for %s: %d", acme, st)
	}
	p.navigate("/accounts")
	p.shows(acme, "acme", "enabled", paused, "disabled", lost, "unreadable", "s ago")
	if strings.Contains(p.text(), acmeToken) || strings.Contains(p.text(), lostToken) {
		t.Fatal("the Accounts page shows a token")
	}
	p.screenshot("accounts")
	p.navigate("/forwarding")
	p.fill("spinbutton", "Forwards a second, across every worker (empty: unlimited)", "25")
	p.press("Set rate")
	p.shows("Delivery rate saved.", "at most 25 a second")
	var rate float64
	if err := pool.QueryRow(t.Context(), `SELECT rate FROM forwarding_control`).Scan(&rate); err != nil || rate != 25 {
		t.Fatalf("the rate after Set rate: %v, %v", rate, err)
	}
	p.screenshot("forwarding")
	p.navigate("/messages")
	p.shows(refused, held[0], failing[0])
	p.screenshot("messages")

	// Readable on a phone.
	p.do("phone size", chromedp.EmulateViewport(390, 844))
	p.navigate("/messages/" + refused)
	p.screenshot("message-phone")
}

// TestConsoleScreenshotsAreInTheDocs: every page the browser test
// photographs is committed and shown in docs/console.md, and nothing else
// is left in docs/console/.
func TestConsoleScreenshotsAreInTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/console.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range consoleScreenshots {
		if _, err := os.Stat("../../docs/console/" + name + ".png"); err != nil {
			t.Errorf("docs/console/%s.png: %v (run ./scripts/screenshots)", name, err)
		}
		if !strings.Contains(string(doc), "(console/"+name+".png)") {
			t.Errorf("docs/console.md does not show console/%s.png", name)
		}
	}
	files, err := filepath.Glob("../../docs/console/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.Contains(consoleScreenshots, strings.TrimSuffix(filepath.Base(f), ".png")) {
			t.Errorf("%s is not a screenshot the browser test takes", f)
		}
	}
}
