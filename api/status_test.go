package api_test

import (
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"inbox/simulate"
)

// status builds a correctly signed status callback.
func (h *harness) status(form url.Values) *http.Request {
	return h.request("/twilio/status", form)
}

// deliverStatuses posts the callbacks in order; each must get 200 and an
// empty body.
func (h *harness) deliverStatuses(t *testing.T, sid, errorCode string, statuses ...string) {
	t.Helper()
	for _, st := range statuses {
		code := ""
		if st == "undelivered" || st == "failed" {
			code = errorCode
		}
		if status, body := h.post(h.status(simulate.StatusForm(sid, st, code))); status != http.StatusOK || body != "" {
			t.Fatalf("callback %s: %d %q, want 200 with an empty body", st, status, body)
		}
	}
}

// current returns the stored status, error code and direction of sid.
func (h *harness) current(t *testing.T, sid string) (status, errorCode, direction string) {
	t.Helper()
	m, err := h.store.GetMessageBySID(t.Context(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if m.ErrorCode != nil {
		errorCode = *m.ErrorCode
	}
	return m.Status, errorCode, string(m.Direction)
}

// events returns the statuses recorded for sid, sorted.
func (h *harness) events(t *testing.T, sid string) []string {
	t.Helper()
	evs, err := h.store.ListStatusEvents(t.Context(), sid, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Status)
	}
	slices.Sort(out)
	return out
}

func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{slices.Clone(s)}
	}
	var out [][]string
	for i := range s {
		rest := slices.Concat(s[:i], s[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}

func TestEveryOrderOfCallbacksEndsTheSame(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	seq := []string{"queued", "sent", "delivered", "read"}
	want := slices.Sorted(slices.Values(seq))
	perms := permutations(seq)
	if len(perms) != 24 {
		t.Fatalf("%d permutations", len(perms))
	}
	for _, order := range perms {
		sid := simulate.NewMessageSID(simulate.SMS)
		// Each callback twice, as Twilio's retries and multi-segment
		// messages produce.
		h.deliverStatuses(t, sid, "", slices.Concat(order, order)...)
		status, _, direction := h.current(t, sid)
		if status != "read" || direction != "outbound" {
			t.Fatalf("order %v ends %s/%s, want outbound read", order, direction, status)
		}
		if got := h.events(t, sid); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v recorded %v, want %v once each", order, got, want)
		}
		if n := h.rows(sid); n != 1 {
			t.Fatalf("order %v: %d rows, want 1", order, n)
		}
	}
}

func TestTerminalStatusNeverRegresses(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	h.deliverStatuses(t, sid, "30003", "sent", "undelivered", "queued", "delivered", "sending")
	status, code, _ := h.current(t, sid)
	if status != "undelivered" || code != "30003" {
		t.Fatalf("current = %s (error %q), want undelivered with 30003", status, code)
	}
	if got, want := h.events(t, sid), []string{"delivered", "queued", "sending", "sent", "undelivered"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v: every status is recorded even when it cannot move the current one", got, want)
	}
}

func TestCallbackForUnknownSIDCreatesOutboundRow(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	h.deliverStatuses(t, sid, "", "sent")
	m, err := h.store.GetMessageBySID(t.Context(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if m.Direction != "outbound" || m.Status != "sent" || m.From != "+5511987650000" ||
		m.To != "+5511912340000" || m.AccountSID != simulate.AccountSID || m.Metadata.Params["MessageStatus"] != "sent" {
		t.Fatalf("created %+v", m)
	}
	if h.jobs(messageJob, sid) != 0 || h.jobs(statusJob, sid) != 1 {
		t.Fatalf("jobs: %d message, %d status; want 0 and 1 (the status that created the row)", h.jobs(messageJob, sid), h.jobs(statusJob, sid))
	}
}

func TestConcurrentIdenticalCallbacksStoreOneEvent(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	form := simulate.StatusForm(sid, "delivered", "")
	const n = 100
	statuses, _ := h.burst(n, func() *http.Request { return h.status(form) })
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("callback %d answered %d", i, s)
		}
	}
	if got := h.events(t, sid); !reflect.DeepEqual(got, []string{"delivered"}) {
		t.Fatalf("events %v, want one delivered", got)
	}
	if status, _, _ := h.current(t, sid); status != "delivered" || h.rows(sid) != 1 {
		t.Fatalf("current %s, %d rows; want delivered, 1", status, h.rows(sid))
	}
}

func TestStatusCallbackDoesNotTouchAnInboundMessage(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	status, body := h.post(h.signed(simulate.InboundForm(simulate.SMS, sid, 1)))
	assertTwiML(t, status, body)
	h.deliverStatuses(t, sid, "", "delivered")
	if st, _, dir := h.current(t, sid); st != "received" || dir != "inbound" {
		t.Fatalf("inbound message became %s/%s after a stray callback", dir, st)
	}
}

func TestStatusCallbackRefusesBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	noStatus := simulate.StatusForm(sid, "sent", "")
	noStatus.Del("MessageStatus")
	for name, c := range map[string]struct {
		req    *http.Request
		status int
	}{
		"no MessageStatus":  {h.status(noStatus), 400},
		"odd MessageStatus": {h.status(simulate.StatusForm(sid, "Delivered!", "")), 400},
		"bad sid":           {h.status(simulate.StatusForm("SM1", "sent", "")), 400},
		"upper-case sid":    {h.status(simulate.StatusForm(strings.ToUpper(sid), "sent", "")), 400},
		"no AccountSid": {func() *http.Request {
			f := simulate.StatusForm(sid, "sent", "")
			f.Del("AccountSid")
			return h.status(f)
		}(), 400},
		"unsigned": {func() *http.Request {
			r := h.status(simulate.StatusForm(sid, "sent", ""))
			r.Header.Del("X-Twilio-Signature")
			return r
		}(), 403},
		"signed for inbound": {func() *http.Request {
			r := h.signed(simulate.StatusForm(sid, "sent", ""))
			r.URL.Path = "/twilio/status"
			return r
		}(), 403},
	} {
		if got, body := h.post(c.req); got != c.status {
			t.Fatalf("%s: %d %q, want %d", name, got, body, c.status)
		}
	}
	if n := h.rows(sid, strings.ToUpper(sid)); n != 0 || len(h.events(t, sid)) != 0 || len(h.events(t, strings.ToUpper(sid))) != 0 {
		t.Fatal("a refused callback wrote something")
	}
}

// TestInboundAndStatusesInterleavedUnderLoad runs simulate's inbound mode
// and status mode at once against one server: neither disturbs the other.
func TestInboundAndStatusesInterleavedUnderLoad(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	ctx := t.Context()
	opts := simulate.Options{BaseURL: h.srv.URL, Token: token, Messages: 30, Repeats: 3, Concurrency: 16}
	var inbound, outbound simulate.Result
	var final map[string]string
	var errIn, errOut error
	var wg sync.WaitGroup
	wg.Go(func() { inbound, errIn = simulate.Run(ctx, opts) })
	wg.Go(func() { outbound, final, errOut = simulate.RunStatuses(ctx, opts) })
	wg.Wait()
	if errIn != nil || errOut != nil {
		t.Fatal(errIn, errOut)
	}
	if inbound.Statuses[200] != 90 || inbound.Failures != 0 {
		t.Fatalf("inbound answers %v, %d failures", inbound.Statuses, inbound.Failures)
	}
	if outbound.Failures != 0 || len(outbound.Statuses) != 1 || outbound.Statuses[200] == 0 {
		t.Fatalf("status answers %v, %d failures", outbound.Statuses, outbound.Failures)
	}
	if n := h.rows(inbound.SIDs...); n != 30 {
		t.Fatalf("%d inbound rows, want 30", n)
	}
	for _, sid := range inbound.SIDs {
		if st, _, dir := h.current(t, sid); st != "received" || dir != "inbound" {
			t.Fatalf("inbound %s is %s/%s", sid, dir, st)
		}
	}
	for sid, want := range final {
		if st, _, dir := h.current(t, sid); st != want || dir != "outbound" {
			t.Fatalf("outbound %s is %s/%s, want %s", sid, dir, st, want)
		}
	}
	if n := h.jobs(messageJob, inbound.SIDs...); n != 30 {
		t.Fatalf("%d message jobs, want one per inbound message", n)
	}
	if n := h.jobs(messageJob, slices.Collect(maps.Keys(final))...); n != 0 {
		t.Fatalf("%d message jobs for outbound messages, want 0", n)
	}
}

// TestOneJobPerStatusThatMoves: a status that becomes the current one
// enqueues one job, in its transaction; a repeat and a regression enqueue
// nothing.
func TestOneJobPerStatusThatMoves(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	h.deliverStatuses(t, sid, "", "sent", "delivered", "delivered", "sent", "queued")
	rows, err := h.pool.Query(t.Context(), `SELECT args->>'status' FROM river_job WHERE kind = $1 AND args->>'sid' = $2 ORDER BY id`, statusJob, sid)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"sent", "delivered"}) {
		t.Fatalf("status jobs %v, want [sent delivered]", got)
	}
}
