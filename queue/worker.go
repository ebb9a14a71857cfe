package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"inbox/store"
)

// Args is a job's arguments: the types of package job.
type Args interface {
	Kind() string
}

// Job is one run of a job, as its worker sees it.
type Job[A Args] struct {
	ID          int64
	Args        A
	Attempt     int // from 1
	MaxAttempts int
	CreatedAt   time.Time

	river  *river.Job[A]
	policy *policy
}

// Classify is the verdict on err as this run's failure.
func (j *Job[A]) Classify(err error) Verdict {
	return j.policy.classify(err, j.Attempt, j.MaxAttempts, time.Now())
}

// ClassifyFirst is the verdict on err as the first failure of a job of its
// own with this job's attempts: what a message of a batch gets when its
// forward fails there.
func (j *Job[A]) ClassifyFirst(err error) Verdict {
	return j.policy.classify(err, 1, j.MaxAttempts, time.Now())
}

// complete completes the job in tx (River's JobCompleteTx).
func (j *Job[A]) complete(ctx context.Context, tx pgx.Tx) error {
	_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, j.river)
	return err
}

// Ref is a job a unit of work completes (Tx.Complete).
type Ref interface {
	complete(ctx context.Context, tx pgx.Tx) error
}

// Workers are the jobs a process runs, by kind.
type Workers struct {
	w      *river.Workers
	after  *sync.Map // job id → the earliest next attempt its receiver asked for
	policy *policy   // set by New
	err    error     // the first failed Handle
}

// newWorkers returns an empty set of workers.
func newWorkers() *Workers {
	return &Workers{w: river.NewWorkers(), after: &sync.Map{}, policy: &policy{}}
}

// Option is an option of Handle.
type Option func(*handlerOpts)

type handlerOpts struct{ timeout time.Duration }

// WithTimeout bounds each run of the kind, instead of the queue's
// JobTimeout.
func WithTimeout(d time.Duration) Option { return func(o *handlerOpts) { o.timeout = d } }

// Handle registers work as what runs jobs of A's kind. What work returns
// decides what happens next: nil completes the job; Snooze's error puts it
// back without spending an attempt; any other error is classified
// (Classify): retried at the verdict's time, or cancelled, or discarded.
func Handle[A Args](ws *Workers, work func(ctx context.Context, j *Job[A]) error, opts ...Option) {
	var o handlerOpts
	for _, opt := range opts {
		opt(&o)
	}
	h := &handler[A]{work: work, ws: ws, timeout: o.timeout}
	if err := river.AddWorkerSafely(ws.w, h); err != nil && ws.err == nil {
		var zero A
		ws.err = fmt.Errorf("add worker of %s: %w", zero.Kind(), err)
	}
}

// handler is a River worker that runs a Handle function.
type handler[A Args] struct {
	river.WorkerDefaults[A]
	work    func(ctx context.Context, j *Job[A]) error
	ws      *Workers
	timeout time.Duration
}

func (h *handler[A]) Work(ctx context.Context, rj *river.Job[A]) error {
	j := &Job[A]{ID: rj.ID, Args: rj.Args, Attempt: rj.Attempt, MaxAttempts: rj.MaxAttempts, CreatedAt: rj.CreatedAt,
		river: rj, policy: h.ws.policy}
	err := h.work(ctx, j)
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*river.JobSnoozeError](err); ok {
		return err
	}
	switch v := j.Classify(err); v.State {
	case StateCancelled:
		if _, ok := errors.AsType[*river.JobCancelError](err); !ok {
			err = river.JobCancel(err)
		}
	case StateRetry:
		if d, ok := retryAfter(err); ok {
			h.ws.after.Store(rj.ID, time.Now().Add(d))
		}
	}
	return err
}

// NextRetry is River's time for the job's next attempt: the policy's, or
// later when its receiver asked for it (RetryAfter). River asks right
// after the failed run, in this process, so the wish is kept here until
// then.
func (h *handler[A]) NextRetry(rj *river.Job[A]) time.Time {
	v, ok := h.ws.after.LoadAndDelete(rj.ID)
	if !ok {
		return time.Time{} // the client's policy
	}
	t := h.ws.policy.NextRetry(rj.JobRow)
	if nb := v.(time.Time); nb.After(t) {
		return nb
	}
	return t
}

func (h *handler[A]) Timeout(*river.Job[A]) time.Duration { return h.timeout }

// Snooze puts the job back for d without spending an attempt: what a
// worker returns when the job may not run now (paused, held by a rate).
func Snooze(d time.Duration) error { return river.JobSnooze(d) }

// The states a job's verdict gives, as River names them.
const (
	StateRetry     = "retryable"
	StateCancelled = "cancelled"
	StateDiscarded = "discarded"
)

// MaxRetryAfter caps the wait a receiver can ask for (RetryAfter).
const MaxRetryAfter = 24 * time.Hour

// Verdict is what follows a failed attempt.
type Verdict struct {
	// State is StateRetry, StateCancelled (a retry cannot help) or
	// StateDiscarded (no attempt is left).
	State string
	// NotBefore is, for StateRetry, the earliest next attempt: the
	// backoff's, or later if the receiver asked.
	NotBefore time.Time
}

// policy is the one failure policy: River's retry policy, and Classify.
type policy struct {
	backoff func(attempt int) time.Duration // nil: River's
}

// NextRetry implements River's ClientRetryPolicy.
func (p *policy) NextRetry(row *rivertype.JobRow) time.Time {
	if p.backoff == nil {
		return (&river.DefaultClientRetryPolicy{}).NextRetry(row)
	}
	return time.Now().Add(p.backoff(len(row.Errors) + 1))
}

// classify is the verdict on err, the failure of attempt of maxAttempts,
// at now. An error is permanent when it, or one it wraps, says so: River's
// cancel, or any error with a Permanent() bool method returning true (a
// destination's refusal that a retry cannot change). It may carry a wait
// its receiver asked for: a RetryAfter() time.Duration method.
func (p *policy) classify(err error, attempt, maxAttempts int, now time.Time) Verdict {
	if permanent(err) {
		return Verdict{State: StateCancelled}
	}
	if attempt >= maxAttempts {
		return Verdict{State: StateDiscarded}
	}
	// As River asks after a failed run: the row's errors are the earlier
	// attempts'.
	nb := p.NextRetry(&rivertype.JobRow{Attempt: attempt, AttemptedAt: &now, MaxAttempts: maxAttempts,
		Errors: make([]rivertype.AttemptError, attempt-1)})
	if d, ok := retryAfter(err); ok && now.Add(d).After(nb) {
		nb = now.Add(d)
	}
	return Verdict{State: StateRetry, NotBefore: nb}
}

func permanent(err error) bool {
	if _, ok := errors.AsType[*river.JobCancelError](err); ok {
		return true
	}
	p, ok := errors.AsType[interface {
		error
		Permanent() bool
	}](err)
	return ok && p.Permanent()
}

// retryAfter is the wait err's receiver asked for, at most MaxRetryAfter.
func retryAfter(err error) (time.Duration, bool) {
	ra, ok := errors.AsType[interface {
		error
		RetryAfter() time.Duration
	}](err)
	if !ok {
		return 0, false
	}
	return min(max(ra.RetryAfter(), 0), MaxRetryAfter), true
}

// Insert inserts a job of args into queueName with maxAttempts attempts,
// from within this job's run (ctx is the run's): what a periodic job does
// to schedule the work it stands for.
func (j *Job[A]) Insert(ctx context.Context, args Args, queueName string, maxAttempts int) error {
	c, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("insert %s job: %w", args.Kind(), err)
	}
	if _, err := c.Insert(ctx, args, &river.InsertOpts{Queue: queueName, MaxAttempts: maxAttempts}); err != nil {
		return store.Translate("insert "+args.Kind()+" job", err)
	}
	return nil
}
