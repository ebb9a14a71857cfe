package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// Transactor runs units of work (Queue.Transact).
type Transactor interface {
	Transact(ctx context.Context, fn func(*Tx) error) error
}

// errUnderWay rolls back a StartOnce whose job is under way already.
var errUnderWay = errors.New("a job of this kind is under way")

// StartOnce starts a run of background work (a bulk retry, a backfill),
// at most one at a time however many are asked for at once: in one unit
// of work, start records the run and returns its job's arguments, and the
// job is inserted into queueName with maxAttempts attempts, unique among
// the unfinished jobs (waiting, retrying or running) of its kind, or, with
// byArgs, of its kind and the values of its fields tagged
// river:"unique", by River's unique index. When such a job is unfinished
// already, the unit rolls back (the run is not recorded) and StartOnce
// returns that job's arguments with started false.
func StartOnce[A Args](ctx context.Context, t Transactor, queueName string, maxAttempts int, byArgs bool,
	start func(*Tx) (A, error)) (under A, started bool, err error) {
	err = t.Transact(ctx, func(tx *Tx) error {
		args, err := start(tx)
		if err != nil {
			return err
		}
		res, err := tx.q.client.InsertTx(ctx, tx.tx, args, &river.InsertOpts{
			Queue: queueName, MaxAttempts: maxAttempts,
			UniqueOpts: river.UniqueOpts{ByArgs: byArgs, ByState: []rivertype.JobState{
				rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
				rivertype.JobStateRunning, rivertype.JobStateScheduled,
			}},
		})
		if err != nil {
			return store.Translate("insert "+args.Kind()+" job", err)
		}
		if !res.UniqueSkippedAsDuplicate {
			return nil
		}
		if err := json.Unmarshal(res.Job.EncodedArgs, &under); err != nil {
			return fmt.Errorf("read the %s job under way: %w", args.Kind(), err)
		}
		return errUnderWay
	})
	if errors.Is(err, errUnderWay) {
		return under, false, nil
	}
	return under, err == nil, err
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
