package reconcile

import (
	"context"
	"fmt"
	"time"

	"inbox/job"
	"inbox/queue"
)

// Queue is the sweeps' own queue: a sweep waits on Twilio's API for
// seconds, and must not hold a forward's worker.
const Queue = "inbox_reconcile"

// Workers is how many accounts are swept at once in a process.
const Workers = 2

// sweepTimeout bounds one sweep; one cut short resumes at the next.
const sweepTimeout = 10 * time.Minute

// Register registers the sweeps' workers with ws, and returns their
// period (every, and when the queue starts), run on River's leader: the
// schedule inserts a sweep job per account. Not River's unique jobs: they
// count a running job, and one of a process that died would then block
// the account's sweeps until River rescues it. The sweep's own lock
// (store.LockSweep), which dies with its session, keeps two sweeps of an
// account from running at once; a sweep job that finds it taken ends at
// once. A sweep that fails is not retried: the next period's resumes
// where it stood.
func (s *Sweeper) Register(ws *queue.Workers, every time.Duration) queue.Periodic {
	queue.Handle(ws, s.schedule)
	queue.Handle(ws, func(ctx context.Context, j *queue.Job[job.Reconcile]) error {
		return s.SweepAccount(ctx, j.Args.AccountSID)
	}, queue.WithTimeout(sweepTimeout))
	return queue.Periodic{ID: "inbox_reconcile", Every: every, Queue: Queue,
		Args: func() queue.Args { return job.ReconcileSchedule{} }}
}

// schedule runs job.ReconcileSchedule: a sweep job per account.
func (s *Sweeper) schedule(ctx context.Context, j *queue.Job[job.ReconcileSchedule]) error {
	accounts, err := s.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: accounts: %w", err)
	}
	for _, sid := range accounts {
		if err := j.Insert(ctx, job.Reconcile{AccountSID: sid}, Queue, 1); err != nil {
			return fmt.Errorf("reconcile: schedule %s: %w", sid, err)
		}
	}
	return nil
}
