package control_test

import (
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/workertest"
	"inbox/message"
	"inbox/store"
)

// TestRetryFailedFinishesFiftyThousand: 50 000 failed deliveries of one
// destination (and as many forwarded ones of another, which stay as they
// are), seeded through SQL; one bulk retry gives each failed one a new
// job, once, and finishes. Before deliveries were stored, the forward
// state was computed per message from River's jobs and a retry of 12 000
// never finished. Forwarding is paused, so only the retry runs.
func TestRetryFailedFinishesFiftyThousand(t *testing.T) {
	t.Parallel()
	const n = 50_000
	pool := dbtest.Pool(t, 8)
	p := workertest.Start(t, pool, workertest.Options{URL: "http://127.0.0.1:9/never"})
	if _, err := p.Controls.Pause(t.Context(), store.PausedByOperator, "only the retry runs"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `
		WITH m AS (
			INSERT INTO messages (direction, account_sid, from_address, to_address, body, num_media, num_segments, media, status, metadata, received_at)
			SELECT 'inbound', 'AC' || md5('a'), '+1555' || lpad(g::text, 7, '0'), '+15550000001', 'hi', 0, 1, '[]', 'received',
			       jsonb_build_object('message_sid', 'SM' || md5(g::text || random()::text), 'params', '{}'::jsonb),
			       now() - make_interval(secs => g)
			FROM generate_series(1, $1::integer) g
			RETURNING id, received_at
		)
		INSERT INTO deliveries (message_id, destination, received_at, state, attempts, error)
		SELECT id, d, received_at, CASE d WHEN 'default' THEN 'failed' ELSE 'forwarded' END, 5, CASE d WHEN 'default' THEN 'HTTP 500' END
		FROM m CROSS JOIN (VALUES ('default'), ('orders')) AS v(d)`, n); err != nil {
		t.Fatal(err)
	}

	run, created, err := p.Controls.RetryFailed(t.Context(), message.Filter{})
	if err != nil || !created {
		t.Fatalf("retry: created %v, %v", created, err)
	}
	poll.Within(t, 3*time.Minute, "the bulk retry to finish", func() bool {
		run, err = p.Controls.RetryRun(t.Context(), run.ID)
		return err == nil && run.FinishedAt != nil
	})
	t.Logf("a bulk retry of %d took %s", n, run.FinishedAt.Sub(run.RequestedAt).Round(time.Millisecond))
	if run.Matched != n || run.Retried != n || run.Error != "" {
		t.Fatalf("run: %+v, want %d matched and retried", run, n)
	}
	var jobs, pending, forwarded int
	if err := pool.QueryRow(t.Context(), `SELECT
			(SELECT count(*) FROM river_job WHERE kind = 'inbox_message' AND queue = 'default' AND state = 'available'),
			(SELECT count(*) FROM deliveries WHERE destination = 'default' AND state = 'pending'),
			(SELECT count(*) FROM deliveries WHERE destination = 'orders' AND state = 'forwarded')`).Scan(&jobs, &pending, &forwarded); err != nil {
		t.Fatal(err)
	}
	if jobs != n || pending != n || forwarded != n {
		t.Fatalf("%d jobs, %d pending, %d forwarded to orders; want %d of each", jobs, pending, forwarded, n)
	}
}
