package store_test

import (
	"strings"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/store"
	"inbox/tally"
)

// TestTheOverviewsQueriesReadOnlyTheirMinutes: with seven days of counts
// at their densest (every minute, every series, several labels: what a
// million messages a week make, or a billion), each query the overview
// makes reads the tallies' primary key for its window only, never the
// whole table, as its plan shows (not a timing: a plan does not vary with
// the machine).
func TestTheOverviewsQueriesReadOnlyTheirMinutes(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, 2)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO tallies (minute, series, label, n)
		SELECT date_trunc('minute', now()) - make_interval(mins => m), s, l, 1
		FROM generate_series(0, 7 * 24 * 60) m,
		     unnest(ARRAY['received', 'duplicate', 'refused', 'status', 'delivered', 'retrying', 'failed', 'lag_ms', 'media_kept', 'media_failed']) s,
		     unnest(ARRAY['webhook', 'event-stream', 'reconcile']) l`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE tallies`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, c := range []struct {
		name, query string
		args        []any
	}{
		{"the last hour, per minute", `SELECT date_bin('1 minute', minute, timestamptz '2000-01-01 00:00:00+00'), series, label, sum(n) FROM tallies WHERE minute >= $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 200000`,
			[]any{now.Add(-time.Hour)}},
		{"the last day, per minute (health)", `SELECT date_bin('1 minute', minute, timestamptz '2000-01-01 00:00:00+00'), series, label, sum(n) FROM tallies WHERE minute >= $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 200000`,
			[]any{now.Add(-24 * time.Hour)}},
		{"when Twilio was last heard from", `SELECT coalesce(max(minute), timestamptz 'epoch') FROM tallies WHERE minute >= $1 AND series = ANY ($2) AND label = ANY ($3)`,
			[]any{now.Add(-8 * 24 * time.Hour), []string{"received", "status"}, []string{"webhook", "new"}}},
	} {
		var plan strings.Builder
		rows, err := pool.Query(ctx, "EXPLAIN "+c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			rows.Scan(&line)
			plan.WriteString(line + "\n")
		}
		rows.Close()
		if strings.Contains(plan.String(), "Seq Scan") || !strings.Contains(plan.String(), "tallies_pkey") {
			t.Errorf("%s reads more than its minutes:\n%s", c.name, plan.String())
		}
	}
	// The store's own reads answer, bounded, over the seeded week.
	st := store.New(pool)
	cs, err := st.Counts(ctx, now.Add(-7*24*time.Hour), time.Hour)
	if err != nil || len(cs) < 7*24*30 {
		t.Errorf("a week per hour: %d counts, %v", len(cs), err)
	}
	if last, err := st.LastCounted(ctx, now.Add(-time.Hour), []string{tally.Received}, []string{tally.FromWebhook}); err != nil || now.Sub(last) > 2*time.Minute {
		t.Errorf("last counted: %v, %v", last, err)
	}
}
