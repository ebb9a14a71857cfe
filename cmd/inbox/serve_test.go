package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/simulate"
)

const testToken = "serve-test-token"

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	addr   string
	env    map[string]string
	stderr *logtest.Buffer
	cancel context.CancelFunc // SIGTERM
	done   chan error         // what run returned
}

// startServe runs `inbox serve` in-process, as main would, with the
// environment a deployment needs plus extra, and waits until it answers
// /healthz.
func startServe(t *testing.T, databaseURL string, extra map[string]string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{addr: addr, stderr: &logtest.Buffer{}, done: make(chan error, 1)}
	s.env = map[string]string{
		"DATABASE_URL": databaseURL, "TWILIO_AUTH_TOKEN": testToken,
		"PUBLIC_BASE_URL": "http://" + addr, "LISTEN_ADDR": addr, "LOG_FORMAT": "json", "ADMIN_ADDR": "off",
	}
	maps.Copy(s.env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- run(ctx, []string{"serve"}, env(s.env), nil, io.Discard, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve exited before it was ready: %v\n%s", err, s.stderr)
		case <-time.After(20 * time.Millisecond): // poll the condition, bounded by the deadline
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 10 s:\n%s", s.stderr)
		}
	}
}

func TestServeRefusesToStartWithoutWhatSignaturesNeed(t *testing.T) {
	t.Parallel()
	base := map[string]string{"TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://hooks.example.com", "LISTEN_ADDR": "127.0.0.1:0",
		"DATABASE_URL": dbtest.URL(t), "ADMIN_ADDR": "off"}
	cases := []struct {
		name, key, value, want string
	}{
		{"no auth token and no account", "TWILIO_AUTH_TOKEN", "", "TWILIO_AUTH_TOKEN is not set and twilio_accounts has no account"},
		{"encryption key not 32 bytes", "ENCRYPTION_KEY", "c2hvcnQ=", "invalid ENCRYPTION_KEY: key 1 of 1: want 32 bytes"},
		{"no public base url", "PUBLIC_BASE_URL", "", "PUBLIC_BASE_URL is not set"},
		{"public base url with a query", "PUBLIC_BASE_URL", "https://hooks.example.com/?x=1", "give only scheme, host, port"},
		{"public base url with a fragment", "PUBLIC_BASE_URL", "https://hooks.example.com#rc=3", "give only scheme, host, port"},
		{"public base url not http", "PUBLIC_BASE_URL", "ftp://hooks.example.com", "scheme must be http or https"},
		{"public base url without host", "PUBLIC_BASE_URL", "https://", "no host"},
		{"request timeout past Twilio's", "REQUEST_TIMEOUT", "20s", "under Twilio's 15 s"},
		{"request timeout not a duration", "REQUEST_TIMEOUT", "soon", "invalid REQUEST_TIMEOUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vars := maps.Clone(base)
			vars[c.key] = c.value
			err := run(t.Context(), []string{"serve"}, env(vars), nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestGracefulShutdownFinishesInFlightRequest: on SIGTERM the server stops
// accepting, the request already running finishes and is stored, and the
// pool closes only after that.
func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	s := startServe(t, databaseURL, nil)
	ctx := t.Context()

	// Hold the table so the request's insert waits, in flight.
	admin := dbtest.Connect(t, databaseURL, 2)
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	sid := simulate.NewMessageSID(simulate.SMS)
	target := "http://" + s.addr + "/twilio/messages"
	req, err := simulate.NewRequest(ctx, target, target, testToken, simulate.InboundForm(simulate.SMS, sid, 1))
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: string(b)}
	}()

	poll.Until(t, "the insert to wait on the lock", func() bool {
		var waiting int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO messages%'`).Scan(&waiting)
		return err == nil && waiting == 1
	})

	s.cancel() // SIGTERM
	poll.Until(t, "new connections to be refused", func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case a := <-answered:
		t.Fatalf("the in-flight request ended before its insert could: %+v", a)
	default:
	}

	if err := tx.Rollback(ctx); err != nil { // the insert proceeds
		t.Fatal(err)
	}
	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, "<Response>") {
		t.Fatalf("in-flight request: %+v, want 200 TwiML", a)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
	s.done <- nil // for the cleanup
	var rows int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM messages WHERE metadata->>'message_sid' = $1`, sid).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("rows = %d (%v), want 1", rows, err)
	}
	for _, line := range []string{"shutting down", `"msg":"stopped"`} {
		if !strings.Contains(s.stderr.String(), line) {
			t.Fatalf("log lacks %q:\n%s", line, s.stderr)
		}
	}
}

func TestSimulateAgainstServe(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	s := startServe(t, databaseURL, nil)
	var stdout bytes.Buffer
	vars := map[string]string{"DATABASE_URL": databaseURL, "TWILIO_AUTH_TOKEN": testToken, "SIMULATE_URL": "http://" + s.addr}
	err := run(t.Context(), []string{"simulate", "-n", "12", "-repeats", "5", "-concurrency", "10"}, env(vars), nil, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, stdout.String())
	}
	for _, want := range []string{"sent 60 deliveries of 12 messages", "answered 200: 60", "rows stored for those 12 sids: 12 (exactly once each)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("simulate output lacks %q:\n%s", want, stdout.String())
		}
	}

	// Twilio's connection overrides in the configured URL are not signed:
	// the service verifies deliveries to such a URL.
	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-n", "4", "-overrides", "rc=3&rp=5xx"}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "answered 200: 12") || strings.Contains(stdout.String(), "sent again") {
		t.Fatalf("simulate -overrides: %v\n%s", err, stdout.String())
	}

	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-status", "-n", "9", "-repeats", "3", "-concurrency", "12"}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "messages in their final status: 9 of 9") {
		t.Fatalf("simulate -status: %v\n%s", err, stdout.String())
	}

	// Signed with the wrong token, every delivery is refused and simulate says so.
	vars["TWILIO_AUTH_TOKEN"] = "wrong"
	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-n", "2"}, env(vars), nil, &stdout, io.Discard)
	if err == nil || !strings.Contains(stdout.String(), "answered 403: 6") {
		t.Fatalf("simulate with a wrong token: %v\n%s", err, stdout.String())
	}
}
