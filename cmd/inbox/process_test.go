package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// deliverAt sends n identical deliveries of form to each server in turn, all at once.
func deliverAt(t *testing.T, addrs []string, sid string, n int) []int {
	t.Helper()
	return deliverAll(t, addrs, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, 1), n)
}

// deliverAll sends n identical signed deliveries of form to path, spread
// over addrs, all at once, and returns their statuses.
func deliverAll(t *testing.T, addrs []string, path string, form url.Values, n int) []int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: n, MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		req, err := simulate.NewRequest(t.Context(), "http://"+addrs[i%len(addrs)]+path, publicURL+path, testToken, form)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			<-start
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("delivery %d: %v", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// counts returns the rows and River jobs for sid.
func counts(t *testing.T, pool *pgxpool.Pool, sid string) (rows, jobs int) {
	t.Helper()
	err := pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM messages WHERE metadata->>'message_sid' = $1),
		(SELECT count(*) FROM river_job WHERE args->>'sid' = $1)`, sid).Scan(&rows, &jobs)
	if err != nil {
		t.Fatal(err)
	}
	return rows, jobs
}

// TestStormIsStoredProcessedAndForwardedOnce: 200 identical deliveries at
// once, split across two `serve` processes on one database: every one gets
// 200, and there is one row, one job and one forward.
func TestStormIsStoredProcessedAndForwardedOnce(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	a := teamapp.New(t, teamapp.Options{})
	one := startServe(t, databaseURL, a.Env())
	two := startServe(t, databaseURL, a.Env())
	pool := dbtest.Connect(t, databaseURL, 2)

	sid := simulate.NewMessageSID(simulate.SMS)
	for i, st := range deliverAt(t, []string{one.addr, two.addr}, sid, 200) {
		if st != http.StatusOK {
			t.Fatalf("delivery %d answered %d, want 200", i, st)
		}
	}
	poll.Until(t, "the forward", func() bool { return a.Deliveries(sid) >= 1 })
	poll.Until(t, "the job to complete", func() bool {
		var state string
		pool.QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&state)
		return state == "completed"
	})
	if rows, jobs := counts(t, pool, sid); rows != 1 || jobs != 1 || a.Deliveries(sid) != 1 {
		t.Fatalf("rows = %d, jobs = %d, forwards = %d; want 1 each", rows, jobs, a.Deliveries(sid))
	}
}

// TestLostCommitAnswerIsProcessedOnce: the connection dies after the
// statement that stores the message and its job reached the database (and
// committed) and before its answer came back. The delivery gets 503; the row and its job were committed together,
// so the message is processed anyway; Twilio's retry gets 200 and adds no
// second job.
func TestLostCommitAnswerIsProcessedOnce(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	proxy, viaProxy := dbtest.NewProxy(t, databaseURL)
	a := teamapp.New(t, teamapp.Options{})
	s := startServe(t, viaProxy, a.Env())
	pool := dbtest.Connect(t, databaseURL, 2)

	sid := simulate.NewMessageSID(simulate.SMS)
	proxy.CutReplyTo([]byte(sid))
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusServiceUnavailable {
		t.Fatalf("delivery whose commit answer was lost: %d, want 503", st)
	}
	if rows, jobs := counts(t, pool, sid); rows != 1 || jobs != 1 {
		t.Fatalf("after the lost answer: rows = %d, jobs = %d; want the commit to have landed, 1 and 1", rows, jobs)
	}
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
		t.Fatalf("Twilio's retry: %d, want 200", st)
	}
	poll.Until(t, "the forward", func() bool { return a.Deliveries(sid) >= 1 })
	if rows, jobs := counts(t, pool, sid); rows != 1 || jobs != 1 || a.Deliveries(sid) != 1 {
		t.Fatalf("rows = %d, jobs = %d, forwards = %d; want 1 each", rows, jobs, a.Deliveries(sid))
	}
}

// TestServeRefusesForwardingItCannotSign: FORWARD_URL without a valid
// secret stops serve at start.
func TestServeRefusesForwardingItCannotSign(t *testing.T) {
	t.Parallel()
	base := map[string]string{"TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://hooks.example.com", "FORWARD_URL": "https://app.example.com/hook"}
	for secret, want := range map[string]string{
		"":               "FORWARD_SECRET is not",
		"not-a-secret":   "invalid FORWARD_SECRET",
		"whsec_c2hvcnQ=": "at least 24 bytes",
	} {
		vars := maps.Clone(base)
		vars["FORWARD_SECRET"] = secret
		err := run(t.Context(), []string{"serve"}, env(vars), nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || (secret != "" && strings.Contains(err.Error(), secret)) {
			t.Fatalf("secret %q: err = %v, want %q and no secret", secret, err, want)
		}
	}
}

// TestSIGTERMLetsRunningForwardsFinish: on SIGTERM, serve stops taking
// requests and jobs, but a forward already running finishes and its job is
// recorded completed before serve returns.
func TestSIGTERMLetsRunningForwardsFinish(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	a := teamapp.New(t, teamapp.Options{Hold: true})
	s := startServe(t, databaseURL, a.Env())
	sid := simulate.NewMessageSID(simulate.SMS)
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
		t.Fatalf("delivery: %d", st)
	}
	if id := a.Held(); id != sid {
		t.Fatalf("forward of %s, want %s", id, sid)
	}
	s.cancel() // SIGTERM, with the forward in the app's hands
	poll.Until(t, "the webhook listener to close", func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-s.done:
		t.Fatalf("serve returned while a forward was running: %v", err)
	default:
	}
	a.Release()
	if err := <-s.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	s.done <- nil // for the cleanup
	pool := dbtest.Connect(t, databaseURL, 1)
	var state string
	if err := pool.QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&state); err != nil || state != "completed" {
		t.Fatalf("job state %q (%v), want completed", state, err)
	}
	if a.Deliveries(sid) != 1 {
		t.Fatalf("forwards = %d, want 1", a.Deliveries(sid))
	}
}

// TestServeEnqueuesAndWorkForwards: serve with WORKERS=0 only enqueues;
// `inbox work` on the same database forwards, once.
func TestServeEnqueuesAndWorkForwards(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	a := teamapp.New(t, teamapp.Options{})
	vars := a.Env()
	vars["WORKERS"] = "0"
	s := startServe(t, databaseURL, vars)
	sid := simulate.NewMessageSID(simulate.SMS)
	for _, st := range deliverAt(t, []string{s.addr}, sid, 20) {
		if st != http.StatusOK {
			t.Fatalf("delivery: %d", st)
		}
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	if _, jobs := counts(t, pool, sid); jobs != 1 || a.Deliveries(sid) != 0 {
		t.Fatalf("serve with WORKERS=0: %d jobs, %d forwards; want 1 job waiting", jobs, a.Deliveries(sid))
	}

	vars = maps.Clone(vars)
	vars["WORKERS"], vars["DATABASE_URL"], vars["LOG_FORMAT"] = "2", databaseURL, "json"
	vars["ADMIN_ADDR"], vars["ADMIN_TOKEN"] = "127.0.0.1:0", adminToken
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &logtest.Buffer{}
	go func() { done <- run(ctx, []string{"work"}, env(vars), nil, io.Discard, log) }()
	adminAddr := listening(t, log, "admin listening", func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("work returned %v", err)
		default:
			return nil
		}
	})
	poll.Until(t, "work to forward the message", func() bool { return a.Deliveries(sid) == 1 })
	// work's own admin listener reports its forwards.
	poll.Until(t, "work's metrics to count the forward", func() bool {
		v, _ := value(scrape(t, "http://"+adminAddr), "inbox_processing_attempts_total", map[string]string{"destination": "default", "event": "message", "outcome": "success"})
		return v == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("work: %v", err)
	}
	if a.Deliveries(sid) != 1 {
		t.Fatalf("forwards = %d, want 1", a.Deliveries(sid))
	}
}

// freeAddr returns a loopback address nothing listens on now, for the one
// test that must name an address before anything listens there; another
// process may take it meanwhile, so that test tries again with another.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSimulateReceivesTheForwards: simulate plays Twilio and the team's app
// at once and reports each message forwarded once; with the wrong secret it
// says the signatures fail and exits non-zero.
func TestSimulateReceivesTheForwards(t *testing.T) {
	t.Parallel()
	for try := 1; ; try++ {
		err := simulateReceiving(t, freeAddr(t))
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "address already in use") || try == 3 {
			t.Fatal(err)
		}
		t.Logf("try %d: the address was taken before simulate could listen: %v", try, err)
	}
}

// simulateReceiving runs the test's simulations with the team's app on
// receiveAddr.
func simulateReceiving(t *testing.T, receiveAddr string) error {
	// simulate -receive takes its address as a user gives it, so the test
	// must name one before serve forwards there.
	s := startServe(t, dbtest.URL(t), map[string]string{"FORWARD_URL": "http://" + receiveAddr + "/inbox", "FORWARD_SECRET": teamapp.Secret})
	vars := s.simulateEnv()
	vars["FORWARD_SECRET"] = teamapp.Secret
	var stdout strings.Builder
	err := run(t.Context(), []string{"simulate", "-n", "12", "-repeats", "5", "-receive", receiveAddr}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "forwarded: 12 messages, each once") {
		return fmt.Errorf("simulate -receive: %w\n%s", err, stdout.String())
	}

	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-status", "-n", "6", "-receive", receiveAddr}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "forwarded: 6 final statuses, each once") {
		return fmt.Errorf("simulate -status -receive: %w\n%s", err, stdout.String())
	}

	vars["FORWARD_SECRET"] = "whsec_" + strings.Repeat("A", 32) // not the service's
	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-n", "2", "-receive", receiveAddr}, env(vars), nil, &stdout, io.Discard)
	if err == nil || !strings.Contains(stdout.String(), "signatures that failed") {
		return fmt.Errorf("simulate -receive with the wrong secret: %v\n%s", err, stdout.String())
	}
	return nil
}
