package retention_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/internal/workertest"
	"inbox/metrics"
	"inbox/queue"
	"inbox/retention"
	"inbox/store"
)

// aged seeds, in a fresh database, old and new rows of each table retention
// touches: old ones 100 days back, new ones now.
type aged struct {
	pool                      *pgxpool.Pool
	oldMsgs, oldEvts, oldJobs int
	newMsgs, newEvts, newJobs int
}

func seedAged(t *testing.T) *aged {
	t.Helper()
	a := &aged{pool: dbtest.Pool(t, 4), oldMsgs: 25, oldEvts: 12, oldJobs: 9, newMsgs: 10, newEvts: 3, newJobs: 4}
	st := store.New(a.pool)
	for i := range a.oldMsgs + a.newMsgs {
		sid := fixture.SID()
		if _, _, err := st.InsertInboundMessage(t.Context(), fixture.Inbound(sid)); err != nil {
			t.Fatal(err)
		}
		if i < a.oldMsgs {
			a.exec(t, `UPDATE messages SET received_at = now() - interval '100 days' WHERE metadata->>'message_sid' = $1`, sid)
		}
	}
	for i := range a.oldEvts + a.newEvts {
		age := "0 days"
		if i < a.oldEvts {
			age = "100 days"
		}
		a.exec(t, `INSERT INTO message_status_events (message_sid, status, received_at, params)
			VALUES ($1, 'sent', now() - $2::interval, '{}')`, fixture.SID(), age)
	}
	for i := range a.oldJobs + a.newJobs {
		age, state := "0 days", "completed"
		if i < a.oldJobs {
			age, state = "100 days", []string{"completed", "cancelled", "discarded"}[i%3]
		}
		a.exec(t, `INSERT INTO river_job (args, kind, max_attempts, state, finalized_at)
			VALUES (jsonb_build_object('sid', $1::text), 'inbox_message', 5, $2::river_job_state, now() - $3::interval)`,
			fixture.SID(), state, age)
	}
	// Jobs not yet finished are never retention's, however old.
	a.exec(t, `INSERT INTO river_job (args, kind, max_attempts, state, created_at, scheduled_at)
		VALUES ('{"sid": "SMold"}', 'inbox_message', 5, 'retryable', now() - interval '100 days', now())`)
	a.newJobs++
	return a
}

func (a *aged) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := a.pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (a *aged) counts(t *testing.T) (msgs, evts, jobs int) {
	t.Helper()
	err := a.pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM messages), (SELECT count(*) FROM message_status_events),
		(SELECT count(*) FROM river_job WHERE kind = 'inbox_message')`).Scan(&msgs, &evts, &jobs)
	if err != nil {
		t.Fatal(err)
	}
	return msgs, evts, jobs
}

// TestRetentionDeletesInBoundedBatches: one call deletes at most its batch
// from each table, the oldest rows only.
func TestRetentionDeletesInBoundedBatches(t *testing.T) {
	t.Parallel()
	a := seedAged(t)
	st := store.New(a.pool)
	q, err := queue.New(a.pool, queue.Config{Logger: slog.New(slog.DiscardHandler), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-90 * 24 * time.Hour)
	d, err := retention.DeleteBatch(t.Context(), st, q, cutoff, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.Messages != 10 || d.StatusEvents != 10 || d.Jobs != 9 {
		t.Fatalf("first batch of 10 deleted %+v, want 10 messages, 10 events, 9 jobs", d)
	}
	msgs, evts, jobs := a.counts(t)
	if msgs != a.oldMsgs+a.newMsgs-10 || evts != a.oldEvts+a.newEvts-10 || jobs != a.newJobs {
		t.Fatalf("after one batch: %d messages, %d events, %d jobs", msgs, evts, jobs)
	}
}

// TestRetentionJobDeletesOnlyWhatIsOlder: the periodic job, run by a River
// client that processes nothing else, deletes every row older than the
// retention, in batches, and none newer; the metrics count what it deleted.
func TestRetentionJobDeletesOnlyWhatIsOlder(t *testing.T) {
	t.Parallel()
	a := seedAged(t)
	m := metrics.New()
	st := store.New(a.pool)
	logger := slog.New(slog.DiscardHandler)
	q, err := queue.New(a.pool, queue.Config{
		Logger: logger, Store: st, Queues: map[string]int{retention.Queue: 1}, FetchPollInterval: 100 * time.Millisecond,
		Register: func(q *queue.Queue, ws *queue.Workers) []queue.Periodic {
			return []queue.Periodic{retention.New(st, q, 90*24*time.Hour, 4, logger, m).Register(ws, 0)}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	workertest.Run(t, q.Run)
	poll.Until(t, "the retention job to complete", func() bool {
		var done bool
		a.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = 'inbox_retention' AND state = 'completed')`).Scan(&done)
		return done
	})
	msgs, evts, jobs := a.counts(t)
	if msgs != a.newMsgs || evts != a.newEvts || jobs != a.newJobs {
		t.Fatalf("after retention: %d messages, %d events, %d jobs; want %d, %d, %d", msgs, evts, jobs, a.newMsgs, a.newEvts, a.newJobs)
	}
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "inbox_retention_deleted_rows_total" {
			for _, s := range f.GetMetric() {
				got[s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
			}
		}
	}
	// River's own cleaner also deletes finished jobs (after a day, by
	// default) and may take the old ones first.
	if got["messages"] != float64(a.oldMsgs) || got["message_status_events"] != float64(a.oldEvts) || got["river_job"] > float64(a.oldJobs) {
		t.Fatalf("inbox_retention_deleted_rows_total = %v, want %d messages, %d events, at most %d jobs", got, a.oldMsgs, a.oldEvts, a.oldJobs)
	}
}
