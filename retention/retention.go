// Package retention deletes what is older than RETENTION: messages, their
// status events and finished jobs, in short batches, on River's leader.
package retention

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"inbox/job"
	"inbox/metrics"
	"inbox/queue"
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

// Store is what retention deletes from the store.
type Store interface {
	DeleteMessagesBefore(ctx context.Context, cutoff time.Time, maxRows int32) (messages, statusEvents int64, err error)
}

// Jobs is what retention deletes from the queue: finished jobs.
type Jobs interface {
	DeleteFinishedBefore(ctx context.Context, cutoff time.Time, maxRows int32) (int64, error)
}

// Queue is retention's own queue, so a process that runs retention but no
// forwards never fetches the forwards.
const Queue = "inbox_maintenance"

// Deleter deletes what is older than the retention.
type Deleter struct {
	store     Store
	jobs      Jobs
	retention time.Duration
	batch     int32
	logger    *slog.Logger
	metrics   *metrics.Metrics
	now       func() time.Time
}

// New returns a Deleter of what is older than retention, at most batch
// rows (default DefaultRetentionBatch) a statement.
func New(st Store, jobs Jobs, retention time.Duration, batch int32, logger *slog.Logger, m *metrics.Metrics) *Deleter {
	return &Deleter{store: st, jobs: jobs, retention: retention, batch: cmp.Or(batch, DefaultRetentionBatch),
		logger: logger, metrics: m, now: time.Now}
}

// Register registers retention's worker, and its period (every, default
// DefaultRetentionInterval, and when the queue starts) on River's leader,
// so replicas do not repeat the work.
func (d *Deleter) Register(ws *queue.Workers, every time.Duration) queue.Periodic {
	queue.Handle(ws, d.work, queue.WithTimeout(retentionTimeout))
	return queue.Periodic{ID: "inbox_retention", Every: cmp.Or(every, DefaultRetentionInterval), Queue: Queue,
		Args: func() queue.Args { return job.Retention{} }}
}

// Deleted counts the rows one call of DeleteBatch removed, by table.
type Deleted struct {
	Messages     int64
	StatusEvents int64
	Jobs         int64
}

// Total is the rows deleted from every table.
func (d Deleted) Total() int64 { return d.Messages + d.StatusEvents + d.Jobs }

// DeleteBatch deletes up to maxRows messages received before cutoff, up
// to maxRows of the status events, and up to maxRows of this service's
// finished jobs, each in its own short statement. Call it again while any
// count is maxRows.
func DeleteBatch(ctx context.Context, st Store, jobs Jobs, cutoff time.Time, maxRows int32) (Deleted, error) {
	var d Deleted
	var err error
	if d.Messages, d.StatusEvents, err = st.DeleteMessagesBefore(ctx, cutoff, maxRows); err != nil {
		return d, err
	}
	d.Jobs, err = jobs.DeleteFinishedBefore(ctx, cutoff, maxRows)
	return d, err
}

// work runs job.Retention: it deletes in batches until every table has
// nothing older than the cutoff, each batch its own statement, so no lock
// is held for long.
func (d *Deleter) work(ctx context.Context, _ *queue.Job[job.Retention]) error {
	cutoff := d.now().Add(-d.retention)
	var total Deleted
	for {
		b, err := DeleteBatch(ctx, d.store, d.jobs, cutoff, d.batch)
		d.metrics.RetentionDeleted("messages", b.Messages)
		d.metrics.RetentionDeleted("message_status_events", b.StatusEvents)
		d.metrics.RetentionDeleted("river_job", b.Jobs)
		total.Messages += b.Messages
		total.StatusEvents += b.StatusEvents
		total.Jobs += b.Jobs
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		if b.Messages < int64(d.batch) && b.StatusEvents < int64(d.batch) && b.Jobs < int64(d.batch) {
			break
		}
	}
	if total.Total() > 0 {
		d.logger.InfoContext(ctx, "retention deleted old rows", "cutoff", cutoff.Format(time.RFC3339),
			"messages", total.Messages, "status_events", total.StatusEvents, "jobs", total.Jobs)
	}
	return nil
}
