package main

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/simulate"
)

const forwardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// app is the team's app that `serve` forwards to: it verifies every
// request as a Standard Webhooks receiver does and counts accepted
// deliveries by webhook-id.
type app struct {
	srv   *httptest.Server
	delay time.Duration // how long the app takes to answer
	// hold, when set, makes every request wait in the app until it is
	// closed; held receives each webhook-id as it starts waiting.
	hold chan struct{}
	held chan string
	mu   sync.Mutex
	ids  map[string]int
}

func newApp(t *testing.T) *app {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(forwardSecret)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{ids: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("forwarded request does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		time.Sleep(a.delay) // the app's own work, not synchronisation
		if a.hold != nil {
			a.held <- r.Header.Get("webhook-id")
			<-a.hold
		}
		a.mu.Lock()
		a.ids[r.Header.Get("webhook-id")]++
		a.mu.Unlock()
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) deliveries(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[id]
}

// total returns how many forwards the app accepted.
func (a *app) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.ids {
		n += c
	}
	return n
}

// distinct returns how many webhook-ids the app accepted.
func (a *app) distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func forwarding(a *app) map[string]string {
	return map[string]string{"FORWARD_URL": a.srv.URL, "FORWARD_SECRET": forwardSecret}
}

// deliverAt sends n identical deliveries of form to each server in turn, all at once.
func deliverAt(t *testing.T, addrs []string, sid string, n int) []int {
	t.Helper()
	form := simulate.InboundForm(simulate.SMS, sid, 1)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: n, MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		target := "http://" + addrs[i%len(addrs)] + "/twilio/messages"
		req, err := simulate.NewRequest(t.Context(), target, target, testToken, form)
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
	a := newApp(t)
	one := startServe(t, databaseURL, forwarding(a))
	two := startServe(t, databaseURL, forwarding(a))
	pool := dbtest.Connect(t, databaseURL, 2)

	sid := simulate.NewMessageSID(simulate.SMS)
	for i, st := range deliverAt(t, []string{one.addr, two.addr}, sid, 200) {
		if st != http.StatusOK {
			t.Fatalf("delivery %d answered %d, want 200", i, st)
		}
	}
	poll.Until(t, "the forward", func() bool { return a.deliveries(sid) >= 1 })
	poll.Until(t, "the job to complete", func() bool {
		var state string
		pool.QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&state)
		return state == "completed"
	})
	if rows, jobs := counts(t, pool, sid); rows != 1 || jobs != 1 || a.deliveries(sid) != 1 {
		t.Fatalf("rows = %d, jobs = %d, forwards = %d; want 1 each", rows, jobs, a.deliveries(sid))
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
	a := newApp(t)
	s := startServe(t, viaProxy, forwarding(a))
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
	poll.Until(t, "the forward", func() bool { return a.deliveries(sid) >= 1 })
	if rows, jobs := counts(t, pool, sid); rows != 1 || jobs != 1 || a.deliveries(sid) != 1 {
		t.Fatalf("rows = %d, jobs = %d, forwards = %d; want 1 each", rows, jobs, a.deliveries(sid))
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
	a := newApp(t)
	a.hold, a.held = make(chan struct{}), make(chan string, 1)
	s := startServe(t, databaseURL, forwarding(a))
	sid := simulate.NewMessageSID(simulate.SMS)
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
		t.Fatalf("delivery: %d", st)
	}
	if id := <-a.held; id != sid {
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
	close(a.hold)
	if err := <-s.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	s.done <- nil // for the cleanup
	pool := dbtest.Connect(t, databaseURL, 1)
	var state string
	if err := pool.QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&state); err != nil || state != "completed" {
		t.Fatalf("job state %q (%v), want completed", state, err)
	}
	if a.deliveries(sid) != 1 {
		t.Fatalf("forwards = %d, want 1", a.deliveries(sid))
	}
}

// TestServeEnqueuesAndWorkForwards: serve with WORKERS=0 only enqueues;
// `inbox work` on the same database forwards, once.
func TestServeEnqueuesAndWorkForwards(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	a := newApp(t)
	vars := forwarding(a)
	vars["WORKERS"] = "0"
	s := startServe(t, databaseURL, vars)
	sid := simulate.NewMessageSID(simulate.SMS)
	for _, st := range deliverAt(t, []string{s.addr}, sid, 20) {
		if st != http.StatusOK {
			t.Fatalf("delivery: %d", st)
		}
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	if _, jobs := counts(t, pool, sid); jobs != 1 || a.deliveries(sid) != 0 {
		t.Fatalf("serve with WORKERS=0: %d jobs, %d forwards; want 1 job waiting", jobs, a.deliveries(sid))
	}

	vars = maps.Clone(vars)
	vars["WORKERS"], vars["DATABASE_URL"], vars["LOG_FORMAT"] = "2", databaseURL, "json"
	adminAddr := freeAddr(t)
	vars["ADMIN_ADDR"], vars["ADMIN_TOKEN"] = adminAddr, adminToken
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"work"}, env(vars), nil, io.Discard, io.Discard) }()
	poll.Until(t, "work to forward the message", func() bool { return a.deliveries(sid) == 1 })
	// work's own admin listener reports its forwards.
	poll.Until(t, "work's metrics to count the forward", func() bool {
		v, _ := value(scrape(t, "http://"+adminAddr), "inbox_processing_attempts_total", map[string]string{"event": "message", "outcome": "success"})
		return v == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("work: %v", err)
	}
	if a.deliveries(sid) != 1 {
		t.Fatalf("forwards = %d, want 1", a.deliveries(sid))
	}
}

// TestSimulateReceivesTheForwards: simulate plays Twilio and the team's app
// at once and reports each message forwarded once; with the wrong secret it
// says the signatures fail and exits non-zero.
func TestSimulateReceivesTheForwards(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	receiveAddr := freeAddr(t)
	s := startServe(t, databaseURL, map[string]string{"FORWARD_URL": "http://" + receiveAddr + "/inbox", "FORWARD_SECRET": forwardSecret})
	vars := map[string]string{"DATABASE_URL": databaseURL, "TWILIO_AUTH_TOKEN": testToken, "SIMULATE_URL": "http://" + s.addr, "FORWARD_SECRET": forwardSecret}
	var stdout strings.Builder
	err := run(t.Context(), []string{"simulate", "-n", "12", "-repeats", "5", "-receive", receiveAddr}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "forwarded: 12 messages, each once") {
		t.Fatalf("simulate -receive: %v\n%s", err, stdout.String())
	}

	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-status", "-n", "6", "-receive", receiveAddr}, env(vars), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "forwarded: 6 final statuses, each once") {
		t.Fatalf("simulate -status -receive: %v\n%s", err, stdout.String())
	}

	vars["FORWARD_SECRET"] = "whsec_" + strings.Repeat("A", 32) // not the service's
	stdout.Reset()
	err = run(t.Context(), []string{"simulate", "-n", "2", "-receive", receiveAddr}, env(vars), nil, &stdout, io.Discard)
	if err == nil || !strings.Contains(stdout.String(), "signatures that failed") {
		t.Fatalf("simulate -receive with the wrong secret: %v\n%s", err, stdout.String())
	}
}
