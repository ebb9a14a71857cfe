package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"inbox/account"
	"inbox/internal/dbtest"
	"inbox/keyring"
	"inbox/simulate"
)

// TestOneMisKeyedAccountDoesNotStopServe: adding an account under a key
// that does not open the table's tokens is refused, naming the table's key;
// forced in anyway, that one account is refused at delivery (403), named
// at start and counted in a metric, while serve starts and stores the
// other account's messages.
func TestOneMisKeyedAccountDoesNotStopServe(t *testing.T) {
	t.Parallel()
	databaseURL, key, other := dbtest.URL(t), newKeyB64(), newKeyB64()
	good, goodToken := newAccount()
	bad, badToken := newAccount()
	mustAccounts(t, databaseURL, key, goodToken, "add", good)
	keys, err := keyring.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = accountsCLI(t, databaseURL, other, badToken, "add", bad)
	if !errors.Is(err, account.ErrKeyMismatch) || !strings.Contains(err.Error(), "sealed with key "+keys.Fingerprints()[0]) || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("add under another key: %v, want ErrKeyMismatch naming key %s and -force", err, keys.Fingerprints()[0])
	}
	if _, err := accountsCLI(t, databaseURL, other, badToken, "set-secondary", good); !errors.Is(err, account.ErrKeyMismatch) {
		t.Fatalf("set-secondary under another key: %v, want ErrKeyMismatch", err)
	}
	mustAccounts(t, databaseURL, other, badToken, "add", bad, "-force")

	s, base := startAdmin(t, databaseURL, noFallback(key))
	if st, _ := deliverAs(t, s.addr, good, goodToken); st != http.StatusOK {
		t.Fatalf("delivery of the readable account: %d, want 200", st)
	}
	if st, _ := deliverAs(t, s.addr, bad, badToken); st != http.StatusForbidden {
		t.Fatalf("delivery of the unreadable account: %d, want 403", st)
	}
	if !strings.Contains(s.stderr.String(), "cannot be decrypted with ENCRYPTION_KEY") || !strings.Contains(s.stderr.String(), `"account_sid":"`+bad+`"`) {
		t.Fatalf("the start-up log does not name %s as unreadable:\n%s", bad, s.stderr)
	}
	families := scrape(t, base)
	if v, ok := value(families, "inbox_twilio_accounts_unreadable", nil); !ok || v != 1 {
		t.Fatalf("inbox_twilio_accounts_unreadable = %v (%v), want 1", v, ok)
	}
	if v, ok := value(families, "inbox_refusals_total", map[string]string{"reason": "account_unreadable"}); !ok || v != 1 {
		t.Fatalf("refusals for account_unreadable = %v (%v), want 1", v, ok)
	}
}

// TestTokenFileIsReadAtMost4KiB: given a 1 GiB file as its token file,
// `inbox accounts add` refuses it having read 4 KiB: the whole command
// allocates well under 50 MiB (it used to read the file whole).
//
// In-process and not parallel, so the allocations counted are this
// command's: a child process's peak RSS cannot be read from here, since Go
// starts children with vfork, and Linux then counts the parent's memory
// as the child's.
func TestTokenFileIsReadAtMost4KiB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	sid, _ := newAccount()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := accountsCLI(t, databaseURL, key, "", "add", sid, "-token-file", path)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "more than 4096 bytes") {
		t.Fatalf("accounts add -token-file of 1 GiB: %v %s, want a refusal", err, out)
	}
	const limit = 50 << 20
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
		t.Fatalf("the refusal allocated %d MiB, want under %d", alloc>>20, limit>>20)
	}
}

// TestLabelsArePrintableAndListEscapesThem: a label with control
// characters, or longer than 200 characters, is refused; one stored raw
// before labels were checked is printed escaped, so it cannot act on the
// terminal.
func TestLabelsArePrintableAndListEscapesThem(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	sid, token := newAccount()
	for label, want := range map[string]string{
		"\x1b[2Jgone":            "not a printable character",
		"line\rover":             "not a printable character",
		strings.Repeat("é", 201): "more than 200",
		"bad \xff utf-8":         "not valid UTF-8",
	} {
		if _, err := accountsCLI(t, databaseURL, key, token, "add", sid, "-label", label); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("label %q: %v, want %q", label, err, want)
		}
	}
	mustAccounts(t, databaseURL, key, token, "add", sid, "-label", "Acme, São Paulo")
	pool := dbtest.Connect(t, databaseURL, 1)
	if _, err := pool.Exec(t.Context(), `UPDATE twilio_accounts SET label = $1`, "\x1b[31mred\r"+strings.Repeat("x", 300)); err != nil {
		t.Fatal(err)
	}
	out := mustAccounts(t, databaseURL, key, "", "list")
	if strings.ContainsAny(out, "\x1b\r") || !strings.Contains(out, `\x1b[31mred\r`) || strings.Contains(out, strings.Repeat("x", 201)) {
		t.Fatalf("list printed a raw or overlong label:\n%q", out)
	}
}

// TestCLISaysWhatItDoes: every verb of accounts has its own help (exit 0),
// an unknown verb lists the verbs, each change prints its past tense, -h
// of serve and work names the settings only the environment sets, version
// prints the build, and migrate status names every migration.
func TestCLISaysWhatItDoes(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	cli := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), args, env(map[string]string{"DATABASE_URL": databaseURL, "LOG_FORMAT": "json"}), strings.NewReader(""), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	for _, verb := range accountVerbs() {
		out, _, err := cli("accounts", verb.name, "-h")
		if err != nil || !strings.Contains(out, "Usage: inbox accounts "+verb.name) || !strings.Contains(out, verb.help) {
			t.Fatalf("accounts %s -h: %v\n%s", verb.name, err, out)
		}
	}
	if out, _, err := cli("accounts", "-h"); err != nil || !strings.Contains(out, "set-secondary AC…") {
		t.Fatalf("accounts -h: %v\n%s", err, out)
	}
	if _, _, err := cli("accounts", "frobnicate"); err == nil || !strings.Contains(err.Error(), `unknown verb "frobnicate"; verbs: add, set-secondary, rotate, disable, enable, remove, list, reseal`) {
		t.Fatalf("accounts frobnicate: %v", err)
	}
	if _, _, err := cli("accounts", "disable"); err == nil || !strings.Contains(err.Error(), "the account sid (AC…) comes first") {
		t.Fatalf("accounts disable with no sid: %v", err)
	}
	key := newKeyB64()
	sid, token := newAccount()
	mustAccounts(t, databaseURL, key, token, "add", sid)
	for _, step := range []struct{ verb, want string }{{"disable", "disabled"}, {"enable", "enabled"}, {"remove", "removed"}} {
		if out := mustAccounts(t, databaseURL, key, "", step.verb, sid); out != sid+": "+step.want+"\n" {
			t.Fatalf("accounts %s: %q, want %q", step.verb, out, sid+": "+step.want)
		}
	}

	for _, sub := range []string{"serve", "work"} {
		out, _, err := cli(sub, "-h")
		if err != nil {
			t.Fatalf("%s -h: %v", sub, err)
		}
		for _, want := range []string{"Environment only", "FORWARD_SECRET", "ADMIN_TOKEN"} {
			if !strings.Contains(out, want) {
				t.Fatalf("%s -h does not mention %q:\n%s", sub, want, out)
			}
		}
		if sub == "serve" && (!strings.Contains(out, "TWILIO_AUTH_TOKEN") || !strings.Contains(out, "ENCRYPTION_KEY")) {
			t.Fatalf("serve -h does not list TWILIO_AUTH_TOKEN and ENCRYPTION_KEY:\n%s", out)
		}
		if strings.Contains(out, "-workers inbox") || strings.Count(out, "127.0.0.1:5432") > 1 {
			t.Fatalf("%s -h garbles a flag or repeats the database default:\n%s", sub, out)
		}
	}
	if out, _, err := cli("version"); err != nil || !strings.HasPrefix(out, "inbox ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %v %q", err, out)
	}
	out, _, err := cli("migrate", "status")
	if err != nil || !strings.Contains(out, "00005_river_queue.go") || strings.Contains(out, " .\n") {
		t.Fatalf("migrate status does not name every migration: %v\n%s", err, out)
	}
}

// TestUnmigratedDatabaseIsNotReady: serve on a database that was never
// migrated says at start what to run; /readyz answers 503 saying it, and so
// does the log of a webhook's 503; once migrated, /readyz answers 200
// without a restart.
func TestUnmigratedDatabaseIsNotReady(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.EmptyURL(t)
	s := startServe(t, databaseURL, nil)
	hint := "database schema is at version 0, this binary needs"
	if !strings.Contains(s.stderr.String(), hint) || !strings.Contains(s.stderr.String(), "run inbox migrate up") {
		t.Fatalf("the start-up log does not say the schema is behind:\n%s", s.stderr)
	}
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st := deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 1)[0]; st != http.StatusServiceUnavailable {
		t.Fatalf("a webhook on an unmigrated database: %d, want 503", st)
	}
	if !strings.Contains(s.stderr.String(), "its schema is behind this binary; run inbox migrate up") {
		t.Fatalf("the webhook's 503 is not logged with the hint:\n%s", s.stderr)
	}
	if st, body := readyz(); st != http.StatusServiceUnavailable || !strings.Contains(body, hint) || !strings.Contains(body, "run inbox migrate up") {
		t.Fatalf("/readyz on an unmigrated database: %d %q, want 503 with the hint", st, body)
	}
	mustInbox(t, databaseURL, "migrate", "up")
	if st, body := readyz(); st != http.StatusOK {
		t.Fatalf("/readyz once migrated: %d %q, want 200", st, body)
	}
}

// TestErrorsNameTheSettingToFix: a PUBLIC_BASE_URL that ends in a route, a
// database that does not exist, a port in use and a weak ADMIN_TOKEN stop
// serve naming the setting; a database that refuses connections is logged
// naming DATABASE_URL while serve keeps trying; a signature made for the
// other scheme is refused with a log line that says what to set.
func TestErrorsNameTheSettingToFix(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	noDB := strings.Replace(databaseURL, "/testdb_", "/nosuchdb_", 1)
	for name, c := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"base url ends in the route": {map[string]string{"PUBLIC_BASE_URL": "https://hooks.example.com/twilio/messages"}, []string{"PUBLIC_BASE_URL", "ends in /twilio/messages", "https://hooks.example.com"}},
		"no such database":           {map[string]string{"DATABASE_URL": noDB}, []string{"DATABASE_URL", "no such database", "xxxxx"}},
		"webhook port in use":        {map[string]string{"LISTEN_ADDR": busy.Addr().String()}, []string{"LISTEN_ADDR", "-listen-addr", "address already in use"}},
		"admin port in use":          {map[string]string{"ADMIN_ADDR": busy.Addr().String(), "ADMIN_TOKEN": adminToken}, []string{"ADMIN_ADDR", "-admin-addr", "address already in use"}},
		"admin token of spaces":      {map[string]string{"ADMIN_TOKEN": " "}, []string{"ADMIN_TOKEN", "whitespace"}},
		"admin token too short":      {map[string]string{"ADMIN_TOKEN": "short-token"}, []string{"ADMIN_TOKEN", "at least 16"}},
		"admin hosts with a port":    {map[string]string{"ADMIN_HOSTS": "admin.example.com:9090"}, []string{"ADMIN_HOSTS", "without scheme or port"}},
	} {
		vars := map[string]string{"DATABASE_URL": databaseURL, "TWILIO_AUTH_TOKEN": testToken, "PUBLIC_BASE_URL": "http://127.0.0.1",
			"LISTEN_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "off", "LOG_FORMAT": "json"}
		for k, v := range c.env {
			vars[k] = v
		}
		err := run(t.Context(), []string{"serve"}, env(vars), nil, io.Discard, io.Discard)
		for _, want := range c.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: %v, want it to name %q", name, err, want)
			}
		}
		if err != nil && strings.Contains(err.Error(), "pgtdbpass") {
			t.Fatalf("%s: the error shows the password: %v", name, err)
		}
	}

	// Refused connections: serve starts, and says where it is trying.
	closed := busy.Addr().(*net.TCPAddr).Port
	busy.Close()
	refused := map[string]string{"DATABASE_URL": strings.Replace(databaseURL, "127.0.0.1:5432", net.JoinHostPort("127.0.0.1", strconv.Itoa(closed)), 1)}
	if !strings.Contains(refused["DATABASE_URL"], strconv.Itoa(closed)) {
		t.Skipf("the test server is not on 127.0.0.1:5432 (%s), so the URL cannot be pointed at a closed port", redactURL(databaseURL))
	}
	s := startServe(t, refused["DATABASE_URL"], nil)
	if log := s.stderr.String(); !strings.Contains(log, `"problem":"connection refused"`) || !strings.Contains(log, `"database_url":"postgres://pgtdbuser:xxxxx@`) {
		t.Fatalf("start-up log against a closed port does not name the problem and DATABASE_URL:\n%s", log)
	}

	// Signed for https, configured for http: refused, and the log says so.
	s = startServe(t, databaseURL, nil)
	sid := simulate.NewMessageSID(simulate.SMS)
	req, err := simulate.NewRequest(t.Context(), "http://"+s.addr+"/twilio/messages", "https://inbox.test/twilio/messages", testToken,
		simulate.InboundForm(simulate.SMS, sid, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "the request is signed for https://inbox.test: set PUBLIC_BASE_URL=https://inbox.test"
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(s.stderr.String(), want) {
		t.Fatalf("a delivery signed for the other scheme: %d; want 403 and a log line %q:\n%s", resp.StatusCode, want, s.stderr)
	}
	// Signed for another path altogether: the log says where to look.
	req, _ = simulate.NewRequest(t.Context(), "http://"+s.addr+"/twilio/messages", "https://elsewhere.example/hooks/twilio/messages", testToken,
		simulate.InboundForm(simulate.SMS, sid, 1))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(s.stderr.String(), "check PUBLIC_BASE_URL (scheme, host, port, path)") {
		t.Fatalf("a delivery signed for another URL: %d; want 403 and a hint naming PUBLIC_BASE_URL:\n%s", resp.StatusCode, s.stderr)
	}
}

// TestHelpAndMessagesSayWhatTheyDo: the small mismatches a new user met.
// `inbox help serve` is serve's help; `inbox version extra` is refused;
// reconcile's help lists only the flags it uses; simulate's shows one
// default per flag; serve's -public-base-url says what the docs say;
// FORWARD_URL without FORWARD_SECRET says how to make one.
func TestHelpAndMessagesSayWhatTheyDo(t *testing.T) {
	t.Parallel()
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, env(map[string]string{}), nil, &out, &out)
		return out.String(), err
	}
	helpServe, err1 := cli("help", "serve")
	serveH, err2 := cli("serve", "-h")
	if err1 != nil || err2 != nil || helpServe != serveH || !strings.HasPrefix(helpServe, "Usage: inbox serve") {
		t.Fatalf("inbox help serve is not serve -h: %v %v\n%s", err1, err2, helpServe)
	}
	if _, err := cli("version", "extra"); err == nil {
		t.Fatal("inbox version extra: accepted")
	}
	reconcileH, _ := cli("reconcile", "-h")
	for _, unused := range []string{"-workers", "-retention", "-forward-rate", "-forward-break-after", "-forward-timeout", "-reconcile-lookback", "-reconcile-overlap"} {
		if strings.Contains(reconcileH, "  "+unused+" ") {
			t.Errorf("reconcile -h lists %s, which it does not use", unused)
		}
	}
	simulateH, _ := cli("simulate", "-h")
	for line := range strings.Lines(simulateH) {
		if strings.Count(line, "(default") > 1 || (strings.Contains(line, "(default") && strings.Contains(line, "default:")) {
			t.Errorf("simulate -h shows two defaults: %s", line)
		}
	}
	if strings.Contains(simulateH, "(default -url)") {
		t.Errorf("simulate -h: -public-base-url shows -url and PUBLIC_BASE_URL both as its default")
	}
	config, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(serveH, "scheme, host, port and optional path prefix Twilio calls") ||
		!strings.Contains(string(config), "scheme, host, port and optional path prefix Twilio calls") {
		t.Error("serve -h and docs/configuration.md describe -public-base-url differently")
	}
	_, err = cli("serve", "-public-base-url", "http://x", "-forward-url", "http://127.0.0.1:9/x")
	if err == nil || !strings.Contains(err.Error(), "whsec_$(head -c 32 /dev/urandom | base64)") {
		t.Errorf("FORWARD_URL without FORWARD_SECRET: %v; want an example of a secret", err)
	}
}
