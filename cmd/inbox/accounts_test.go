package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"inbox/account"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/simulate"
)

func newKeyB64() string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// newAccount returns a fresh account sid and auth token of Twilio's shapes.
func newAccount() (sid, token string) {
	var b [32]byte
	rand.Read(b[:])
	return "AC" + hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
}

// cli runs `inbox command args…` in-process with stdin and ENCRYPTION_KEY
// key, as a shell would, and returns everything it printed.
func cli(t *testing.T, command, databaseURL, key, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	vars := map[string]string{"DATABASE_URL": databaseURL, "LOG_FORMAT": "json", "ENCRYPTION_KEY": key}
	err := run(t.Context(), append([]string{command}, args...), env(vars), strings.NewReader(stdin), &out, &out)
	return out.String(), err
}

// accountsCLI runs `inbox accounts args…`.
func accountsCLI(t *testing.T, databaseURL, key, stdin string, args ...string) (string, error) {
	t.Helper()
	return cli(t, "accounts", databaseURL, key, stdin, args...)
}

func mustAccounts(t *testing.T, databaseURL, key, stdin string, args ...string) string {
	t.Helper()
	out, err := accountsCLI(t, databaseURL, key, stdin, args...)
	if err != nil {
		t.Fatalf("inbox accounts %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// deliverAs posts a new inbound message of account, signed with token, and
// returns the answer and the message sid.
func deliverAs(t *testing.T, addr, account, token string) (int, string) {
	t.Helper()
	sid := simulate.NewMessageSID(simulate.SMS)
	form := simulate.InboundForm(simulate.SMS, sid, 1)
	form.Set("AccountSid", account)
	resp, err := http.DefaultClient.Do(signedRequest(t, addr, token, form))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, sid
}

// noFallback runs serve with no TWILIO_AUTH_TOKEN: only the table's
// accounts verify.
func noFallback(key string) map[string]string {
	return map[string]string{"TWILIO_AUTH_TOKEN": "", "ENCRYPTION_KEY": key}
}

// TestEachAccountSignsWithItsOwnToken: two accounts, each signing with its
// own token, are stored; one's token on the other's AccountSid, an unknown
// account, and the old single token are refused with 403 and store nothing.
// Then rotation: a secondary token verifies beside the primary, and once
// promoted, the old one fails, on the running server.
func TestEachAccountSignsWithItsOwnToken(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	a, aToken := newAccount()
	b, bToken := newAccount()
	mustAccounts(t, databaseURL, key, aToken, "add", a, "-label", "acme")
	mustAccounts(t, databaseURL, key, bToken+"\n", "add", b)
	s := startServe(t, databaseURL, noFallback(key))
	pool := dbtest.Connect(t, databaseURL, 1)

	stored := func(sid string) int {
		rows, _ := counts(t, pool, sid)
		return rows
	}
	for _, c := range []struct {
		name, account, token string
		want                 int
	}{
		{"a with its token", a, aToken, 200},
		{"b with its token", b, bToken, 200},
		{"a's token on b's sid", b, aToken, 403},
		{"b's token on a's sid", a, bToken, 403},
		{"an account not in the table", simulate.AccountSID, testToken, 403},
	} {
		st, sid := deliverAs(t, s.addr, c.account, c.token)
		if st != c.want || stored(sid) != map[bool]int{true: 1, false: 0}[c.want == 200] {
			t.Fatalf("%s: %d and %d rows, want %d", c.name, st, stored(sid), c.want)
		}
	}
	if n := s.stderr.Count(`"reason":"AccountSid \"` + simulate.AccountSID + `\" is not an account this service accepts"`); n != 1 {
		t.Fatalf("the unknown account's refusal is logged %d times, want once with its sid:\n%s", n, s.stderr)
	}

	// Rotation, on the running server.
	_, newToken := newAccount()
	mustAccounts(t, databaseURL, key, newToken, "set-secondary", a)
	poll.Within(t, 5*time.Second, "the secondary token to verify", func() bool {
		st, _ := deliverAs(t, s.addr, a, newToken)
		return st == 200
	})
	if st, _ := deliverAs(t, s.addr, a, aToken); st != 200 {
		t.Fatalf("the primary during rotation: %d, want 200", st)
	}
	mustAccounts(t, databaseURL, key, "", "rotate", a)
	poll.Within(t, 5*time.Second, "the old token to stop verifying", func() bool {
		st, _ := deliverAs(t, s.addr, a, aToken)
		return st == 403
	})
	if st, _ := deliverAs(t, s.addr, a, newToken); st != 200 {
		t.Fatalf("the promoted token: %d, want 200", st)
	}
}

// TestDisablingAnAccountReachesEveryServer: disabling an account with the
// CLI turns its deliveries into 403 on two running servers (one a process
// of its own) within seconds, without a restart; enabling brings them back.
func TestDisablingAnAccountReachesEveryServer(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	a, aToken := newAccount()
	mustAccounts(t, databaseURL, key, aToken, "add", a)
	one := startServe(t, databaseURL, noFallback(key))
	two := startServeProcess(t, buildInbox(t), databaseURL, noFallback(key))
	for _, addr := range []string{one.addr, two.addr} {
		if st, _ := deliverAs(t, addr, a, aToken); st != 200 {
			t.Fatalf("before disabling: %d", st)
		}
	}
	mustAccounts(t, databaseURL, key, "", "disable", a)
	start := time.Now()
	for _, addr := range []string{one.addr, two.addr} {
		poll.Within(t, 5*time.Second, "the account to be refused at "+addr, func() bool {
			st, _ := deliverAs(t, addr, a, aToken)
			return st == 403
		})
	}
	t.Logf("both servers refused the disabled account %v after the CLI returned", time.Since(start))
	if !strings.Contains(one.stderr.String(), `AccountSid \"`+a+`\" is disabled`) {
		t.Fatalf("the refusal does not name the disabled account:\n%s", one.stderr)
	}
	mustAccounts(t, databaseURL, key, "", "enable", a)
	for _, addr := range []string{one.addr, two.addr} {
		poll.Within(t, 5*time.Second, "the account to be accepted again at "+addr, func() bool {
			st, _ := deliverAs(t, addr, a, aToken)
			return st == 200
		})
	}
}

// TestTokensAreSealedAndAWrongKeyStopsServe: the table never holds a token
// in the clear; serve refuses to start without the key or with a wrong one,
// naming the account; a second key (rotation) opens the first key's tokens,
// and reseal moves them to the new key.
func TestTokensAreSealedAndAWrongKeyStopsServe(t *testing.T) {
	t.Parallel()
	databaseURL, oldKey, newKey := dbtest.URL(t), newKeyB64(), newKeyB64()
	a, aToken := newAccount()
	mustAccounts(t, databaseURL, oldKey, aToken, "add", a)
	_, second := newAccount()
	mustAccounts(t, databaseURL, oldKey, second, "set-secondary", a)
	pool := dbtest.Connect(t, databaseURL, 1)
	var primary, secondary []byte
	if err := pool.QueryRow(t.Context(), `SELECT primary_token, secondary_token FROM twilio_accounts WHERE account_sid = $1`, a).Scan(&primary, &secondary); err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{primary, secondary} {
		for _, tok := range []string{aToken, second} {
			if bytes.Contains(v, []byte(tok)) || bytes.Contains(v, []byte(tok[:16])) {
				t.Fatal("a stored token is readable without the key")
			}
		}
	}

	// serve starts `inbox serve` with key, and with the fallback token or
	// not; it returns its log, and what it refused with, or nil once it
	// listens.
	serve := func(key string, fallback bool) (string, error) {
		vars := map[string]string{"DATABASE_URL": databaseURL, "PUBLIC_BASE_URL": "http://127.0.0.1", "LISTEN_ADDR": "127.0.0.1:0",
			"ADMIN_ADDR": "off", "ENCRYPTION_KEY": key}
		if fallback {
			vars["TWILIO_AUTH_TOKEN"] = testToken
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		stderr := &logtest.Buffer{}
		go func() { errc <- run(ctx, []string{"serve"}, env(vars), nil, io.Discard, stderr) }()
		// A refusal comes before listening; a start is seen in the log.
		var err error
		poll.Until(t, "serve to refuse or start", func() bool {
			select {
			case err = <-errc:
				return true
			default:
				return strings.Contains(stderr.String(), `"msg":"listening"`)
			}
		})
		return stderr.String(), err
	}
	// Without the fallback token, a key that opens no account stops serve,
	// naming the account; with it, serve starts (the table's one account is
	// refused), and the log names the account it cannot read.
	for key, refused := range map[string]bool{"": true, newKey: true, newKey + "," + oldKey: false, oldKey: false} {
		_, err := serve(key, false)
		if refused != (err != nil) || err != nil && (!strings.Contains(err.Error(), "cannot be decrypted") || !strings.Contains(err.Error(), a)) {
			t.Fatalf("serve with key %q… and no fallback: %v, want refused %v naming %s", key[:min(len(key), 4)], err, refused, a)
		}
		if err != nil && (strings.Contains(err.Error(), aToken) || strings.Contains(err.Error(), second)) {
			t.Fatal("the error shows a token")
		}
		log, err := serve(key, true)
		if err != nil {
			t.Fatalf("serve with key %q… and the fallback token: %v", key[:min(len(key), 4)], err)
		}
		if named := strings.Contains(log, `cannot be decrypted with ENCRYPTION_KEY`) && strings.Contains(log, a); named != refused {
			t.Fatalf("serve with key %q… and the fallback token: the log names %s as unreadable: %v, want %v\n%s", key[:min(len(key), 4)], a, named, refused, log)
		}
	}
	if out := mustAccounts(t, databaseURL, newKey+","+oldKey, "", "reseal"); !strings.Contains(out, "resealed 1 accounts") {
		t.Fatalf("reseal: %s", out)
	}
	if _, err := serve(newKey, false); err != nil {
		t.Fatalf("serve with only the new key after reseal: %v", err)
	}
	if _, err := serve(oldKey, false); err == nil {
		t.Fatal("serve with only the old key after reseal started")
	}
}

// TestFloodOfUnknownAccountsIsBounded: 10 000 deliveries, each naming a
// random account sid no one configured, are all refused, with a bounded
// number of database statements (counted on the wire) and a bounded memory
// of unknown sids.
//
// Not parallel: ten thousand refused connections keep both cores busy for
// seconds, which would starve the tests that bound a recovery time; Go
// runs it before the parallel tests of this package start.
func TestFloodOfUnknownAccountsIsBounded(t *testing.T) {
	databaseURL, key := dbtest.URL(t), newKeyB64()
	a, aToken := newAccount()
	mustAccounts(t, databaseURL, key, aToken, "add", a)
	proxy, viaProxy := dbtest.NewProxy(t, databaseURL)
	// Without workers: the proxy counts every statement, and the workers'
	// polls (the media's run in every process with workers) are not the
	// lookups this bounds.
	vars := noFallback(key)
	vars["WORKERS"] = "0"
	s, base := startAdmin(t, viaProxy, vars)

	const n = 10_000
	before := proxy.Statements()
	start := time.Now()
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for range 32 {
		wg.Go(func() {
			for range next {
				sid, token := newAccount()
				form := simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1)
				form.Set("AccountSid", sid)
				req := signedRequest(t, s.addr, token, form)
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusForbidden {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	statements := proxy.Statements() - before

	if refused.Load() != n || other.Load() != 0 {
		t.Fatalf("%d refused, %d otherwise, want all %d refused", refused.Load(), other.Load(), n)
	}
	// The lookup budget: a burst of 20, then 5 a second. On the wire, a
	// lookup may be preceded by the pool's liveness ping of a connection
	// idle for over a second, and the listener adds its LISTEN and reload.
	limit := int64(20 + 5*elapsed.Seconds() + 1)
	if statements > 2*limit+10 {
		t.Fatalf("%d statements for %d deliveries in %v, want at most %d", statements, n, elapsed, 2*limit+10)
	}
	m := scrape(t, base)
	unknown, _ := value(m, "inbox_twilio_unknown_sids", nil)
	lookups, _ := value(m, "inbox_account_lookups_total", nil)
	reason, _ := value(m, "inbox_refusals_total", map[string]string{"reason": "account_unknown"})
	if unknown > lookups || lookups > float64(limit) || reason != n {
		t.Fatalf("unknown sids held %v, lookups %v, refusals %v; want at most the lookups, at most %d, and %d", unknown, lookups, reason, limit, n)
	}
	t.Logf("%d deliveries with forged account sids in %v: %d statements, %v sids remembered", n, elapsed, statements, unknown)
	if st, _ := deliverAs(t, s.addr, a, aToken); st != 200 {
		t.Fatalf("the real account after the flood: %d", st)
	}
}

// TestAccountsCLINeverShowsAToken: every verb's output, and list, are free
// of tokens; a token given as an argument is refused; without a key, a
// token is stored only with -allow-plaintext-tokens, and list says so.
func TestAccountsCLINeverShowsAToken(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	a, aToken := newAccount()
	_, second := newAccount()
	var all strings.Builder
	for _, step := range []struct{ stdin, args string }{
		{aToken, "add " + a + " -label acme"},
		{second, "set-secondary " + a},
		{"", "list"},
		{"", "rotate " + a},
		{"", "disable " + a},
		{"", "list"},
		{"", "enable " + a},
	} {
		all.WriteString(mustAccounts(t, databaseURL, key, step.stdin, strings.Fields(step.args)...))
	}
	if strings.Contains(all.String(), aToken) || strings.Contains(all.String(), second) {
		t.Fatalf("the CLI printed a token:\n%s", all.String())
	}
	if !strings.Contains(all.String(), a) || !strings.Contains(all.String(), "acme") || !strings.Contains(all.String(), "disabled") {
		t.Fatalf("list lacks the account, its label or its state:\n%s", all.String())
	}

	b, bToken := newAccount()
	for _, c := range []struct {
		stdin, want string
		args        []string
	}{
		{"", "never from an argument", []string{"add", b, bToken}},
		{"", "flag provided but not defined: -token", []string{"add", b, "-token", bToken}},
		{"not-a-token", "want 32 lower-case hex digits", []string{"add", b}},
		{bToken, "is not an account sid", []string{"add", "AC123"}},
		{bToken, "exists already", []string{"add", a}},
		{"", "no secondary token to promote", []string{"rotate", a}},
		{"", "no such Twilio account", []string{"disable", b}},
	} {
		out, err := accountsCLI(t, databaseURL, key, c.stdin, c.args...)
		if err == nil || !strings.Contains(err.Error()+out, c.want) {
			t.Fatalf("accounts %v: %v\n%s\nwant %q", c.args[:2], err, out, c.want)
		}
		if strings.Contains(err.Error()+out, bToken) {
			t.Fatalf("accounts %v shows the token: %v %s", c.args[:2], err, out)
		}
	}

	if _, err := accountsCLI(t, databaseURL, "", bToken, "add", b); err == nil || !strings.Contains(err.Error(), "--allow-plaintext-tokens") {
		t.Fatalf("without a key: %v, want a refusal that names --allow-plaintext-tokens", err)
	}
	// The table's token is sealed, and no key is given: refused, unless forced.
	if _, err := accountsCLI(t, databaseURL, "", bToken, "add", b, "-allow-plaintext-tokens"); !errors.Is(err, account.ErrKeyMismatch) {
		t.Fatalf("a plaintext token beside a sealed one: %v, want ErrKeyMismatch", err)
	}
	mustAccounts(t, databaseURL, "", bToken, "add", b, "-allow-plaintext-tokens", "-force")
	if out := mustAccounts(t, databaseURL, key, "", "list"); !strings.Contains(out, "plaintext") || !strings.Contains(out, "2 accounts") {
		t.Fatalf("list does not say the plaintext token is plaintext:\n%s", out)
	}
}

// TestSimulateSignsForSeveralAccounts: simulate -accounts adds accounts,
// signs each message with its account's token, and the service stores
// every message once.
func TestSimulateSignsForSeveralAccounts(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	var stdout bytes.Buffer
	vars := s.simulateEnv()
	vars["TWILIO_AUTH_TOKEN"], vars["ENCRYPTION_KEY"], vars["LOG_FORMAT"] = "", key, "json"
	err := run(t.Context(), []string{"simulate", "-accounts", "4", "-n", "12", "-repeats", "3"}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "signing for 4 accounts") || !strings.Contains(stdout.String(), "answered 200: 36") {
		t.Fatalf("simulate -accounts: %v\n%s", err, stdout.String())
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	var accounts, left int
	pool.QueryRow(t.Context(), `SELECT count(DISTINCT account_sid) FROM messages`).Scan(&accounts)
	pool.QueryRow(t.Context(), `SELECT count(*) FROM twilio_accounts`).Scan(&left)
	if accounts != 4 || left != 0 {
		t.Fatalf("messages from %d accounts, %d accounts left in the table; want 4 and 0", accounts, left)
	}
}
