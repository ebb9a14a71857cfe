package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/simulate"
)

const testToken = "serve-test-token"

// publicURL is the PUBLIC_BASE_URL of every server a test starts. Servers
// listen on a port the kernel picks (LISTEN_ADDR=127.0.0.1:0), so nothing
// can take it between choosing and binding; the URL Twilio "calls" is then a
// name of its own, which deliveries are signed for, and they are sent to the
// address the server reports.
const publicURL = "http://inbox.test"

type server struct {
	addr      string // where the webhook listens
	adminAddr string // where the admin listener listens, when on
	env       map[string]string
	stderr    *logtest.Buffer
	cancel    context.CancelFunc // SIGTERM
	done      chan error         // what run returned
}

// listening waits until log says a listener of msg ("listening", "admin
// listening") is up and returns its address, or fails the test when
// exited reports that the server ended first.
func listening(t *testing.T, log *logtest.Buffer, msg string, exited func() error) string {
	t.Helper()
	var addr string
	poll.Until(t, "a "+msg+" line in the log", func() bool {
		if err := exited(); err != nil {
			t.Fatalf("the server exited before it was ready: %v\n%s", err, log)
		}
		for line := range strings.Lines(log.String()) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg && l.Addr != "" {
				addr = l.Addr
				return true
			}
		}
		return false
	})
	return addr
}

// startServe runs `inbox serve` in-process, as main would, with the
// environment a deployment needs plus extra (ADMIN_ADDR "127.0.0.1:0" to
// have an admin listener), and waits until it listens.
// stop stops s as SIGTERM does, before the test ends, and fails the test
// unless it stops cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	err := <-s.done
	s.done <- err // for the test's own cleanup
	if err != nil {
		t.Fatalf("serve stopped with %v", err)
	}
}

func startServe(t *testing.T, databaseURL string, extra map[string]string) *server {
	t.Helper()
	s := &server{stderr: &logtest.Buffer{}, done: make(chan error, 1)}
	s.env = map[string]string{
		"DATABASE_URL": databaseURL, "TWILIO_AUTH_TOKEN": testToken,
		"PUBLIC_BASE_URL": publicURL, "LISTEN_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json", "ADMIN_ADDR": "off",
		// Reconciliation would sweep api.twilio.com for every account a
		// test adds: the tests of it turn it on, against a stand-in.
		"RECONCILE_INTERVAL": "off",
		// The MMS of simulate name media on api.twilio.com: with another
		// API host they are never fetched (refused), so no test reaches
		// Twilio. The media tests give a stand-in's.
		"TWILIO_API_URL": "http://127.0.0.1:1",
	}
	maps.Copy(s.env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- run(ctx, []string{"serve"}, env(s.env), nil, io.Discard, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	exited := func() error {
		select {
		case err := <-s.done:
			s.done <- err // for the cleanup
			return fmt.Errorf("run returned %v", err)
		default:
			return nil
		}
	}
	s.addr = listening(t, s.stderr, "listening", exited)
	if s.env["ADMIN_ADDR"] != "off" {
		s.adminAddr = listening(t, s.stderr, "admin listening", exited)
	}
	return s
}

// signedRequest is a delivery of form to the webhook at addr, signed with
// token for publicURL, as Twilio signs it.
func signedRequest(t *testing.T, addr, token string, form url.Values) *http.Request {
	t.Helper()
	req, err := simulate.NewRequest(t.Context(), "http://"+addr+api.PathMessages, publicURL+api.PathMessages, token, form)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// simulateEnv is what `inbox simulate` needs to play Twilio against s.
func (s *server) simulateEnv() map[string]string {
	return map[string]string{"DATABASE_URL": s.env["DATABASE_URL"], "TWILIO_AUTH_TOKEN": testToken,
		"SIMULATE_URL": "http://" + s.addr, "PUBLIC_BASE_URL": publicURL}
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
	req := signedRequest(t, s.addr, testToken, simulate.InboundForm(simulate.SMS, sid, 1))
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
	vars := s.simulateEnv()
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

	// Each message by its webhook and in an Event Streams batch, each
	// three times, shuffled: 25 messages (three batches), 75 webhooks and
	// 9 batches, one row each.
	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-events", "-n", "25", "-repeats", "3", "-concurrency", "12"}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "answered 200: 84") || !strings.Contains(stdout.String(), "rows stored for those 25 sids: 25 (exactly once each)") {
		t.Fatalf("simulate -events: %v\n%s", err, stdout.String())
	}

	// Signed with the wrong token, every delivery is refused and simulate says so.
	vars["TWILIO_AUTH_TOKEN"] = "wrong"
	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-n", "2"}, env(vars), nil, &stdout, io.Discard)
	if err == nil || !strings.Contains(stdout.String(), "answered 403: 6 (the first said: X-Twilio-Signature does not match") {
		t.Fatalf("simulate with a wrong token: %v\n%s", err, stdout.String())
	}
}
