package store_test

import (
	"strings"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/store"
	"inbox/tally"
)

// TestTheOverviewsQueriesReadOnlyTheirMinutes: on a database of a million
// messages over seven days, with seven days of counts at their densest
// (every minute, every series, several labels), each query the overview
// makes reads the tallies' primary key for its window only, never the
// whole table, and the per-message duplicates are written and read
// through indexes, never by scanning the messages, as the plans show (not
// a timing: a plan does not vary with the machine).
func TestTheOverviewsQueriesReadOnlyTheirMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a million messages (about 30 s)")
	}
	t.Parallel()
	pool := dbtest.Pool(t, 2)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO messages (direction, account_sid, from_address, to_address, body, status, received_at, metadata)
		SELECT 'inbound', 'AC00000000000000000000000000000000', '+15550000001', '+15550009999', 'hello', 'received',
		       now() - make_interval(secs => g * 0.6048), jsonb_build_object('message_sid', 'SM' || lpad(to_hex(g), 32, '0'), 'source', 'webhook')
		FROM generate_series(1, 1000000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO tallies (minute, series, label, n)
		SELECT date_trunc('minute', now()) - make_interval(mins => m), s, l, 1
		FROM generate_series(0, 7 * 24 * 60) m,
		     unnest(ARRAY['received', 'duplicate', 'refused', 'status', 'delivered', 'retrying', 'failed', 'lag_ms', 'media_kept', 'media_failed']) s,
		     unnest(ARRAY['webhook', 'event-stream', 'reconcile']) l`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE tallies, messages`); err != nil {
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
		{"the duplicates' flush", `INSERT INTO duplicate_deliveries (message_id, source, n, last_at)
			SELECT m.id, ($2::text[])[i], ($3::bigint[])[i], now() FROM generate_subscripts($1::text[], 1) AS i
			JOIN messages m ON m.metadata->>'message_sid' = ($1::text[])[i]
			ON CONFLICT (message_id, source) DO UPDATE SET n = duplicate_deliveries.n + excluded.n, last_at = excluded.last_at`,
			[]any{[]string{"SM" + strings.Repeat("0", 29) + "abc"}, []string{"webhook"}, []int64{3}}},
		{"a story's duplicates", `SELECT source, n, last_at FROM duplicate_deliveries WHERE message_id = $1 ORDER BY source LIMIT 10`, []any{int64(5)}},
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
		if strings.Contains(plan.String(), "Seq Scan") || !strings.Contains(plan.String(), "_pkey") && !strings.Contains(plan.String(), "messages_message_sid_key") {
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
