package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/internal/twiliotest"
	"inbox/internal/workertest"
	"inbox/job"
	"inbox/message"
	"inbox/reconcile"
	"inbox/simulate"
	"inbox/store"
	"inbox/twilio"
	"inbox/twilioapi"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	account = simulate.AccountSID
	token   = "0123456789abcdef0123456789abcdef"
)

var cred = twilioapi.Credentials{AccountSID: account, Token: token}

type harness struct {
	pool    *pgxpool.Pool
	store   *store.Store
	twilio  *twiliotest.Server
	sweeper *reconcile.Sweeper
	logs    *logtest.Buffer
}

// setup is a database, a stand-in for Twilio holding the account, and a
// sweeper between them whose store inserts each found message's job.
func setup(t *testing.T) *harness {
	t.Helper()
	pool := dbtest.Pool(t, 8)
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	tw.AddAccount(account, token)
	h := &harness{pool: pool, store: store.NewWith(pool, store.Options{JobAttempts: 5, Writers: 2, MaxBatch: 64}), twilio: tw, logs: &logtest.Buffer{}}
	t.Cleanup(h.store.Close)
	client, err := twilioapi.New(tw.URL, twilioapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.sweeper = reconcile.New(reconcile.Config{
		Store: h.store, API: client, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)),
		Accounts: func(context.Context) ([]twilioapi.Credentials, error) { return []twilioapi.Credentials{cred}, nil },
	})
	return h
}

// inbound returns n inbound messages sent over the last n seconds, every
// mediaEvery-th (0: none) with two media.
func inbound(n, mediaEvery int) []twiliotest.Message {
	now := time.Now()
	ms := make([]twiliotest.Message, n)
	for i := range ms {
		ms[i] = twiliotest.Message{SID: simulate.NewMessageSID(simulate.SMS), AccountSID: account, From: fmt.Sprintf("+1555%07d", i),
			To: "+15550009999", Body: fmt.Sprintf("message %d", i), Direction: "inbound", Status: "received", Sent: now.Add(-time.Duration(i) * time.Second)}
		if mediaEvery > 0 && i%mediaEvery == 0 {
			ms[i].SID = "MM" + ms[i].SID[2:]
			ms[i].Media = []twiliotest.Medium{{SID: fmt.Sprintf("ME%032x", 2*i), ContentType: "image/jpeg"}, {SID: fmt.Sprintf("ME%032x", 2*i+1), ContentType: "application/pdf"}}
		}
	}
	return ms
}

func (h *harness) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := h.pool.QueryRow(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSweepStoresWhatNoWebhookStored: of 150 inbound messages (30 with
// media) beside outbound ones, the 100 not stored are stored once each,
// with their job, their media and source reconcile; the 50 a webhook had
// stored are left; a second sweep finds nothing and moves the watermark;
// no page is listed twice.
func TestSweepStoresWhatNoWebhookStored(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ms := inbound(150, 5)
	h.twilio.Add(ms...)
	h.twilio.Add(twiliotest.Message{SID: simulate.NewMessageSID(simulate.SMS), AccountSID: account, From: "+15550009999", To: "+15550000001",
		Direction: "outbound-api", Status: "delivered", Sent: time.Now()})
	for _, m := range ms[:50] { // these came by webhook
		in := message.Inbound{AccountSID: account, From: m.From, To: m.To, Body: m.Body, NumSegments: 1, Media: message.MediaList{},
			Metadata: message.Metadata{MessageSID: m.SID, Source: message.SourceWebhook, Params: message.Params{"MessageSid": m.SID}}}
		if _, ok, err := h.store.InsertInboundMessage(t.Context(), in); err != nil || !ok {
			t.Fatalf("webhook insert: %v %v", ok, err)
		}
	}
	res, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil {
		t.Fatalf("sweep: %v\n%s", err, h.logs)
	}
	if res.Listed != 151 || res.Found != 100 || res.Stored != 50 || res.Invalid != 0 || res.MediaFetched != 20 {
		t.Fatalf("result %+v: want 151 listed, 100 found, 50 already stored, 20 media lists", res)
	}
	if rows, jobs := h.count(t, `SELECT count(*) FROM messages`), h.count(t, `SELECT count(*) FROM `+dbtest.EnqueuedJobs); rows != 150 || jobs != 150 {
		t.Fatalf("%d rows, %d jobs; want 150 of each", rows, jobs)
	}
	if n := h.count(t, `SELECT count(*) FROM messages WHERE metadata->>'source' = 'reconcile'`); n != 100 {
		t.Fatalf("%d rows with source reconcile, want 100", n)
	}
	mms, err := h.store.GetMessageBySID(t.Context(), ms[145].SID)
	if err != nil {
		t.Fatal(err)
	}
	if mms.NumMedia != 2 || len(mms.Media) != 2 || !strings.HasSuffix(mms.Media[0].URL, "/Media/"+ms[145].Media[0].SID) ||
		mms.Media[1].ContentType != "application/pdf" || mms.Metadata.Params["MediaUrl1"] != mms.Media[1].URL {
		t.Fatalf("the found MMS: %d media %+v, params %v", mms.NumMedia, mms.Media, mms.Metadata.Params)
	}
	if h.logs.Count(`"msg":"message found by reconciliation: no webhook had stored it"`) != 100 {
		t.Fatalf("want a log line per found message:\n%s", h.logs)
	}
	sw, err := h.store.Sweep(t.Context(), account)
	if err != nil || sw.Watermark == nil || sw.To != nil || sw.NextPageURI != "" || sw.Found != 100 {
		t.Fatalf("sweep state after: %+v %v; want a watermark and no sweep under way", sw, err)
	}
	again, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil || again.Found != 0 || again.Stored != 150 {
		t.Fatalf("second sweep: %+v %v; want nothing found", again, err)
	}
	for token, n := range h.twilio.Counts().Listings {
		if n > 2 { // once per sweep
			t.Fatalf("page %q listed %d times in two sweeps", token, n)
		}
	}
}

// TestSweepAndWebhooksAtOnce: a sweep and 100 webhook deliveries of the
// same 100 messages, at the same moment, through the real webhook: one
// row, one job and one forward each, and what the sweep found plus what
// the webhooks stored is the rows.
func TestSweepAndWebhooksAtOnce(t *testing.T) {
	t.Parallel()
	h := setup(t)
	app := teamapp.New(t, teamapp.Options{})
	workertest.Start(t, h.pool, workertest.Options{URL: app.URL, Workers: 20})
	validator, _ := twilio.NewValidator(token, "")
	webhook := httptest.NewServer(api.NewServer(api.Config{Logger: slog.New(slog.DiscardHandler), Store: h.store, Validator: validator,
		PublicBaseURL: "https://hooks.example.com"}))
	t.Cleanup(webhook.Close)

	ms := inbound(100, 10)
	h.twilio.Add(ms...)
	// Hold every insert into messages (SHARE mode lets the sweep's
	// question, a read, through) until the sweep's batch and the
	// webhooks' are all waiting, then let them race at the unique index.
	locker, err := h.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(context.Background())
	if _, err := locker.Exec(t.Context(), `LOCK TABLE messages IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	var webhookNew atomic.Int64
	var wg sync.WaitGroup
	var res reconcile.Result
	var sweepErr error
	wg.Go(func() { res, sweepErr = h.sweeper.Sweep(context.Background(), cred) })
	for _, m := range ms {
		form := simulate.InboundForm(simulate.SMS, m.SID, 1)
		if len(m.Media) > 0 {
			form = simulate.InboundForm(simulate.MMS, m.SID, 1)
		}
		req, err := simulate.NewRequest(t.Context(), webhook.URL+"/twilio/messages", "https://hooks.example.com/twilio/messages", token, form)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("delivery: %v %v", resp, err)
				return
			}
			resp.Body.Close()
		})
	}
	poll.Until(t, "the sweep's batch and both writers' to wait on the lock", func() bool {
		return h.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO messages%'`) == 3
	})
	if err := locker.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if sweepErr != nil {
		t.Fatalf("sweep: %v", sweepErr)
	}
	webhookNew.Store(int64(h.count(t, `SELECT count(*) FROM messages WHERE metadata->>'source' = 'webhook'`)))
	rows := h.count(t, `SELECT count(*) FROM messages`)
	jobs := h.count(t, `SELECT count(*) FROM `+dbtest.EnqueuedJobs)
	doubled := h.count(t, `SELECT count(*) FROM (SELECT 1 FROM `+dbtest.EnqueuedJobs+` GROUP BY sid HAVING count(*) > 1) d`)
	if rows != 100 || jobs != 100 || doubled != 0 || int64(res.Found)+webhookNew.Load() != 100 {
		t.Fatalf("%d rows, %d jobs (%d sids with two); sweep found %d, webhooks stored %d: want 100, 100, 0, and found + stored = 100",
			rows, jobs, doubled, res.Found, webhookNew.Load())
	}
	t.Logf("the sweep found %d, the webhooks stored %d", res.Found, webhookNew.Load())
	poll.Until(t, "every message forwarded", func() bool { return app.Distinct() == 100 })
	for _, m := range ms {
		if app.Deliveries(m.SID) != 1 {
			t.Fatalf("%s forwarded %d times", m.SID, app.Deliveries(m.SID))
		}
	}
}

// TestSweepCutShortResumesWhereItStood: a sweep that stops on its third
// page (Twilio answering an error), then one that stops because the
// stand-in throttles every third request and it is cancelled, then one
// that finishes: every message stored once, no page listed more than
// twice, the watermark moved only at the end.
func TestSweepCutShortResumesWhereItStood(t *testing.T) {
	t.Parallel()
	h := setup(t)
	client, _ := twilioapi.New(h.twilio.URL, twilioapi.Options{MaxRetries: 1})
	sweeper := reconcile.New(reconcile.Config{Store: h.store, API: client, Logger: slog.New(slog.DiscardHandler), PageSize: 100,
		Accounts: func(context.Context) ([]twilioapi.Credentials, error) { return []twilioapi.Credentials{cred}, nil }})
	h.twilio.Add(inbound(1000, 0)...)
	pages := 0
	h.twilio.Fault(func(r *http.Request) (int, string, bool) {
		if pages++; pages == 3 {
			return 500, `{"code": 20500, "message": "Internal Server Error", "status": 500}`, true
		}
		return 0, "", false
	})
	if _, err := sweeper.Sweep(t.Context(), cred); err == nil || !strings.Contains(err.Error(), "20500") {
		t.Fatalf("first sweep: %v, want it stopped by Twilio's 500", err)
	}
	sw, _ := h.store.Sweep(t.Context(), account)
	if sw.Watermark != nil || sw.NextPageURI == "" || !strings.Contains(sw.LastError, "20500") {
		t.Fatalf("after the cut: %+v; want no watermark yet, a page to resume at, and the error", sw)
	}
	stored := h.count(t, `SELECT count(*) FROM messages`)
	h.twilio.Fault(nil)
	h.twilio.ThrottleEvery(3, "0")
	res, err := sweeper.Sweep(t.Context(), cred)
	if err != nil {
		t.Fatalf("resumed sweep: %v", err)
	}
	if rows := h.count(t, `SELECT count(*) FROM messages`); rows != 1000 || stored+res.Found != 1000 || res.Pages != 9 {
		t.Fatalf("%d rows; %d before, %d found on resuming over %d pages; want 1000 and the resume to list 9 pages (from the cut one)",
			rows, stored, res.Found, res.Pages)
	}
	for token, n := range h.twilio.Counts().Listings {
		if n > 2 {
			t.Fatalf("page %q listed %d times", token, n)
		}
	}
	if sw, _ := h.store.Sweep(t.Context(), account); sw.Watermark == nil || sw.NextPageURI != "" || sw.LastError != "" {
		t.Fatalf("after the resumed sweep: %+v; want a watermark, nothing under way", sw)
	}
	if h.twilio.Counts().Throttled == 0 {
		t.Fatal("the stand-in throttled nothing: the test would not exercise the backoff")
	}
}

// TestStuckStatusesAreAskedFor: an outbound message stuck at sent while
// Twilio says undelivered (error 30003) takes that status and error code
// and gets one status job; one Twilio reports lower than ours is left;
// one that moved recently is not asked about.
func TestStuckStatusesAreAskedFor(t *testing.T) {
	t.Parallel()
	h := setup(t)
	long := time.Now().Add(-time.Hour)
	out := func(status string) string {
		sid := simulate.NewMessageSID(simulate.SMS)
		if _, err := h.store.RecordStatus(t.Context(), message.StatusCallback{MessageSID: sid, Status: status, AccountSID: account,
			From: "+15550009999", To: "+15550000001", Params: message.Params{"MessageSid": sid, "MessageStatus": status}}); err != nil {
			t.Fatal(err)
		}
		h.twilio.Add(twiliotest.Message{SID: sid, AccountSID: account, From: "+15550009999", To: "+15550000001", Direction: "outbound-api", Status: status, Sent: long})
		return sid
	}
	stuck, regressed, recent := out("sent"), out("sending"), out("sent")
	for _, sid := range []string{stuck, regressed} { // their last callback came an hour ago
		h.pool.Exec(t.Context(), `UPDATE messages SET received_at = $2 WHERE metadata->>'message_sid' = $1`, sid, long)
		h.pool.Exec(t.Context(), `UPDATE message_status_events SET received_at = $2 WHERE message_sid = $1`, sid, long)
	}
	h.twilio.SetStatus(stuck, "undelivered", 30003)
	h.twilio.SetStatus(regressed, "queued", 0)
	h.twilio.SetStatus(recent, "delivered", 0)
	jobsBefore := h.count(t, `SELECT count(*) FROM river_job WHERE kind = $1`, job.KindStatus)
	res, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil {
		t.Fatal(err)
	}
	got := func(sid string) message.Message {
		m, err := h.store.GetMessageBySID(t.Context(), sid)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := got(stuck); m.Status != "undelivered" || m.ErrorCode == nil || *m.ErrorCode != "30003" {
		t.Fatalf("the stuck message: %s %v, want undelivered with 30003", m.Status, m.ErrorCode)
	}
	if m := got(regressed); m.Status != "sending" {
		t.Fatalf("a status Twilio reports lower moved it to %s", m.Status)
	}
	if m := got(recent); m.Status != "sent" || res.Statuses != 2 || res.StatusMoved != 1 {
		t.Fatalf("recent %s; asked %d, moved %d; want sent (not asked), 2 asked, 1 moved", m.Status, res.Statuses, res.StatusMoved)
	}
	if jobs := h.count(t, `SELECT count(*) FROM river_job WHERE kind = $1`, job.KindStatus) - jobsBefore; jobs != 1 {
		t.Fatalf("%d status jobs from the sweep, want 1", jobs)
	}
	again, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil || again.Statuses != 0 {
		t.Fatalf("a second sweep asked about %d statuses (%v): the checked ones wait their turn", again.Statuses, err)
	}
}

// TestBadInputIsRefusedAndTheNextSweepProceeds: a malformed page, a 401
// and an answer over the bound stop a sweep, store nothing and are
// counted; a listed message with a bad sid or an unknown direction is
// skipped and counted while the rest are stored; once Twilio answers well
// again, the next sweep stores what is missing.
func TestBadInputIsRefusedAndTheNextSweepProceeds(t *testing.T) {
	t.Parallel()
	h := setup(t)
	good := inbound(3, 0)
	h.twilio.Add(good...)
	h.twilio.Add(twiliotest.Message{SID: "SM" + strings.Repeat("Z", 32), AccountSID: account, From: "+1", To: "+2", Direction: "inbound", Status: "received", Sent: time.Now()},
		twiliotest.Message{SID: simulate.NewMessageSID(simulate.SMS), AccountSID: account, From: "+1", To: "+2", Direction: "sideways", Status: "received", Sent: time.Now()})
	for name, answer := range map[string]string{
		"malformed page": `{"messages": [{"sid": 12}]`,
		"too large":      `{"messages": [` + strings.Repeat(`{"sid":"SM0"},`, 700_000) + `{}]}`,
	} {
		h.twilio.Fault(func(*http.Request) (int, string, bool) { return 200, answer, true })
		if _, err := h.sweeper.Sweep(t.Context(), cred); err == nil {
			t.Fatalf("%s: the sweep succeeded", name)
		}
	}
	h.twilio.Fault(nil)
	if _, err := h.sweeper.Sweep(t.Context(), twilioapi.Credentials{AccountSID: account, Token: strings.Repeat("f", 32)}); err == nil || !strings.Contains(err.Error(), "20003") {
		t.Fatalf("wrong token: %v, want Twilio's 401 (20003)", err)
	}
	if n := h.count(t, `SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("%d rows after refused sweeps", n)
	}
	res, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil || res.Found != 3 || res.Invalid != 2 {
		t.Fatalf("the next sweep: %+v %v; want the 3 good messages stored and 2 skipped", res, err)
	}
	if h.logs.Count("reconciliation skipped a listed message") != 2 || !strings.Contains(h.logs.String(), "is not one Twilio documents") {
		t.Fatalf("want a line for each skipped message:\n%s", h.logs)
	}
}

// TestAnEventsMessageGetsItsMedia: an MMS an Event Streams event stored
// first (two media, no URLs: the event's schema has none) gets its media
// from Twilio's API in the next sweep, once, without another job; an event's
// message without media, and one a webhook completed, are not asked about.
func TestAnEventsMessageGetsItsMedia(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ms := inbound(3, 2) // ms[0] and ms[2] with two media
	h.twilio.Add(ms...)
	for i, m := range ms {
		num := int32(len(m.Media))
		in := message.Inbound{AccountSID: account, From: m.From, To: m.To, Body: m.Body, NumMedia: num, NumSegments: 1, Media: message.MediaList{},
			Metadata: message.Metadata{MessageSID: m.SID, Source: message.SourceEventStream,
				Params: message.Params{"MessageSid": m.SID, "NumMedia": fmt.Sprint(num), "OptOutType": "STOP"}}}
		if i == 2 { // its webhook came and completed it
			in.Media = message.MediaList{{URL: "https://api.twilio.com/webhook-said", ContentType: "image/jpeg"}}
		}
		if _, ok, err := h.store.InsertInboundMessage(t.Context(), in); err != nil || !ok {
			t.Fatalf("event insert: %v %v", ok, err)
		}
	}
	res, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil || res.MediaCompleted != 1 {
		t.Fatalf("sweep: %+v %v; want one message's media completed\n%s", res, err, h.logs)
	}
	m, err := h.store.GetMessageBySID(t.Context(), ms[0].SID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Media) != 2 || !strings.HasSuffix(m.Media[1].URL, "/Media/"+ms[0].Media[1].SID) || m.Metadata.Params["MediaUrl1"] != m.Media[1].URL ||
		m.Metadata.Params["OptOutType"] != "STOP" {
		t.Fatalf("the event's MMS after the sweep: media %+v, params %v", m.Media, m.Metadata.Params)
	}
	if jobs := h.count(t, `SELECT count(*) FROM `+dbtest.EnqueuedJobs); jobs != 3 {
		t.Fatalf("%d jobs, want the 3 of the inserts: completing media forwards nothing", jobs)
	}
	again, err := h.sweeper.Sweep(t.Context(), cred)
	if err != nil || again.MediaCompleted != 0 {
		t.Fatalf("second sweep: %+v %v; want nothing left to complete", again, err)
	}
}

// TestALoopingListingStops: Twilio's API (or what answers as it) whose
// next page is itself, or whose every page lists the same message, stops
// the sweep at once with ErrPageLoop, after a bounded number of requests,
// storing the message once; the next sweep lists its window from the
// start rather than resume at the looping page.
func TestALoopingListingStops(t *testing.T) {
	t.Parallel()
	sid := simulate.NewMessageSID(simulate.SMS)
	msg := fmt.Sprintf(`{"sid":%q,"account_sid":%q,"from":"+15550000001","to":"+15550000002","body":"hi","num_media":"0","num_segments":"1",`+
		`"direction":"inbound","status":"received","date_sent":%q,"api_version":"2010-04-01"}`, sid, account, time.Now().UTC().Format(time.RFC1123Z))
	for name, next := range map[string]func(r *http.Request, n int64) string{
		"its own next page": func(r *http.Request, _ int64) string { return r.URL.RequestURI() },
		"the same message on every page": func(r *http.Request, n int64) string {
			return fmt.Sprintf("/2010-04-01/Accounts/%s/Messages.json?PageSize=1000&Page=%d&PageToken=PA%d", account, n, n)
		},
	} {
		t.Run(name, func(t *testing.T) {
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := requests.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"messages":[%s],"next_page_uri":%q}`, msg, next(r, n))
			}))
			t.Cleanup(srv.Close)
			h := setup(t)
			client, err := twilioapi.New(srv.URL, twilioapi.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sw := reconcile.New(reconcile.Config{Store: h.store, API: client, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)),
				Accounts: func(context.Context) ([]twilioapi.Credentials, error) { return []twilioapi.Credentials{cred}, nil }})
			_, err = sw.Sweep(t.Context(), cred)
			if !errors.Is(err, reconcile.ErrPageLoop) || requests.Load() > 3 {
				t.Fatalf("%v after %d requests; want ErrPageLoop within 3", err, requests.Load())
			}
			if n := h.count(t, `SELECT count(*) FROM messages`); n != 1 {
				t.Fatalf("%d rows, want the message once", n)
			}
			state, err := h.store.Sweep(t.Context(), account)
			if err != nil || !strings.Contains(state.NextPageURI, "Messages.json") || strings.Contains(state.NextPageURI, "PageToken") {
				t.Fatalf("the recorded sweep resumes at %q (%v); want its window's first page", state.NextPageURI, err)
			}
		})
	}
}
