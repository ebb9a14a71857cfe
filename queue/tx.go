package queue

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"inbox/store"
)

// Tx is a unit of work that commits River's changes with the store's:
// what Transact gives its function.
type Tx struct {
	// Store writes in the unit's transaction.
	Store *store.Store
	tx    pgx.Tx
	q     *Queue
}

// Transact runs fn in one transaction and commits it when fn returns nil;
// an error rolls back everything fn did, in the store and in River, and is
// returned as fn returned it. Database errors, the Tx's and the commit's,
// are the store's (store.ErrUnavailable, ...).
func (q *Queue) Transact(ctx context.Context, fn func(*Tx) error) error {
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if err := fn(&Tx{Store: q.store.InTx(tx), tx: tx, q: q}); err != nil {
			return &fnError{err}
		}
		return nil
	})
	var fnErr *fnError
	if errors.As(err, &fnErr) {
		return fnErr.err
	}
	return store.Translate("commit", err)
}

// fnError is an error of a unit's own, passed through as it is.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// PauseQueue pauses River's queue name: no worker of any process takes
// its jobs (told by notification) until ResumeQueue; they stay, so nothing
// is lost. A queue no worker has started yet has no row in River's table
// to pause: that is not an error (the caller records the pause, and the
// workers' start pauses the queue again: see EnsurePaused).
func (t *Tx) PauseQueue(ctx context.Context, name string) error {
	if err := t.q.client.QueuePauseTx(ctx, t.tx, name, nil); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return store.Translate("pause river queue "+name, err)
	}
	return nil
}

// ResumeQueue undoes PauseQueue.
func (t *Tx) ResumeQueue(ctx context.Context, name string) error {
	if err := t.q.client.QueueResumeTx(ctx, t.tx, name, nil); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return store.Translate("resume river queue "+name, err)
	}
	return nil
}

// Complete completes j when the unit commits.
func (t *Tx) Complete(ctx context.Context, j Ref) error {
	if err := j.complete(ctx, t.tx); err != nil {
		return store.Translate("complete job", err)
	}
	return nil
}

// Inserted is what InsertUnique did.
type Inserted struct {
	ID int64
	// Existing is true when an unfinished job of the kind was there
	// already, and nothing was inserted: ID and Args are that job's.
	Existing bool
	Args     []byte
}

// InsertUnique inserts a job of args' kind into queue with maxAttempts
// attempts, unless one of its kind is unfinished (waiting, retrying or
// running): at most one runs at a time, however many are asked for at
// once, by River's unique index.
func (t *Tx) InsertUnique(ctx context.Context, args Args, queue string, maxAttempts int) (Inserted, error) {
	return t.insertUnique(ctx, args, queue, maxAttempts, false)
}

// InsertUniqueByArgs is InsertUnique, at most one unfinished job of the
// kind for each value of the args' fields tagged river:"unique" (one
// backfill per destination).
func (t *Tx) InsertUniqueByArgs(ctx context.Context, args Args, queue string, maxAttempts int) (Inserted, error) {
	return t.insertUnique(ctx, args, queue, maxAttempts, true)
}

func (t *Tx) insertUnique(ctx context.Context, args Args, queue string, maxAttempts int, byArgs bool) (Inserted, error) {
	res, err := t.q.client.InsertTx(ctx, t.tx, args, &river.InsertOpts{
		Queue: queue, MaxAttempts: maxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: byArgs, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	})
	if err != nil {
		return Inserted{}, store.Translate("insert "+args.Kind()+" job", err)
	}
	return Inserted{ID: res.Job.ID, Existing: res.UniqueSkippedAsDuplicate, Args: res.Job.EncodedArgs}, nil
}

// EnsurePaused pauses River's queue name outside a unit of work: at start,
// for a pause recorded while no worker had the queue (River forgets a
// queue no worker polled for a day, and its pause with it).
func (q *Queue) EnsurePaused(ctx context.Context, name string) error {
	if err := q.client.QueuePause(ctx, name, nil); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return store.Translate("pause river queue "+name, err)
	}
	return nil
}
