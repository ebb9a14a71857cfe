package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestOverviewCountsWhatArrived: with the defaults, a message delivered
// twenty times at once is counted once received and nineteen times a
// duplicate dropped, in PostgreSQL (so the figures outlive the process);
// its story says so; a delivery signed with another token is counted a
// signature refusal, and the overview says so in words, with what to do.
func TestOverviewCountsWhatArrived(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	s, base := startAdmin(t, databaseURL, app.Env())
	sid := simulate.NewMessageSID(simulate.SMS)
	for _, st := range deliverAll(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, 1), 20) {
		if st != http.StatusOK {
			t.Fatalf("webhook: %d", st)
		}
	}
	resp, err := http.DefaultClient.Do(signedRequest(t, s.addr, "not-the-token", simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 2)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a delivery signed with another token: %d", resp.StatusCode)
	}
	// An outbound message's story says what became of its statuses'
	// forwards, its own forward state.
	out := simulate.NewMessageSID(simulate.SMS)
	for _, status := range []string{"queued", "sent", "delivered"} {
		if st := deliverAll(t, []string{s.addr}, api.PathStatus, simulate.StatusForm(out, status, ""), 1)[0]; st != http.StatusOK {
			t.Fatalf("status callback: %d", st)
		}
	}
	poll.Until(t, "the three statuses forwarded", func() bool {
		_, _, page := adminDo(t, http.MethodGet, base+"/messages/"+out, "Bearer "+adminToken)
		return strings.Contains(string(page), `Status forwards: <span class="state state-forwarded">forwarded</span> 3`)
	})
	pool := dbtest.Connect(t, databaseURL, 2)
	counted := func(series, label string) int64 {
		var n int64
		if err := pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0) FROM tallies WHERE series = $1 AND label = $2`, series, label).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	poll.Until(t, "the counts in PostgreSQL", func() bool {
		var dropped int64
		if err := pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0) FROM duplicate_deliveries`).Scan(&dropped); err != nil {
			t.Fatal(err)
		}
		return counted("received", "webhook") == 1 && counted("duplicate", "webhook") == 19 && counted("refused", "signature_mismatch") == 1 && dropped == 19
	})
	auth := "Bearer " + adminToken
	_, _, body := adminDo(t, http.MethodGet, base+"/api/messages/"+sid, auth)
	var story struct {
		Duplicates map[string]int64 `json:"duplicates_dropped"`
	}
	if err := json.Unmarshal(body, &story); err != nil || story.Duplicates["webhook"] != 19 {
		t.Errorf("the story's duplicates: %v %s", err, body)
	}
	if _, _, page := adminDo(t, http.MethodGet, base+"/messages/"+sid, auth); !strings.Contains(string(page), "<strong>19</strong> (19 by webhook)") {
		t.Errorf("the story page does not say 19 duplicates were dropped:\n%s", page)
	}
	st, _, page := adminDo(t, http.MethodGet, base+"/", auth)
	for _, want := range []string{"1 signature refused since", "Messages received, by source, last hour, per minute: 1 webhook, 0 event-stream, 0 reconcile.",
		"Duplicate deliveries dropped, last hour, per minute: 19 webhook"} {
		if st != http.StatusOK || !strings.Contains(string(page), want) {
			t.Errorf("the overview (%d) does not say %q:\n%s", st, want, page)
		}
	}
	for _, w := range []string{"24h", "7d"} {
		if st, _, page := adminDo(t, http.MethodGet, base+"/?window="+w, auth); st != http.StatusOK || !strings.Contains(string(page), "1 webhook") {
			t.Errorf("the overview of %s: %d", w, st)
		}
	}
	if st, _, page := adminDo(t, http.MethodGet, base+"/?window=2w", auth); st != http.StatusBadRequest || !strings.Contains(string(page), "want one of 1h, 24h, 7d") {
		t.Errorf("an unknown window: %d\n%s", st, page)
	}
}

// TestOverviewInABrowser: the console opens on the overview; with
// messages, duplicates, a refusal and a paused destination seeded, it
// shows each chart and says in words what is wrong; each window's link
// works.
func TestOverviewInABrowser(t *testing.T) {
	t.Parallel()
	chromium(t)
	databaseURL, key := dbtest.URL(t), newKeyB64()
	orders := routedApp(t, databaseURL, key, "orders", teamapp.Options{})
	s, base := startAdmin(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	for i := range 12 {
		form := simulate.InboundForm(simulate.Kinds[i%len(simulate.Kinds)], simulate.NewMessageSID(simulate.SMS), i)
		deliverAll(t, []string{s.addr}, api.PathMessages, form, 1+i%4)
	}
	resp, err := http.DefaultClient.Do(signedRequest(t, s.addr, "not-the-token", simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 2)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	poll.Until(t, "the twelve messages at orders", func() bool { return len(orders.Accepted()) == 12 })
	if st, _, body := adminDo(t, http.MethodPost, base+"/api/destinations/orders/pause", "Bearer "+adminToken); st != http.StatusOK {
		t.Fatalf("pause orders: %d %s", st, body)
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "the counts in PostgreSQL", func() bool {
		var n int64
		if err := pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0) FROM tallies WHERE series = 'delivered'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 12
	})

	p := openBrowser(t, base)
	p.navigate("/")
	p.fill("textbox", "Token", adminToken)
	p.press("Log in")
	p.navigate("/")
	p.shows("Overview", "1 signature refused since", "The destination orders is paused by an operator",
		"Messages received, by source", "webhook: 12", "Duplicate deliveries dropped", "Deliveries to orders", "delivered: 12")
	p.screenshot("overview")
	for _, w := range []string{"24h", "7d"} {
		p.navigate("/?window=" + w)
		p.shows("Traffic, last "+map[string]string{"24h": "24 hours", "7d": "7 days"}[w], "webhook: 12", "delivered: 12")
	}

	// Each other line appears with its condition seeded, and goes with it.
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO tallies (minute, series, label, n) VALUES (date_trunc('minute', now()), 'received', 'reconcile', 14),
		(date_trunc('minute', now()), 'media_failed', 'unauthorized', 3), (date_trunc('minute', now()), 'failed', 'orders', 2),
		(date_trunc('minute', now()), 'refused', 'account_unknown', 5)`)
	exec(`UPDATE destinations SET paused_reason = 'breaker', paused_detail = 'its app answered 503 ten times in a row' WHERE name = 'orders'`)
	p.navigate("/")
	p.shows("Reconciliation found 14 messages whose webhooks never arrived", "3 fetches of media failed in the last hour (unauthorized)",
		"2 deliveries to the destination orders failed for good", "5 deliveries for an account this service does not take",
		"The destination orders is paused by its breaker since", "its app answered 503 ten times in a row")
	// Twilio, heard from every hour of the day before, not for 30 minutes.
	exec(`DELETE FROM tallies WHERE minute > now() - interval '30 minutes'`)
	exec(`INSERT INTO tallies (minute, series, label, n) SELECT date_trunc('minute', now()) - make_interval(mins => 40 + 60 * h), 'received', 'webhook', 1
		FROM generate_series(0, 5) h`)
	exec(`UPDATE destinations SET paused_reason = NULL, paused_detail = NULL, paused_at = NULL WHERE name = 'orders'`)
	p.navigate("/")
	p.shows("Twilio has not reached the service for ", " minutes; it did in 6 of the last 24 hours")
	if text := p.text(); strings.Contains(text, "Reconciliation found") || strings.Contains(text, "refused since") || strings.Contains(text, "paused") {
		t.Fatalf("lines whose condition is gone are still said:\n%s", text)
	}
	exec(`INSERT INTO tallies (minute, series, label, n) VALUES (date_trunc('minute', now()), 'received', 'webhook', 1)`)
	p.navigate("/")
	p.shows("All is well")
}
