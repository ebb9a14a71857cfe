package main

import (
	"net/http"
	"sync/atomic"
	"testing"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestDestinationsConsoleInABrowser plays an operator with two apps: the
// orders app refuses three messages for good (422); the Destinations page
// lists both, the orders page shows the three failed deliveries and the
// last hour's counts; the operator pauses orders with a note and resumes
// it, then, the app fixed, presses Retry all failed, and the app gets each
// of the three once; a message's page lists its delivery to each app, and
// Forward again to orders sends it to orders alone.
func TestDestinationsConsoleInABrowser(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	var healed atomic.Bool
	orders := routedApp(t, databaseURL, key, "orders", teamapp.Options{Answer: func(int64, http.Header) int {
		if healed.Load() {
			return http.StatusOK
		}
		return http.StatusUnprocessableEntity
	}})
	desk := routedApp(t, databaseURL, key, "support-desk", teamapp.Options{})
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key, "ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": adminToken})
	sids := []string{simulate.NewMessageSID(simulate.SMS), simulate.NewMessageSID(simulate.SMS), simulate.NewMessageSID(simulate.SMS)}
	for i, sid := range sids {
		deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, i), 1)
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "the three refused deliveries to orders", func() bool {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE destination = 'orders' AND state = 'cancelled'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 3 && len(desk.Accepted()) == 3
	})

	p := openBrowser(t, "http://"+s.adminAddr)
	p.navigate("/destinations")
	p.fill("textbox", "Token", adminToken)
	p.press("Log in")
	p.navigate("/destinations")
	p.shows("Destinations", "orders", "support-desk", "running")
	p.screenshot("destinations")

	p.navigate("/destinations/orders")
	p.shows("Failed deliveries", sids[0], sids[1], sids[2], "3 cancelled", "Backfills")
	p.screenshot("destination")
	p.fill("textbox", "Note (optional)", "moving the orders app")
	p.press("Pause orders")
	p.shows("Paused by an operator", "moving the orders app", "Other destinations are not held")
	p.press("Resume orders")
	p.shows("Running")

	healed.Store(true)
	p.navigate("/destinations/orders")
	p.press("Retry all failed")
	poll.Until(t, "the retried deliveries at the orders app", func() bool { return len(orders.Accepted()) == 3 })
	for _, sid := range sids {
		if n := orders.Deliveries(sid); n != 1 {
			t.Errorf("orders accepted %s %d times, want once", sid, n)
		}
	}

	// A forward again while the retry's job is unfinished (River records
	// completions a moment after the app answered) is refused as one
	// already waiting: wait for them to finish, as an operator would see.
	poll.Until(t, "the retried jobs finished", func() bool {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE queue = 'orders' AND finalized_at IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	p.navigate("/messages/" + sids[0])
	p.shows("Deliveries", "orders", "support-desk")
	p.press("Forward again to orders")
	poll.Until(t, "the forward again at the orders app", func() bool { return orders.Deliveries(sids[0]) == 2 })
	if n := desk.Deliveries(sids[0]); n != 1 {
		t.Errorf("the support desk got %s %d times: Forward again to orders sent it there too", sids[0], n)
	}
}
