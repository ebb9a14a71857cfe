package process

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"inbox/metrics"
	"inbox/store"
)

// Retention defaults.
const (
	// DefaultRetentionBatch bounds each delete: a few thousand rows is a
	// transaction of some milliseconds, holding few locks, so ingest and
	// vacuum barely notice it.
	DefaultRetentionBatch = 2000
	// DefaultRetentionInterval is how often retention runs.
	DefaultRetentionInterval = time.Hour
	// retentionTimeout bounds one run; whatever is left, the next run takes.
	retentionTimeout = 10 * time.Minute
)

// RetentionArgs is the periodic job that deletes what is older than the
// retention.
type RetentionArgs struct{}

// Kind is River's name for the job.
func (RetentionArgs) Kind() string { return "inbox_retention" }

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	store     *store.Store
	retention time.Duration
	batch     int32
	logger    *slog.Logger
	metrics   *metrics.Metrics
	now       func() time.Time
}

func (w *retentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration { return retentionTimeout }

// Work deletes in batches until every table has nothing older than the
// cutoff, each batch its own statement, so no lock is held for long.
func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	cutoff := w.now().Add(-w.retention)
	var total store.Deleted
	for {
		d, err := w.store.DeleteBefore(ctx, cutoff, w.batch)
		w.metrics.RetentionDeleted("messages", d.Messages)
		w.metrics.RetentionDeleted("message_status_events", d.StatusEvents)
		w.metrics.RetentionDeleted("river_job", d.Jobs)
		total.Messages += d.Messages
		total.StatusEvents += d.StatusEvents
		total.Jobs += d.Jobs
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		if d.Messages < int64(w.batch) && d.StatusEvents < int64(w.batch) && d.Jobs < int64(w.batch) {
			break
		}
	}
	if total.Total() > 0 {
		w.logger.InfoContext(ctx, "retention deleted old rows", "cutoff", cutoff.Format(time.RFC3339),
			"messages", total.Messages, "status_events", total.StatusEvents, "jobs", total.Jobs)
	}
	return nil
}
