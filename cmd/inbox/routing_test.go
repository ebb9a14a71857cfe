package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/routing"
	"inbox/simulate"
)

const (
	routeAccountA = "AC0000000000000000000000000000000a"
	routeAccountB = "AC0000000000000000000000000000000b"
	botNumber     = "+15550000009"
)

// routedApp is a team app behind a destination of the table, with its
// own secret.
func routedApp(t *testing.T, databaseURL, key, name string, opts teamapp.Options, rules ...string) *teamapp.App {
	t.Helper()
	opts.Secret = routing.GenerateSecret()
	app := teamapp.New(t, opts)
	args := append([]string{"add", name, "-url", app.URL}, rules...)
	if out, err := destinationsCLI(t, databaseURL, key, opts.Secret, args...); err != nil {
		t.Fatalf("inbox destinations %v: %v\n%s", args, err, out)
	}
	return app
}

// deliverForm sends n identical signed deliveries of form to path, spread
// over addrs, all at once, and fails on any answer but 200.
func deliverForm(t *testing.T, addrs []string, path string, form url.Values, n int) {
	t.Helper()
	for i, st := range deliverAll(t, addrs, path, form, n) {
		if st != http.StatusOK {
			t.Errorf("delivery %d answered %d, want 200", i, st)
		}
	}
}

// jobsSettled reports whether no job waits or runs.
func jobsSettled(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job
		WHERE state NOT IN ('completed', 'cancelled', 'discarded') AND kind IN ('inbox_message', 'inbox_messages', 'inbox_status')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 0
}

// TestEachAppGetsExactlyItsMessagesOnce: two accounts, three destinations
// with different rules beside FORWARD_URL's, inbound messages and status
// changes, each delivered 20 times at once across two serve processes (the
// message every destination but one matches, 200 times): every app gets
// exactly the events its rules match, each once, signed with its own
// secret (the app verifies with it), under the same webhook-id
// everywhere; each message has one row and one delivery per matching
// destination, recorded forwarded.
func TestEachAppGetsExactlyItsMessagesOnce(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	accountApp := routedApp(t, databaseURL, key, "account-a", teamapp.Options{}, "-account", routeAccountA)
	bot := routedApp(t, databaseURL, key, "bot", teamapp.Options{}, "-to", botNumber, "-events", "inbound")
	analytics := routedApp(t, databaseURL, key, "analytics", teamapp.Options{}, "-events", "status")
	everything := teamapp.New(t, teamapp.Options{})
	env := everything.Env()
	env["ENCRYPTION_KEY"] = key
	one, two := startServe(t, databaseURL, env), startServe(t, databaseURL, env)
	addrs := []string{one.addr, two.addr}

	inbound := func(account, to string) (string, url.Values) {
		sid := simulate.NewMessageSID(simulate.SMS)
		f := simulate.InboundForm(simulate.SMS, sid, 1)
		f.Set("AccountSid", account)
		f.Set("To", to)
		return sid, f
	}
	status := func(account, st string) (string, url.Values) {
		sid := simulate.NewMessageSID(simulate.SMS)
		f := simulate.StatusForm(sid, st, "")
		f.Set("AccountSid", account)
		return sid + "." + st, f
	}
	m1, f1 := inbound(routeAccountA, botNumber)      // account-a, bot, default
	m2, f2 := inbound(routeAccountB, botNumber)      // bot, default
	m3, f3 := inbound(routeAccountB, "+15550000001") // default only
	s1, g1 := status(routeAccountA, "sent")          // account-a, analytics, default
	s2, g2 := status(routeAccountB, "delivered")     // analytics, default
	var wg sync.WaitGroup
	wg.Go(func() { deliverForm(t, addrs, api.PathMessages, f1, 200) })
	for _, f := range []url.Values{f2, f3} {
		wg.Go(func() { deliverForm(t, addrs, api.PathMessages, f, 20) })
	}
	for _, g := range []url.Values{g1, g2} {
		wg.Go(func() { deliverForm(t, addrs, api.PathStatus, g, 20) })
	}
	wg.Wait()

	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "every delivery job to finish", func() bool { return jobsSettled(t, pool) })
	want := map[string]struct {
		app *teamapp.App
		ids []string
	}{
		"account-a": {accountApp, []string{m1, s1}},
		"bot":       {bot, []string{m1, m2}},
		"analytics": {analytics, []string{s1, s2}},
		"default":   {everything, []string{m1, m2, m3, s1, s2}},
	}
	for name, w := range want {
		got := w.app.Accepted()
		for _, id := range w.ids {
			if got[id] != 1 {
				t.Errorf("%s got %s %d times, want once", name, id, got[id])
			}
		}
		if len(got) != len(w.ids) {
			t.Errorf("%s got %d events %v, want exactly %v", name, len(got), got, w.ids)
		}
	}
	wantDeliveries := map[string][]string{m1: {"account-a", "bot", "default"}, m2: {"bot", "default"}, m3: {"default"}}
	for sid, dests := range wantDeliveries {
		var rows int
		var got []string
		if err := pool.QueryRow(t.Context(), `SELECT
				(SELECT count(*) FROM messages WHERE metadata->>'message_sid' = $1),
				(SELECT coalesce(array_agg(d.destination || ':' || delivery_state(d) ORDER BY d.destination), '{}') FROM deliveries d
				 JOIN messages m ON m.id = d.message_id WHERE m.metadata->>'message_sid' = $1)`, sid).Scan(&rows, &got); err != nil {
			t.Fatal(err)
		}
		want := make([]string, len(dests))
		for i, d := range dests {
			want[i] = d + ":forwarded"
		}
		if rows != 1 || !slices.Equal(got, want) {
			t.Errorf("%s: %d rows, deliveries %v; want 1 row, deliveries %v", sid, rows, got, want)
		}
	}
}

// TestAFailingDestinationIsPausedAloneByItsBreaker: one app answers 503
// to everything, another accepts: the failing destination's breaker
// (FORWARD_BREAK_AFTER, its default) pauses it alone, and the healthy one
// gets every message, once, while it fails and after.
func TestAFailingDestinationIsPausedAloneByItsBreaker(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	failing := routedApp(t, databaseURL, key, "failing", teamapp.Options{Answer: func(int64, http.Header) int { return http.StatusServiceUnavailable }})
	healthy := routedApp(t, databaseURL, key, "healthy", teamapp.Options{})
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key, "ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": adminToken})
	const n = 80 // more than FORWARD_BREAK_AFTER's default of 50
	var wg sync.WaitGroup
	sids := make([]string, n)
	for i := range n {
		sids[i] = simulate.NewMessageSID(simulate.SMS)
		wg.Go(func() {
			deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sids[i], i), 1)
		})
	}
	wg.Wait()
	pool := dbtest.Connect(t, databaseURL, 2)
	paused := func(name string) string {
		var reason *string
		if err := pool.QueryRow(t.Context(), `SELECT paused_reason FROM destinations WHERE name = $1`, name).Scan(&reason); err != nil {
			t.Fatal(err)
		}
		if reason == nil {
			return ""
		}
		return *reason
	}
	poll.Until(t, "the failing destination's breaker to pause it", func() bool { return paused("failing") == "breaker" })
	poll.Until(t, "the healthy app to get every message", func() bool { return len(healthy.Accepted()) == n })
	for _, sid := range sids {
		if c := healthy.Deliveries(sid); c != 1 {
			t.Errorf("the healthy app got %s %d times, want once", sid, c)
		}
	}
	if r := paused("healthy"); r != "" {
		t.Errorf("the healthy destination is paused (%s): a failing one paused it too", r)
	}
	if len(failing.Accepted()) != 0 {
		t.Errorf("the failing app accepted %d", len(failing.Accepted()))
	}
	// Each destination's attempts under its own label.
	families := scrape(t, "http://"+s.adminAddr)
	attempts := func(destination, outcome string) float64 {
		v, _ := value(families, "inbox_processing_attempts_total", map[string]string{"destination": destination, "event": "message", "outcome": outcome})
		return v
	}
	if got := attempts("healthy", "success"); got != n {
		t.Errorf("inbox_processing_attempts_total{destination=healthy,outcome=success} = %v, want %d", got, n)
	}
	if got := attempts("failing", "retry"); got < 50 {
		t.Errorf("inbox_processing_attempts_total{destination=failing,outcome=retry} = %v, want at least the breaker's 50", got)
	}
	if got := attempts("failing", "success") + attempts("healthy", "retry"); got != 0 {
		t.Errorf("%v attempts counted under the other destination's label", got)
	}
	for _, g := range []struct {
		destination, reason string
		want                float64
	}{{"failing", "breaker", 1}, {"failing", "operator", 0}, {"healthy", "breaker", 0}} {
		if v, ok := value(families, "inbox_destination_paused", map[string]string{"destination": g.destination, "reason": g.reason}); !ok || v != g.want {
			t.Errorf("inbox_destination_paused{destination=%s,reason=%s} = %v (reported %v), want %v", g.destination, g.reason, v, ok, g.want)
		}
	}
	if v, ok := value(families, "inbox_processing_lag_seconds", map[string]string{"destination": "healthy"}); !ok || v != n {
		t.Errorf("inbox_processing_lag_seconds{destination=healthy} has %v samples (reported %v), want %d", v, ok, n)
	}
	if v, ok := value(families, "inbox_destination_waiting", map[string]string{"destination": "failing"}); !ok || v != n {
		t.Errorf("inbox_destination_waiting{destination=failing} = %v (reported %v), want its %d waiting deliveries", v, ok, n)
	}

	// Each destination's deliveries, as the admin API filters them.
	listed := func(query string) int {
		t.Helper()
		st, _, body := adminDo(t, "GET", "http://"+s.adminAddr+"/api/messages?limit=200&"+query, "Bearer "+adminToken)
		if st != http.StatusOK {
			t.Fatalf("GET /api/messages?%s: %d %s", query, st, body)
		}
		var page struct {
			Messages []json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		return len(page.Messages)
	}
	// A delivery is forwarded when River completes its job, just after
	// the app answered.
	poll.Until(t, "every message forwarded to healthy, as the API lists them", func() bool {
		return listed("forward=forwarded&destination=healthy") == n
	})
	if got := listed("forward=pending,retrying&destination=failing"); got != n {
		t.Errorf("%d messages pending or retrying for failing, want %d", got, n)
	}
	if got := listed("forward=forwarded&destination=failing"); got != 0 {
		t.Errorf("%d messages forwarded to failing, want none", got)
	}
	// Forward again to one destination: that app gets it again, under the
	// same webhook-id; the other is not asked.
	st, _, body := adminDo(t, "POST", "http://"+s.adminAddr+"/api/messages/"+sids[0]+"/forward?destination=healthy", "Bearer "+adminToken)
	if st != http.StatusAccepted {
		t.Fatalf("forward again to healthy: %d %s", st, body)
	}
	poll.Until(t, "the replay at the healthy app", func() bool { return healthy.Deliveries(sids[0]) == 2 })
	if st, _, body := adminDo(t, "POST", "http://"+s.adminAddr+"/api/messages/"+sids[0]+"/forward?destination=nowhere", "Bearer "+adminToken); st != http.StatusNotFound {
		t.Errorf("forward again to a destination that does not exist: %d %s, want 404", st, body)
	}
}

// TestADestinationAddedWhileServingGetsItsMessages: a destination added
// while serve runs gets the messages stored after it, through a queue the
// running workers add when they next read the destinations.
func TestADestinationAddedWhileServingGetsItsMessages(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	first := routedApp(t, databaseURL, key, "first", teamapp.Options{})
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	later := routedApp(t, databaseURL, key, "later", teamapp.Options{})
	sid := simulate.NewMessageSID(simulate.SMS)
	deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, 1), 5)
	poll.Until(t, "both apps to get the message", func() bool { return first.Deliveries(sid) == 1 && later.Deliveries(sid) == 1 })
}

// TestBackfillHandsEachPastMessageOnce: 30 messages stored while only
// "first" existed; "late" is added, and its backfill asked for 10 times at
// once through the admin API and once more by the CLI, while no process
// runs jobs: one backfill is queued, every answer names it. Then a
// process with workers runs it: the late app gets each of the 30 once,
// and another backfill afterwards queues nothing (each message is owed
// to a destination at most once). Adding the destination alone replays
// nothing.
func TestBackfillHandsEachPastMessageOnce(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	first := routedApp(t, databaseURL, key, "first", teamapp.Options{})
	storing := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			deliverForm(t, []string{storing.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), i), 1)
		})
	}
	wg.Wait()
	poll.Until(t, "the first app to get every message", func() bool { return len(first.Accepted()) == n })
	storing.stop(t)
	late := routedApp(t, databaseURL, key, "late", teamapp.Options{})
	// The admin edge alone: no worker takes the backfill while it is asked
	// for.
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key, "ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": adminToken, "WORKERS": "0"})

	backfill := func() (int, int64) {
		st, _, body := adminSend(t, http.MethodPost, "http://"+s.adminAddr+"/api/destinations/late/backfill",
			http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {"application/json"}}, `{"since": "1h"}`)
		var run struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(body, &run); err != nil || (st != http.StatusAccepted && st != http.StatusOK) {
			t.Errorf("backfill: %d %s", st, body)
		}
		return st, run.ID
	}
	var (
		mu      sync.Mutex
		created int
		ids     = map[int64]bool{}
	)
	for range 10 {
		wg.Go(func() {
			st, id := backfill()
			mu.Lock()
			defer mu.Unlock()
			ids[id] = true
			if st == http.StatusAccepted {
				created++
			}
		})
	}
	wg.Go(func() {
		out, err := destinationsCLI(t, databaseURL, key, "", "backfill", "late", "-since", "1h")
		if err != nil || !strings.Contains(out, "backfill") {
			t.Errorf("inbox destinations backfill: %v\n%s", err, out)
		}
		if strings.Contains(out, " queued: ") {
			mu.Lock()
			created++
			mu.Unlock()
		}
	})
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Errorf("%d backfills started by 11 requests at once (the API's runs %v), want one", created, ids)
	}
	startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	poll.Until(t, "the late app to get every past message", func() bool { return len(late.Accepted()) == n })

	pool := dbtest.Connect(t, databaseURL, 2)
	finished := func() (runs, unfinished int, queued int64) {
		if err := pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL), coalesce(sum(queued), 0)::bigint
			FROM backfills WHERE destination = 'late'`).Scan(&runs, &unfinished, &queued); err != nil {
			t.Fatal(err)
		}
		return
	}
	poll.Until(t, "every backfill to finish", func() bool { _, u, _ := finished(); return u == 0 })
	if st, _ := backfill(); st != http.StatusAccepted {
		t.Fatalf("a backfill after the first finished: %d, want a new one", st)
	}
	poll.Until(t, "the second backfill to finish", func() bool { _, u, _ := finished(); return u == 0 })
	if runs, _, queued := finished(); queued != n {
		t.Errorf("%d backfills queued %d deliveries, want %d: each message once", runs, queued, n)
	}
	poll.Until(t, "every delivery job to finish", func() bool { return jobsSettled(t, pool) })
	for id, c := range late.Accepted() {
		if c != 1 {
			t.Errorf("the late app got %s %d times, want once", id, c)
		}
	}
	if len(first.Accepted()) != n {
		t.Errorf("the first app got %d, want its %d once each: a backfill of late sent it nothing", len(first.Accepted()), n)
	}
}

// TestAnUnroutedMessageIsStoredAndShown: with one destination for account
// A and no FORWARD_URL, a message of account B is stored as always (200),
// has no delivery, is listed by the forward filter none, and counted by
// inbox_unrouted_messages_last_hour; A's message goes to its app.
func TestAnUnroutedMessageIsStoredAndShown(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	app := routedApp(t, databaseURL, key, "account-a", teamapp.Options{}, "-account", routeAccountA)
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key, "ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": adminToken})
	send := func(account string) string {
		sid := simulate.NewMessageSID(simulate.SMS)
		f := simulate.InboundForm(simulate.SMS, sid, 1)
		f.Set("AccountSid", account)
		deliverForm(t, []string{s.addr}, api.PathMessages, f, 3)
		return sid
	}
	routed, unrouted := send(routeAccountA), send(routeAccountB)
	poll.Until(t, "account A's message at its app", func() bool { return app.Deliveries(routed) == 1 })

	st, _, body := adminDo(t, "GET", "http://"+s.adminAddr+"/api/messages?forward=none", "Bearer "+adminToken)
	var page struct {
		Messages []struct {
			SID string `json:"sid"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &page); err != nil || st != http.StatusOK {
		t.Fatalf("GET /api/messages?forward=none: %d %s", st, body)
	}
	if len(page.Messages) != 1 || page.Messages[0].SID != unrouted {
		t.Errorf("forward=none lists %s, want only the unrouted %s", body, unrouted)
	}
	if v, ok := value(scrape(t, "http://"+s.adminAddr), "inbox_unrouted_messages_last_hour", nil); !ok || v != 1 {
		t.Errorf("inbox_unrouted_messages_last_hour = %v (reported %v), want 1", v, ok)
	}
	if app.Deliveries(unrouted) != 0 {
		t.Errorf("the unrouted message reached account A's app")
	}
}
