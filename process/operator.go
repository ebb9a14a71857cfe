package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"inbox/job"
	"inbox/message"
	"inbox/metrics"
	"inbox/store"
)

// controlQueue runs the console's bulk retries, apart from the forwards,
// so that one runs while forwarding is paused.
const controlQueue = "inbox_control"

// The bounds of the operator's controls.
const (
	// MaxRate is the highest delivery rate accepted, forwards a second.
	MaxRate = 100_000
	// MaxRetryRun bounds the forwards one bulk retry gives new jobs; a
	// larger backlog takes another press of Retry all failed.
	MaxRetryRun = 10_000
	// retryPage is how many messages a bulk retry reads at a time.
	retryPage = 500
	// finishedCap bounds each count of the last hour's outcomes.
	finishedCap = 100_000
)

// The errors of the operator's controls, for the edge to answer with.
var (
	// ErrProcessingOff: FORWARD_URL is not set, so there is nothing to
	// retry or throttle.
	ErrProcessingOff = errors.New("processing is off (FORWARD_URL is not set): there is nothing to forward to")
	// ErrBadControl: the control asked for is out of range.
	ErrBadControl = errors.New("invalid control")
)

// Operator is the operator's controls of forwarding, shared by every
// process through the database: pause and resume, the delivery rate, the
// bulk retry of failed forwards, and the state of the forwards' queue. It
// has its own insert-only River client, so it works in a process that runs
// no workers (serve with WORKERS=0).
type Operator struct {
	store    *store.Store
	river    *river.Client[pgx.Tx]
	logger   *slog.Logger
	metrics  *metrics.Metrics
	attempts int16
}

// NewOperator returns the controls over pool's forwards; attempts is a
// retried forward's job's attempts, 0 when processing is off.
func NewOperator(pool *pgxpool.Pool, st *store.Store, attempts int16, logger *slog.Logger, m *metrics.Metrics) (*Operator, error) {
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("operator: create river client: %w", err)
	}
	return &Operator{store: st, river: rc, logger: logger, metrics: m, attempts: attempts}, nil
}

// Pause pauses forwarding as the operator's: every worker of every
// process stops taking forwards; messages are still stored with their
// jobs, which wait. changed is false when it was already paused (and the
// earlier reason stands).
func (o *Operator) Pause(ctx context.Context, detail string) (changed bool, err error) {
	changed, err = pauseForwarding(ctx, o.river, o.store, store.PausedByOperator, detail)
	if err == nil && changed {
		o.logger.WarnContext(ctx, "forwarding paused by an operator; stored messages wait until it is resumed", "detail", detail)
	}
	return changed, err
}

// Resume resumes forwarding, whoever paused it; the jobs that waited are
// sent. changed is false when it was not paused.
func (o *Operator) Resume(ctx context.Context) (changed bool, err error) {
	changed, err = resumeForwarding(ctx, o.river, o.store)
	if err == nil && changed {
		o.logger.InfoContext(ctx, "forwarding resumed by an operator")
	}
	return changed, err
}

// SetRate sets the delivery rate, forwards a second across every worker of
// every process (bursts are held, not dropped); nil lifts it.
func (o *Operator) SetRate(ctx context.Context, perSecond *float64) error {
	if perSecond != nil && (math.IsNaN(*perSecond) || *perSecond <= 0 || *perSecond > MaxRate) {
		return fmt.Errorf("%w: a rate must be above 0 and at most %d forwards a second", ErrBadControl, MaxRate)
	}
	if err := o.store.SetForwardRate(ctx, perSecond); err != nil {
		return err
	}
	if perSecond == nil {
		o.logger.InfoContext(ctx, "forwarding rate lifted: forwards go as fast as the workers take them")
	} else {
		o.logger.InfoContext(ctx, "forwarding rate set", "per_second", *perSecond)
	}
	return nil
}

// State is what the console's Forwarding page shows.
type State struct {
	// Processing is false when FORWARD_URL is not set in this process.
	Processing   bool       `json:"processing"`
	Paused       bool       `json:"paused"`
	PausedReason string     `json:"paused_reason,omitempty"`
	PausedDetail string     `json:"paused_detail,omitempty"`
	PausedAt     *time.Time `json:"paused_at,omitempty"`
	// RatePerSecond is the delivery rate; nil: unlimited.
	RatePerSecond *float64 `json:"rate_per_second"`
	// Unfinished counts the forwards not yet done, by River state.
	Unfinished map[string]int64 `json:"unfinished"`
	// Lag is how long the longest-waiting due forward has waited.
	Lag time.Duration `json:"-"`
	// LagSeconds is Lag, for JSON.
	LagSeconds float64 `json:"lag_seconds"`
	// LastHour counts the forwards that ended in the last hour, by River
	// state (completed, discarded, cancelled), each at most LastHourCap.
	LastHour    map[string]int64 `json:"last_hour"`
	LastHourCap int              `json:"last_hour_cap"`
}

// State returns the controls and the queue's state as they stand.
func (o *Operator) State(ctx context.Context) (State, error) {
	ctl, err := o.store.ForwardingControl(ctx)
	if err != nil {
		return State{}, err
	}
	stats, err := o.store.ForwardStats(ctx, river.QueueDefault, time.Now().Add(-time.Hour), finishedCap)
	if err != nil {
		return State{}, err
	}
	lag := max(time.Since(stats.OldestDue), 0)
	return State{
		Processing: o.attempts > 0, Paused: ctl.Paused(), PausedReason: ctl.PausedReason, PausedDetail: ctl.PausedDetail,
		PausedAt: ctl.PausedAt, RatePerSecond: ctl.Rate, Unfinished: stats.Unfinished, Lag: lag, LagSeconds: lag.Seconds(),
		LastHour: stats.Finished, LastHourCap: finishedCap,
	}, nil
}

// Control returns the controls alone, for the metrics.
func (o *Operator) Control(ctx context.Context) (metrics.ForwardingControl, error) {
	ctl, err := o.store.ForwardingControl(ctx)
	if err != nil {
		return metrics.ForwardingControl{}, err
	}
	fc := metrics.ForwardingControl{PausedReason: ctl.PausedReason}
	if ctl.Rate != nil {
		fc.RatePerSecond = *ctl.Rate
	}
	return fc, nil
}

// retryStates are what a bulk retry covers: the forwards that will not
// run again by themselves.
func retryStates() []string { return []string{store.ForwardFailed, store.ForwardCancelled} }

// RetryFailed starts a bulk retry: every inbound message that matches f
// (its Forward, if set, narrowed to failed and cancelled) and whose forward
// failed or was cancelled gets a new forward job, with the same webhook-id,
// in the background, at most MaxRetryRun of them. One runs at a time: while
// one is under way, it is returned, with created false, and nothing new
// starts, however many are asked for at once.
func (o *Operator) RetryFailed(ctx context.Context, f store.Filter) (run store.RetryRun, created bool, err error) {
	if o.attempts == 0 {
		return store.RetryRun{}, false, ErrProcessingOff
	}
	if f.Direction == string(message.DirectionOutbound) {
		return store.RetryRun{}, false, fmt.Errorf("%w: only inbound messages are forwarded", ErrBadControl)
	}
	forward := retryStates()
	if len(f.Forward) > 0 {
		forward = slices.DeleteFunc(slices.Clone(f.Forward), func(s string) bool { return !slices.Contains(retryStates(), s) })
		if len(forward) == 0 {
			return store.RetryRun{}, false, fmt.Errorf("%w: a bulk retry covers failed and cancelled forwards only", ErrBadControl)
		}
	}
	f.Forward, f.After, f.Limit = forward, nil, 0
	filter, err := json.Marshal(f)
	if err != nil {
		return store.RetryRun{}, false, fmt.Errorf("bulk retry: %w", err)
	}
	run, created, err = o.store.StartForwardRetry(ctx, filter, func(tx pgx.Tx, runID int64) (int64, bool, error) {
		res, err := o.river.InsertTx(ctx, tx, job.RetryFailed{RunID: runID, Filter: filter, MaxAttempts: o.attempts}, &river.InsertOpts{
			Queue: controlQueue, MaxAttempts: 5,
			// Unique by kind alone, while unfinished: one bulk retry at a time.
			UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
				rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
				rivertype.JobStateRunning, rivertype.JobStateScheduled,
			}},
		})
		if err != nil {
			return 0, false, fmt.Errorf("insert bulk retry job: %w", err)
		}
		if !res.UniqueSkippedAsDuplicate {
			return runID, false, nil
		}
		var under job.RetryFailed
		if err := json.Unmarshal(res.Job.EncodedArgs, &under); err != nil {
			return 0, false, fmt.Errorf("read the bulk retry under way: %w", err)
		}
		return under.RunID, true, nil
	})
	if err != nil {
		return store.RetryRun{}, false, err
	}
	if created {
		o.logger.InfoContext(ctx, "bulk retry of failed forwards started", "run", run.ID, "filter", string(filter))
	}
	return run, created, nil
}

// RetryRun returns the bulk retry id; store.ErrNotFound when there is none.
func (o *Operator) RetryRun(ctx context.Context, id int64) (store.RetryRun, error) {
	return o.store.ForwardRetry(ctx, id)
}

// RetryRuns returns the latest n bulk retries, newest first.
func (o *Operator) RetryRuns(ctx context.Context, n int32) ([]store.RetryRun, error) {
	return o.store.ForwardRetries(ctx, n)
}

// retryWorker runs job.RetryFailed.
type retryWorker struct {
	river.WorkerDefaults[job.RetryFailed]
	store   *store.Store
	logger  *slog.Logger
	metrics *metrics.Metrics
}

// Work pages through the failed forwards the filter matches, oldest page
// last, and inserts a new forward job for each, as a replay does: one
// whose replay is already waiting keeps it. Run again after a crash, it
// starts over, and what it already retried is no longer failed, so nothing
// is retried twice.
func (w *retryWorker) Work(ctx context.Context, j *river.Job[job.RetryFailed]) error {
	err := w.work(ctx, j)
	if err != nil && j.Attempt >= j.MaxAttempts {
		// Its last attempt: say so where the console looks.
		if ferr := w.store.FinishForwardRetry(context.WithoutCancel(ctx), j.Args.RunID, err.Error(), nil); ferr != nil {
			w.logger.ErrorContext(ctx, "cannot record that a bulk retry failed", "run", j.Args.RunID, "err", ferr)
		}
	}
	return err
}

func (w *retryWorker) work(ctx context.Context, j *river.Job[job.RetryFailed]) error {
	var f store.Filter
	if err := json.Unmarshal(j.Args.Filter, &f); err != nil {
		return river.JobCancel(fmt.Errorf("bulk retry %d: filter: %w", j.Args.RunID, err))
	}
	matched, retried := 0, 0
	for matched < MaxRetryRun {
		f.Limit = int32(min(retryPage, MaxRetryRun-matched))
		page, err := w.store.ListMessages(ctx, f)
		if err != nil {
			return fmt.Errorf("bulk retry %d: %w", j.Args.RunID, err)
		}
		n := 0
		for _, m := range page {
			if m.Direction != message.DirectionInbound {
				continue
			}
			_, created, err := w.store.InsertMessageJob(ctx, m.Metadata.MessageSID, j.Args.MaxAttempts)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted by retention since
			} else if err != nil {
				return fmt.Errorf("bulk retry %d: %w", j.Args.RunID, err)
			}
			if created {
				n++
			}
		}
		if err := w.store.AddForwardRetryProgress(ctx, j.Args.RunID, int32(len(page)), int32(n)); err != nil {
			return err
		}
		w.metrics.RetriesQueued(n)
		matched, retried = matched+len(page), retried+n
		if len(page) < int(f.Limit) {
			break
		}
		last := page[len(page)-1]
		f.After = &store.Cursor{ReceivedAt: last.ReceivedAt, ID: last.ID}
	}
	short := ""
	if matched >= MaxRetryRun {
		short = fmt.Sprintf("stopped at %d forwards, the most one bulk retry takes: press Retry all failed again for the rest", MaxRetryRun)
	}
	// The run is finished in the transaction that completes its job, so a
	// press of Retry all failed that sees it finished can start the next.
	err := w.store.FinishForwardRetry(ctx, j.Args.RunID, short, func(tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, j)
		return err
	})
	if err != nil {
		return err
	}
	w.logger.InfoContext(ctx, "bulk retry of failed forwards done", "run", j.Args.RunID, "matched", matched, "retried", retried)
	return nil
}
