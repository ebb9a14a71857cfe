package process_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"inbox/db"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/message"
	"inbox/process"
	"inbox/simulate"
	"inbox/store"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes, base64

// fastRetry retries at once, so a test sees several attempts in a second.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(20 * time.Millisecond) }

// receiver is the team's app: it verifies every request with an
// independent Standard Webhooks implementation and answers what answer says.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int64) int // status for the n-th request, from 1
	calls  atomic.Int64
	mu     sync.Mutex
	got    map[string][]process.Payload // by webhook-id, the 2xx-answered ones
}

func newReceiver(t *testing.T, answer func(n int64) int) *receiver {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, answer: answer, got: map[string][]process.Payload{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.calls.Add(1)
		body, _ := io.ReadAll(req.Body)
		if err := wh.Verify(body, req.Header); err != nil {
			t.Errorf("signature does not verify with the standard-webhooks library: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		code := answer(n)
		if code/100 == 2 {
			var p process.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Errorf("payload: %v", err)
			}
			r.mu.Lock()
			r.got[req.Header.Get("webhook-id")] = append(r.got[req.Header.Get("webhook-id")], p)
			r.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) delivered() map[string][]process.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got)
}

type harness struct {
	pool  *pgxpool.Pool
	store *store.Store
	logs  *logtest.Buffer
}

// setup starts workers that forward to url, on a fresh database.
func setup(t *testing.T, proc func(*process.Forwarder) process.Processor, url string) *harness {
	t.Helper()
	pool := dbtest.Pool(t, 8)
	h := &harness{pool: pool, logs: &logtest.Buffer{}}
	fwd, err := process.NewForwarder(url, secret, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var p process.Processor = fwd
	if proc != nil {
		p = proc(fwd)
	}
	c, err := process.NewClient(pool, process.Config{
		Store: store.New(pool), Processor: p, Workers: 4, MaxAttempts: 5,
		Logger:      slog.New(slog.NewJSONHandler(h.logs, nil)),
		RetryPolicy: fastRetry{}, FetchPollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.store = store.NewWithJobs(pool, c)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return h
}

func (h *harness) insert(t *testing.T, sid string) bool {
	t.Helper()
	form := simulate.InboundForm(simulate.SMS, sid, 1)
	params := message.Params{}
	for k := range form {
		params[k] = form.Get(k)
	}
	_, inserted, err := h.store.InsertInboundMessage(t.Context(), db.InsertInboundMessageParams{
		AccountSID: simulate.AccountSID, FromAddress: form.Get("From"), ToAddress: form.Get("To"),
		Body: form.Get("Body"), NumSegments: 1, Media: message.MediaList{},
		Metadata: message.Metadata{MessageSID: sid, Params: params},
	})
	if err != nil {
		t.Fatal(err)
	}
	return inserted
}

// jobs returns the states of the jobs for sid.
func (h *harness) jobs(t *testing.T, sid string) []string {
	t.Helper()
	rows, err := h.pool.Query(t.Context(), `SELECT state::text FROM river_job WHERE args->>'sid' = $1 ORDER BY id`, sid)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		states = append(states, s)
	}
	return states
}

func TestNewMessageIsForwardedOnceAndVerifies(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(int64) int { return http.StatusNoContent })
	h := setup(t, nil, rcv.srv.URL)
	sid := simulate.NewMessageSID(simulate.SMS)
	if !h.insert(t, sid) || h.insert(t, sid) {
		t.Fatal("want the first insert new and the second a duplicate")
	}
	poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
	got := rcv.delivered()
	if len(got) != 1 || len(got[sid]) != 1 {
		t.Fatalf("deliveries by webhook-id: %v, want one for %s", got, sid)
	}
	p := got[sid][0]
	if p.Type != "message.received" || p.ID != sid || p.Message.SID != sid || p.Message.Direction != message.Inbound ||
		p.Message.Params["MessageSid"] != sid || p.Message.Body == "" || p.Message.ReceivedAt.IsZero() {
		t.Fatalf("payload %+v", p)
	}
	if n := h.jobs(t, sid); len(n) != 1 {
		t.Fatalf("jobs for the sid: %v, want exactly one: the duplicate insert enqueued nothing", n)
	}
}

func TestRetriedUntilTheReceiverAnswers2xx(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(n int64) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h := setup(t, nil, rcv.srv.URL)
	sid := simulate.NewMessageSID(simulate.SMS)
	h.insert(t, sid)
	poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
	if calls := rcv.calls.Load(); calls != 3 {
		t.Fatalf("receiver called %d times, want 3 (500, 500, 200)", calls)
	}
	if got := rcv.delivered(); len(got[sid]) != 1 {
		t.Fatalf("accepted deliveries %v, want one", got)
	}
	if h.logs.Count("processing failed; will retry") != 2 {
		t.Fatalf("want two retry lines:\n%s", h.logs)
	}
}

func TestPermanentRefusalCancelsTheJob(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(int64) int { return http.StatusUnprocessableEntity })
	h := setup(t, nil, rcv.srv.URL)
	sid := simulate.NewMessageSID(simulate.SMS)
	h.insert(t, sid)
	poll.Until(t, "the job to be cancelled", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "cancelled" })
	// A job that is cancelled is never fetched again: the receiver saw one
	// request, and River's record says one attempt.
	var attempts int
	if err := h.pool.QueryRow(t.Context(), `SELECT attempt FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&attempts); err != nil || attempts != 1 {
		t.Fatalf("attempts = %d (%v), want 1", attempts, err)
	}
	if rcv.calls.Load() != 1 || h.logs.Count("processing failed for good; job cancelled") != 1 {
		t.Fatalf("calls = %d, want 1 and a log line:\n%s", rcv.calls.Load(), h.logs)
	}
}

func TestReceiverDownForTheWholeLoadThenUp(t *testing.T) {
	t.Parallel()
	// A port that refuses connections now, and later serves.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rcv := newReceiver(t, func(int64) int { return http.StatusOK })
	h := setup(t, nil, "http://"+addr+"/hook")

	var sids []string
	for range 20 {
		sid := simulate.NewMessageSID(simulate.SMS)
		h.insert(t, sid)
		sids = append(sids, sid)
	}
	poll.Until(t, "every job to have failed once", func() bool {
		var failed int
		h.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE attempt >= 1 AND state <> 'completed'`).Scan(&failed)
		return failed == 20
	})
	// The receiver comes up on the address the forwarder was given.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: rcv.srv.Config.Handler}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })

	poll.Until(t, "every job to complete", func() bool {
		var done int
		h.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&done)
		return done == 20
	})
	got := rcv.delivered()
	for _, sid := range sids {
		if j := h.jobs(t, sid); len(j) != 1 || len(got[sid]) != 1 {
			t.Fatalf("%s: jobs %v, accepted deliveries %d; want one of each", sid, j, len(got[sid]))
		}
	}
}

// countingProcessor is a team's own processing, given instead of the forwarder.
type countingProcessor struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingProcessor) Process(_ context.Context, ev process.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[ev.ID]++
	return nil
}

func TestTeamProcessorReplacesTheForwarder(t *testing.T) {
	t.Parallel()
	own := &countingProcessor{seen: map[string]int{}}
	h := setup(t, func(*process.Forwarder) process.Processor { return own }, "http://127.0.0.1:1/unused")
	sid := simulate.NewMessageSID(simulate.SMS)
	h.insert(t, sid)
	poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
	own.mu.Lock()
	defer own.mu.Unlock()
	if own.seen[sid] != 1 || len(own.seen) != 1 {
		t.Fatalf("own processor saw %v, want %s once", own.seen, sid)
	}
}

func TestSecretMustBeStandardWebhooks(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "hunter2", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := process.NewForwarder("https://app.example.com/hook", bad, time.Second); err == nil {
			t.Errorf("secret %q accepted", bad)
		} else if len(bad) > 8 && strings.Contains(err.Error(), bad[6:]) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
	for _, bad := range []string{"ftp://x", "app.example.com/hook", "https://"} {
		if _, err := process.NewForwarder(bad, secret, time.Second); err == nil {
			t.Errorf("url %q accepted", bad)
		}
	}
}
