package routing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"inbox/job"
	"inbox/queue"
	"inbox/store"
)

// BackfillQueue is where backfills run: apart from the deliveries, so one
// runs while its destination is paused (what it queues waits there).
const BackfillQueue = "inbox_backfill"

// The bounds of a backfill.
const (
	// MaxBackfillSince is the furthest back a backfill reaches.
	MaxBackfillSince = 366 * 24 * time.Hour
	// MaxBackfillRun bounds the messages one backfill reads; a longer
	// history takes another backfill, which skips what this one queued.
	MaxBackfillRun = 1_000_000
	// backfillPage is how many messages a backfill reads, and queues with
	// one job, at a time.
	backfillPage = 1000
	// backfillAttempts is the attempts of a backfill's own job.
	backfillAttempts = 5
	// backfillTimeout bounds one run of a backfill: up to a thousand pages,
	// not one forward, so not the forwards' job timeout.
	backfillTimeout = 30 * time.Minute
)

// DefaultAttempts are a delivery job's attempts when the Manager's are
// not set: FORWARD_MAX_ATTEMPTS's default.
const DefaultAttempts = 25

// ErrBackfillOff is returned by Backfill by a Manager that cannot queue.
var ErrBackfillOff = errors.New("this process cannot start a backfill (no queue)")

// Backfill starts a backfill of the destination name: every stored
// inbound message received in the last since that its rules match, and
// that is not owed to it yet, gets a delivery to it (with the Manager's
// Attempts), by a background job that reads at most MaxBackfillRun
// messages. One runs at
// a time per destination: while one is under way it is returned, with
// created false, however many are asked for at once. A message is owed
// to a destination at most once (the deliveries' primary key), so a
// backfill asked for twice queues each message once.
func (m *Manager) Backfill(ctx context.Context, name string, since time.Duration) (run store.Backfill, created bool, err error) {
	if since <= 0 || since > MaxBackfillSince {
		return store.Backfill{}, false, invalid(fmt.Errorf("-since %s: want a duration from 1s to %s (e.g. 24h)", since, MaxBackfillSince))
	}
	if _, err := m.Store.Destination(ctx, name); err != nil {
		return store.Backfill{}, false, err
	}
	if m.Deliveries == nil {
		return store.Backfill{}, false, ErrBackfillOff
	}
	under, started, err := queue.StartOnce(ctx, m.Deliveries, BackfillQueue, backfillAttempts, true, func(tx *queue.Tx) (job.Backfill, error) {
		var err error
		run, err = tx.Store.StartBackfill(ctx, name, time.Now().Add(-since))
		return job.Backfill{RunID: run.ID, Destination: name, Since: run.Since, MaxAttempts: cmp.Or(m.Attempts, DefaultAttempts)}, err
	})
	if err != nil {
		return store.Backfill{}, false, err
	}
	if !started {
		run, err = m.Store.BackfillRun(ctx, under.RunID)
		return run, false, err
	}
	return run, true, nil
}

// Backfills returns the destination name's latest n backfills, newest
// first.
func (m *Manager) Backfills(ctx context.Context, name string, n int32) ([]store.Backfill, error) {
	if _, err := m.Store.Destination(ctx, name); err != nil {
		return nil, err
	}
	return m.Store.Backfills(ctx, name, n)
}

// Register registers the backfills' worker.
func (m *Manager) Register(ws *queue.Workers) {
	queue.Handle(ws, m.backfill, queue.WithTimeout(backfillTimeout))
}

// backfill runs job.Backfill, a page at a time, oldest first. Run again
// after a crash, it starts over: what it queued is owed already, so
// nothing is queued twice (read counts the messages again).
func (m *Manager) backfill(ctx context.Context, j *queue.Job[job.Backfill]) error {
	err := m.backfillPages(ctx, j)
	if err != nil && j.Attempt >= j.MaxAttempts {
		if ferr := m.Store.FinishBackfill(context.WithoutCancel(ctx), j.Args.RunID, err.Error()); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}

func (m *Manager) backfillPages(ctx context.Context, j *queue.Job[job.Backfill]) error {
	p := queue.BackfillPage{Destination: j.Args.Destination, Since: j.Args.Since, Size: backfillPage, MaxAttempts: j.Args.MaxAttempts}
	var read int64
	for read < MaxBackfillRun {
		got, err := m.Deliveries.Backfill(ctx, p)
		if err != nil {
			return fmt.Errorf("backfill %d: %w", j.Args.RunID, err)
		}
		if err := m.Store.AddBackfillProgress(ctx, j.Args.RunID, got.Read, got.Queued); err != nil {
			return err
		}
		read += got.Read
		if got.Read < int64(p.Size) {
			break
		}
		p.AfterAt, p.AfterID = got.LastAt, got.LastID
	}
	short := ""
	if read >= MaxBackfillRun {
		short = fmt.Sprintf("stopped after %d messages, the most one backfill reads: backfill again for the rest (what this one queued is skipped)", MaxBackfillRun)
	}
	// Finished in the transaction that completes its job, so a backfill
	// asked for once this one is seen finished starts anew.
	return m.Deliveries.Transact(ctx, func(tx *queue.Tx) error {
		if err := tx.Store.FinishBackfill(ctx, j.Args.RunID, short); err != nil {
			return err
		}
		return tx.Complete(ctx, j)
	})
}
