package dispatch_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/destination"
	"inbox/destination/httpdest"
	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/internal/workertest"
	"inbox/message"
	"inbox/simulate"
	"inbox/store"
)

// answering is a team app that answers the n-th request with answer(n).
func answering(t *testing.T, answer func(n int64) int) *teamapp.App {
	return teamapp.New(t, teamapp.Options{Answer: func(n int64, _ http.Header) int { return answer(n) }})
}

// maxAttempts is what the harness's store gives each job.
const maxAttempts = workertest.Attempts

type harness struct {
	pool  *pgxpool.Pool
	store *store.Store
	logs  *logtest.Buffer
}

// setup starts workers that forward to url, on a fresh database; send,
// when set, replaces the forwarder.
func setup(t *testing.T, send func(*httpdest.Forwarder) destination.Sender, url string) *harness {
	t.Helper()
	pool := dbtest.Pool(t, 8)
	h := &harness{pool: pool, logs: &logtest.Buffer{}}
	workertest.Start(t, pool, workertest.Options{URL: url, Sender: send, Logs: h.logs})
	h.store = store.NewWith(pool, store.Options{JobAttempts: maxAttempts})
	return h
}

func (h *harness) insert(t *testing.T, sid string) bool {
	t.Helper()
	_, inserted, err := h.store.InsertInboundMessage(t.Context(), fixture.Inbound(sid))
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
	app := answering(t, func(int64) int { return http.StatusNoContent })
	h := setup(t, nil, app.URL)
	sid := fixture.SID()
	if !h.insert(t, sid) || h.insert(t, sid) {
		t.Fatal("want the first insert new and the second a duplicate")
	}
	poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
	if got := app.Accepted(); len(got) != 1 || got[sid] != 1 {
		t.Fatalf("deliveries by webhook-id: %v, want one for %s", got, sid)
	}
	p := app.Payloads(sid)[0]
	if p.Type != "message.received" || p.ID != sid || p.Message.SID != sid || p.Message.Direction != message.DirectionInbound ||
		p.Message.Params["MessageSid"] != sid || p.Message.Body == "" || p.Message.ReceivedAt.IsZero() {
		t.Fatalf("payload %+v", p)
	}
	if n := h.jobs(t, sid); len(n) != 1 {
		t.Fatalf("jobs for the sid: %v, want exactly one: the duplicate insert enqueued nothing", n)
	}
	sameFields(t, app.Raw(sid), reflect.TypeFor[message.Payload]())
}

// sameFields fails unless the JSON object in body has exactly the fields
// of the Go struct typ, at every level where typ has a struct: the payload
// the database builds and the type documented for Go receivers agree.
func sameFields(t *testing.T, body []byte, typ reflect.Type) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("payload is not a JSON object: %v: %s", err, body)
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want, optional := map[string]reflect.Type{}, map[string]bool{}
	for f := range typ.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		want[name], optional[name] = f.Type, opts == "omitempty"
	}
	for name := range obj {
		if _, ok := want[name]; !ok {
			t.Errorf("payload field %q is not in %s", name, typ)
		}
	}
	for name, ft := range want {
		v, ok := obj[name]
		if !ok {
			if !optional[name] {
				t.Errorf("%s field %q is missing from the payload: %s", typ, name, body)
			}
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() && string(v) != "null" {
			sameFields(t, v, ft)
		}
	}
}

func TestRetriedUntilTheReceiverAnswers2xx(t *testing.T) {
	t.Parallel()
	app := answering(t, func(n int64) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h := setup(t, nil, app.URL)
	sid := fixture.SID()
	h.insert(t, sid)
	poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
	if calls := app.Calls(); calls != 3 {
		t.Fatalf("receiver called %d times, want 3 (500, 500, 200)", calls)
	}
	if got := app.Deliveries(sid); got != 1 {
		t.Fatalf("accepted deliveries %d, want one", got)
	}
	if h.logs.Count("processing failed; will retry") != 2 {
		t.Fatalf("want two retry lines:\n%s", h.logs)
	}
}

func TestPermanentRefusalCancelsTheJob(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]int{"422": http.StatusUnprocessableEntity, "a redirect": http.StatusFound} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			app := answering(t, func(int64) int { return answer })
			h := setup(t, nil, app.URL)
			sid := fixture.SID()
			h.insert(t, sid)
			poll.Until(t, "the job to be cancelled", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "cancelled" })
			// A cancelled job is never fetched again: the receiver saw one
			// request, and River's record says one attempt.
			var attempts int
			if err := h.pool.QueryRow(t.Context(), `SELECT attempt FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&attempts); err != nil || attempts != 1 {
				t.Fatalf("attempts = %d (%v), want 1", attempts, err)
			}
			if app.Calls() != 1 || h.logs.Count("processing failed for good; job cancelled") != 1 {
				t.Fatalf("calls = %d, want 1 and a log line:\n%s", app.Calls(), h.logs)
			}
		})
	}
}

// TestGivenUpVisiblyAfterTheLastAttempt: a receiver that always fails gets
// maxAttempts tries; then the job is discarded, stays in river_job, and an
// ERROR line names it.
func TestGivenUpVisiblyAfterTheLastAttempt(t *testing.T) {
	t.Parallel()
	app := answering(t, func(int64) int { return http.StatusServiceUnavailable })
	h := setup(t, nil, app.URL)
	sid := fixture.SID()
	h.insert(t, sid)
	poll.Until(t, "the job to be discarded", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "discarded" })
	if calls := app.Calls(); calls != maxAttempts {
		t.Fatalf("receiver called %d times, want %d", calls, maxAttempts)
	}
	if h.logs.Count(`"msg":"processing failed on its last attempt; job discarded"`) != 1 || !strings.Contains(h.logs.String(), `"event":"`+sid+`"`) {
		t.Fatalf("want one ERROR line naming %s:\n%s", sid, h.logs)
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
	app := teamapp.New(t, teamapp.Options{})
	h := setup(t, nil, "http://"+addr+"/hook")

	var sids []string
	for range 20 {
		sid := fixture.SID()
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
	up := &http.Server{Handler: app.Handler()}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })

	poll.Until(t, "every job to complete", func() bool {
		var done int
		h.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&done)
		return done == 20
	})
	for _, sid := range sids {
		if j := h.jobs(t, sid); len(j) != 1 || app.Deliveries(sid) != 1 {
			t.Fatalf("%s: jobs %v, accepted deliveries %d; want one of each", sid, j, app.Deliveries(sid))
		}
	}
}

// countingProcessor is a team's own destination, given instead of the forwarder.
type countingProcessor struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingProcessor) Send(_ context.Context, ev destination.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[ev.ID]++
	return nil
}

func TestTeamProcessorReplacesTheForwarder(t *testing.T) {
	t.Parallel()
	own := &countingProcessor{seen: map[string]int{}}
	h := setup(t, func(*httpdest.Forwarder) destination.Sender { return own }, "http://127.0.0.1:1/unused")
	sid := fixture.SID()
	h.insert(t, sid)
	poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
	own.mu.Lock()
	defer own.mu.Unlock()
	if own.seen[sid] != 1 || len(own.seen) != 1 {
		t.Fatalf("own processor saw %v, want %s once", own.seen, sid)
	}
}

func TestStatusChangeIsForwarded(t *testing.T) {
	t.Parallel()
	app := teamapp.New(t, teamapp.Options{})
	h := setup(t, nil, app.URL)
	sid := fixture.SID()
	code := "30003"
	for _, status := range []string{"sent", "undelivered", "sent"} { // the last regresses: no job
		var ec *string
		if status == "undelivered" {
			ec = &code
		}
		params := message.Params{"MessageSid": sid, "MessageStatus": status}
		if _, err := h.store.RecordStatus(t.Context(), message.StatusCallback{MessageSID: sid, Status: status, ErrorCode: ec,
			Params: params, AccountSID: simulate.AccountSID, From: "+1", To: "+2"}); err != nil {
			t.Fatal(err)
		}
	}
	if jobs := h.jobs(t, sid); len(jobs) != 2 {
		t.Fatalf("jobs %v, want two: the regression to sent moved nothing", jobs)
	}
	id := sid + ".undelivered"
	poll.Until(t, "both status forwards", func() bool { return app.Distinct() == 2 })
	if got := app.Accepted(); got[sid+".sent"] != 1 || got[id] != 1 {
		t.Fatalf("forwards by webhook-id: %v, want one for sent and one for undelivered", got)
	}
	p := app.Payloads(id)[0]
	if p.Type != "message.status" || p.ID != id || p.Status == nil || p.Status.Status != "undelivered" ||
		p.Status.ErrorCode == nil || *p.Status.ErrorCode != code || p.Message.Status != "undelivered" || p.Message.Direction != message.DirectionOutbound {
		t.Fatalf("payload %+v (status %+v)", p, p.Status)
	}
	sameFields(t, app.Raw(id), reflect.TypeFor[message.Payload]())
}

// TestRetryAfterIsHonoured: a receiver that answers 429 or 503 with
// Retry-After (in seconds, or as an HTTP date) gets its next attempt no
// earlier than it asked, although the retry policy would retry after 20 ms.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		status int
		header func(now time.Time) string
		wait   time.Duration
	}{
		"429, seconds": {http.StatusTooManyRequests, func(time.Time) string { return "5" }, 5 * time.Second},
		// An HTTP date has whole seconds: 3 s from now is at least 2 s away.
		"503, a date": {http.StatusServiceUnavailable, func(now time.Time) string { return now.Add(3 * time.Second).UTC().Format(http.TimeFormat) }, 2 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			app := teamapp.New(t, teamapp.Options{Answer: func(n int64, h http.Header) int {
				if n > 1 {
					return http.StatusOK
				}
				h.Set("Retry-After", c.header(time.Now()))
				return c.status
			}})
			h := setup(t, nil, app.URL)
			sid := fixture.SID()
			h.insert(t, sid)
			poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
			arrivals := app.Arrivals()
			if len(arrivals) != 2 {
				t.Fatalf("%d attempts, want 2", len(arrivals))
			}
			if gap := arrivals[1].Sub(arrivals[0]); gap < c.wait {
				t.Fatalf("the second attempt came %s after the first, want at least %s (Retry-After)", gap, c.wait)
			}
		})
	}
}

// TestRefusalsASettingCanFixAreRetried: 401, 403 and 404 from the app say
// FORWARD_SECRET or FORWARD_URL is wrong, not that the message is: the job
// is retried, and completes once the app accepts it.
func TestRefusalsASettingCanFixAreRetried(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			app := answering(t, func(n int64) int {
				if n == 1 {
					return code
				}
				return http.StatusNoContent
			})
			h := setup(t, nil, app.URL)
			sid := fixture.SID()
			h.insert(t, sid)
			poll.Until(t, "the job to complete", func() bool { j := h.jobs(t, sid); return len(j) == 1 && j[0] == "completed" })
			if calls := app.Calls(); calls != 2 || !strings.Contains(h.logs.String(), "check FORWARD_URL") {
				t.Fatalf("receiver called %d times, want 2, and a retry line naming FORWARD_URL:\n%s", calls, h.logs)
			}
		})
	}
}

// TestJobOfADeletedMessageEndsAtOnce: retention may delete a message whose
// forward is still retrying; its next run cancels the job instead of
// failing for the rest of its attempts.
func TestJobOfADeletedMessageEndsAtOnce(t *testing.T) {
	t.Parallel()
	app := teamapp.New(t, teamapp.Options{})
	h := setup(t, nil, app.URL)
	sid := fixture.SID()
	if _, err := h.pool.Exec(t.Context(), `INSERT INTO river_job (args, kind, max_attempts) VALUES (jsonb_build_object('sid', $1::text), 'inbox_message', 25)`, sid); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the job to end", func() bool { return slices.Equal(h.jobs(t, sid), []string{"cancelled"}) })
	if app.Calls() != 0 {
		t.Fatalf("%d forwards of a message that does not exist", app.Calls())
	}
}
