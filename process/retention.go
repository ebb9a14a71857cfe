package process

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"inbox/job"
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

// MinRetention keeps retention from deleting what is still being worked
// on: Twilio retries within minutes, and a failing forward retries for
// days.
const MinRetention = 24 * time.Hour

// ParseRetention reads a retention: a number of days ("90d") or a
// duration ("36h"), at least MinRetention.
func ParseRetention(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: want a number of days such as 90d, or a duration such as 36h", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q: want a number of days such as 90d, or a duration such as 36h", v)
		}
	}
	if d < MinRetention {
		return 0, fmt.Errorf("%q: retention must be at least 1d, or a redelivery or a retrying forward could outlive its message", v)
	}
	return d, nil
}

// retentionWorker runs job.Retention.
type retentionWorker struct {
	river.WorkerDefaults[job.Retention]
	store     *store.Store
	retention time.Duration
	batch     int32
	logger    *slog.Logger
	metrics   *metrics.Metrics
	now       func() time.Time
}

func (w *retentionWorker) Timeout(*river.Job[job.Retention]) time.Duration { return retentionTimeout }

// Work deletes in batches until every table has nothing older than the
// cutoff, each batch its own statement, so no lock is held for long.
func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[job.Retention]) error {
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
