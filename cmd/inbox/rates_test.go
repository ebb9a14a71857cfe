package main

import (
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestRatesOutsideTheirRangeAreRefusedAndLiftingOneReleasesWhatItHeld: a
// forwarding rate of 1e-300 made every forward fail ("timestamp out of
// range") and 1e-7 snoozed waiting forwards by 115 days; setting the rate
// back to unlimited did not bring them back. Now a rate outside 0.01 to
// 100 000 a second is refused with 400 naming the range, by the API for
// FORWARD_URL's rate and a destination's, by FORWARD_RATE and by
// `destinations set`; and forwards held by the slowest rate allowed go as
// soon as it is lifted.
func TestRatesOutsideTheirRangeAreRefusedAndLiftingOneReleasesWhatItHeld(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	s, base := startAdmin(t, databaseURL, app.Env())
	put := func(path, body string) (int, string) {
		st, _, b := adminSend(t, http.MethodPut, base+path, http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {"application/json"}}, body)
		return st, string(b)
	}
	for _, rate := range []string{"1e-300", "1e-7", "0.009", "0", "-1", "100001", "1e300"} {
		if st, body := put("/api/forwarding/rate", `{"per_second": `+rate+`}`); st != http.StatusBadRequest || !strings.Contains(body, "0.01 to 100000") {
			t.Errorf("forwarding rate %s: %d %s, want 400 naming the range", rate, st, body)
		}
	}
	for _, rate := range []string{"1e-300", "1e-7"} {
		st, _, b := adminSend(t, http.MethodPatch, base+"/api/destinations/orders",
			http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {"application/json"}}, `{"rate_per_second": `+rate+`}`)
		if st != http.StatusBadRequest || !strings.Contains(string(b), "0.01 to 100000") {
			t.Errorf("a destination's rate %s: %d %s, want 400 naming the range", rate, st, b)
		}
	}
	vars := map[string]string{"DATABASE_URL": databaseURL, "TWILIO_AUTH_TOKEN": testToken, "PUBLIC_BASE_URL": publicURL, "FORWARD_RATE": "1e-7"}
	maps.Copy(vars, app.Env())
	if err := run(t.Context(), []string{"serve"}, env(vars), nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "0.01 to 100000") {
		t.Errorf("FORWARD_RATE=1e-7: %v, want refused naming the range", err)
	}

	if st, body := put("/api/forwarding/rate", `{"per_second": 0.01}`); st != http.StatusOK {
		t.Fatalf("the slowest rate: %d %s", st, body)
	}
	for range 5 {
		if st := deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 1)[0]; st != http.StatusOK {
			t.Fatalf("delivery: %d", st)
		}
	}
	poll.Until(t, "the first forward, and the rest held by the rate", func() bool {
		return app.Distinct() == 1 && heldByRate(t, databaseURL) == 4
	})
	if st, body := put("/api/forwarding/rate", `{"per_second": null}`); st != http.StatusOK {
		t.Fatalf("lifting the rate: %d %s", st, body)
	}
	poll.Until(t, "every held forward delivered once the rate is lifted", func() bool { return app.Distinct() == 5 })
}

// heldByRate counts the forwards waiting for a later time (snoozed).
func heldByRate(t *testing.T, databaseURL string) int {
	t.Helper()
	var n int
	if err := dbtest.Connect(t, databaseURL, 1).QueryRow(t.Context(),
		`SELECT count(*) FROM river_job WHERE state = 'scheduled' AND scheduled_at > now() + interval '30 seconds'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
