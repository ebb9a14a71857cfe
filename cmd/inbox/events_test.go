package main

import (
	"io"
	"net/http"
	"sync"
	"testing"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestEventStreamsThroughServe: 30 messages, each delivered by its webhook
// three times and in an Event Streams batch three times, all at once, to
// serve with FORWARD_URL: 30 rows, each forwarded once, each with what
// both ways carried. A batch of an account serve does not know is answered
// 503 (Twilio retries it) and stores nothing; once the account is added,
// Twilio's retry is stored.
func TestEventStreamsThroughServe(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	s := startServe(t, databaseURL, app.Env())

	sids := make([]string, 30)
	var events []simulate.Event
	for i := range sids {
		sids[i] = simulate.NewMessageSID(simulate.SMS)
		events = append(events, simulate.InboundEvent(simulate.SMS, sids[i], i, "STOP", nil))
	}
	var wg sync.WaitGroup
	for range 3 {
		for i, sid := range sids {
			wg.Go(func() {
				deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, i), 1)
			})
		}
		for b := 0; b < len(events); b += 10 {
			wg.Go(func() {
				if st := postEvents(t, s.addr, testToken, events[b:b+10]); st != http.StatusOK {
					t.Errorf("event batch answered %d, want 200", st)
				}
			})
		}
	}
	wg.Wait()
	pool := dbtest.Connect(t, databaseURL, 2)
	var rows, optOuts, fromEvents int
	if err := pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE metadata->'params'->>'OptOutType' = 'STOP'),
		count(*) FILTER (WHERE metadata->>'source' = 'event-stream') FROM messages`).Scan(&rows, &optOuts, &fromEvents); err != nil {
		t.Fatal(err)
	}
	if rows != len(sids) || optOuts != len(sids) {
		t.Fatalf("%d rows, %d with the event's opt-out; want %d of each", rows, optOuts, len(sids))
	}
	poll.Until(t, "every message forwarded", func() bool { return app.Distinct() == len(sids) })
	poll.Until(t, "the jobs settled", func() bool { return jobsSettled(t, pool) })
	for _, sid := range sids {
		if n := app.Deliveries(sid); n != 1 {
			t.Errorf("%s forwarded %d times, want once", sid, n)
		}
	}
	t.Logf("%d of %d messages stored first by their event", fromEvents, len(sids))
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
