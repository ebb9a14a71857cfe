package main

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"sync"
	"testing"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestEventStreamsThroughServe: 30 messages Twilio's API lists (a
// reconciliation sweep runs every second), 20 of them delivered at once by
// their webhooks three times each and in Event Streams batches three times
// each; once the sweep stored the other 10, all 30 are delivered both ways
// again. Every order of webhook, event and sweep occurs: 30 rows, each
// forwarded once, each with the event's opt-out whichever way stored it,
// which reaches the app once: in the forward, or as a late opt_out.
func TestEventStreamsThroughServe(t *testing.T) {
	t.Parallel()
	_, sids, vars := standIn(t, 30, 0)
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	maps.Copy(vars, app.Env())
	s := startServe(t, databaseURL, vars)
	events := make([]simulate.Event, len(sids))
	for i, sid := range sids {
		events[i] = simulate.InboundEvent(simulate.SMS, sid, i, "STOP", nil)
	}
	bothWays := func(n int) {
		var wg sync.WaitGroup
		for range 3 {
			for i, sid := range sids[:n] {
				wg.Go(func() {
					deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, i), 1)
				})
			}
			for b := 0; b < n; b += 10 {
				wg.Go(func() {
					if st := postEvents(t, s.addr, testToken, events[b:b+10]); st != http.StatusOK {
						t.Errorf("event batch answered %d, want 200", st)
					}
				})
			}
		}
		wg.Wait()
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	count := func(where string) int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM messages WHERE `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	bothWays(20)
	poll.Until(t, "the sweep to store the other 10", func() bool { return count("true") == len(sids) })
	bothWays(len(sids))

	if rows, optOuts := count("true"), count(`metadata->'params'->>'OptOutType' = 'STOP'`); rows != len(sids) || optOuts != len(sids) {
		t.Fatalf("%d rows, %d with the event's opt-out; want %d of each", rows, optOuts, len(sids))
	}
	if n := count(`metadata->>'source' = 'event-stream' AND NOT metadata->'params' ? 'ApiVersion'`); n != 0 {
		t.Errorf("%d messages an event stored lack their webhook's parameters", n)
	}
	// A message the webhook or the sweep stored first was forwarded
	// without the opt-out, which reaches the app as its opt_out status
	// change; one an event stored first was forwarded with it.
	poll.Until(t, "every message and late opt-out forwarded", func() bool {
		return app.Distinct() == len(sids)+count(`metadata->>'source' <> 'event-stream'`)
	})
	poll.Until(t, "the jobs settled", func() bool { return jobsSettled(t, pool) })
	for _, sid := range sids {
		var source string
		pool.QueryRow(t.Context(), `SELECT metadata->>'source' FROM messages WHERE metadata->>'message_sid' = $1`, sid).Scan(&source)
		optOuts := map[bool]int{true: 0, false: 1}[source == "event-stream"]
		if n, o := app.Deliveries(sid), app.Deliveries(sid+".opt_out"); n != 1 || o != optOuts {
			t.Errorf("%s (stored first by %s) forwarded %d times and its opt-out %d; want once and %d", sid, source, n, o, optOuts)
		}
	}
	t.Logf("stored first: %d by webhook, %d by event, %d by the sweep", count(`metadata->>'source' = 'webhook'`),
		count(`metadata->>'source' = 'event-stream'`), count(`metadata->>'source' = 'reconcile'`))
	if n := count(`metadata->>'source' = 'reconcile'`); n < 10 {
		t.Errorf("the sweep stored %d first, want at least the 10 only it was given", n)
	}
}

// postEvents posts a signed batch of events to serve at addr, as Twilio
// signs it for publicURL, and returns the status.
func postEvents(t *testing.T, addr, token string, events []simulate.Event) int {
	t.Helper()
	req, err := simulate.NewEventsRequest(t.Context(), "http://"+addr+api.PathEvents, publicURL+api.PathEvents, token, events)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAnEventBatchOfAnUnknownAccountIsRetried: with only the accounts
// table, a batch of an account not in it is answered 503, not a 4xx that
// would make Twilio drop it; once the account is added, the retry is
// stored.
func TestAnEventBatchOfAnUnknownAccountIsRetried(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	a, aToken := newAccount()
	mustAccounts(t, databaseURL, key, aToken, "add", a)
	s := startServe(t, databaseURL, noFallback(key))
	b, bToken := newAccount() // not added yet
	sid := simulate.NewMessageSID(simulate.SMS)
	ev := simulate.InboundEvent(simulate.SMS, sid, 1, "", nil)
	ev["data"].(map[string]any)["accountSid"] = b
	batch := []simulate.Event{ev}
	if st := postEvents(t, s.addr, bToken, batch); st != http.StatusServiceUnavailable {
		t.Fatalf("a batch of an unknown account: %d, want 503", st)
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	if rows, _ := counts(t, pool, sid); rows != 0 {
		t.Fatal("a batch of an unknown account was stored")
	}
	if s.stderr.Count(`"code":"account_unknown"`) != 1 {
		t.Fatalf("no log line says which account is unknown:\n%s", s.stderr)
	}
	mustAccounts(t, databaseURL, key, bToken, "add", b)
	poll.Until(t, "Twilio's retry stored once the account is added", func() bool {
		return postEvents(t, s.addr, bToken, batch) == http.StatusOK
	})
	if rows, _ := counts(t, pool, sid); rows != 1 {
		t.Fatalf("%d rows after the retry, want 1", rows)
	}
}

// TestALateOptOutReachesTheApp: a message whose webhook carried no opt-out
// (Advanced Opt-Out off) is forwarded without one; its event, carrying
// STOP, arrives after, five times at once: the app gets one opt_out status
// event of the message (id sid.opt_out), once. A message whose event came
// first was forwarded with its opt-out, and gets none.
func TestALateOptOutReachesTheApp(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	s := startServe(t, databaseURL, app.Env())
	late, early := simulate.NewMessageSID(simulate.SMS), simulate.NewMessageSID(simulate.SMS)

	deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, late, 1), 1)
	poll.Until(t, "the webhook's message forwarded", func() bool { return app.Deliveries(late) == 1 })
	if st := postEvents(t, s.addr, testToken, []simulate.Event{simulate.InboundEvent(simulate.SMS, early, 2, "STOP", nil)}); st != http.StatusOK {
		t.Fatalf("event first: %d", st)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if st := postEvents(t, s.addr, testToken, []simulate.Event{simulate.InboundEvent(simulate.SMS, late, 1, "STOP", nil)}); st != http.StatusOK {
				t.Errorf("the late event: %d", st)
			}
		})
	}
	wg.Wait()
	deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, early, 2), 1)
	poll.Until(t, "the opt-out forwarded", func() bool { return app.Deliveries(late+".opt_out") == 1 })
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "the jobs settled", func() bool { return jobsSettled(t, pool) })
	if n := app.Deliveries(late + ".opt_out"); n != 1 {
		t.Fatalf("the opt-out forwarded %d times, want once", n)
	}
	var body struct {
		Type   string `json:"type"`
		Status struct {
			Status string            `json:"status"`
			Params map[string]string `json:"params"`
		} `json:"status"`
	}
	if err := json.Unmarshal(app.Raw(late+".opt_out"), &body); err != nil || body.Type != "message.status" ||
		body.Status.Status != "opt_out" || body.Status.Params["OptOutType"] != "STOP" {
		t.Fatalf("the opt-out's forward: %+v, %v", body, err)
	}
	if n := app.Deliveries(early + ".opt_out"); n != 0 || app.Payloads(early)[0].Message.Params["OptOutType"] != "STOP" {
		t.Fatalf("the event-first message: %d opt-out forwards, params %v; want its forward to carry STOP", n, app.Payloads(early)[0].Message.Params)
	}
}
