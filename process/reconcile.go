package process

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"inbox/job"
)

// Reconciler sweeps accounts' messages on Twilio's API (package
// reconcile's Sweeper).
type Reconciler interface {
	// Accounts returns the accounts to sweep.
	Accounts(ctx context.Context) ([]string, error)
	// SweepAccount runs or resumes one account's sweep.
	SweepAccount(ctx context.Context, accountSID string) error
}

// reconcileQueue is the sweeps' own queue: a sweep waits on Twilio's API
// for seconds, and must not hold a forward's worker.
const reconcileQueue = "inbox_reconcile"

// reconcileWorkers is how many accounts are swept at once in a process.
const reconcileWorkers = 2

// sweepTimeout bounds one sweep; one cut short resumes at the next.
const sweepTimeout = 10 * time.Minute

// reconcileScheduleWorker runs job.ReconcileSchedule: a sweep job per
// account. Not River's unique jobs: they count a running job, and one of a
// process that died would then block the account's sweeps until River
// rescues it. The sweep's own lock (store.LockSweep), which dies with its
// session, keeps two sweeps of an account from running at once; a sweep
// job that finds it taken ends at once.
type reconcileScheduleWorker struct {
	river.WorkerDefaults[job.ReconcileSchedule]
	rec    Reconciler
	logger *slog.Logger
}

func (w *reconcileScheduleWorker) Work(ctx context.Context, _ *river.Job[job.ReconcileSchedule]) error {
	accounts, err := w.rec.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: accounts: %w", err)
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	for _, sid := range accounts {
		_, err := client.Insert(ctx, job.Reconcile{AccountSID: sid}, &river.InsertOpts{Queue: reconcileQueue, MaxAttempts: 1})
		if err != nil {
			return fmt.Errorf("reconcile: schedule %s: %w", sid, err)
		}
	}
	return nil
}

// reconcileWorker runs job.Reconcile: one account's sweep. A sweep that
// fails is not retried by River: the next period's resumes where it stood.
type reconcileWorker struct {
	river.WorkerDefaults[job.Reconcile]
	rec Reconciler
}

func (w *reconcileWorker) Timeout(*river.Job[job.Reconcile]) time.Duration { return sweepTimeout }

func (w *reconcileWorker) Work(ctx context.Context, j *river.Job[job.Reconcile]) error {
	return w.rec.SweepAccount(ctx, j.Args.AccountSID)
}

// addReconcile registers the sweeps' workers, queue and period in rc.
func addReconcile(rc *river.Config, workers *river.Workers, rec Reconciler, every time.Duration, logger *slog.Logger) error {
	if err := river.AddWorkerSafely(workers, &reconcileScheduleWorker{rec: rec, logger: logger}); err != nil {
		return fmt.Errorf("add reconcile schedule worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &reconcileWorker{rec: rec}); err != nil {
		return fmt.Errorf("add reconcile worker: %w", err)
	}
	rc.Queues[reconcileQueue] = river.QueueConfig{MaxWorkers: reconcileWorkers}
	rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(
		river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) {
			return job.ReconcileSchedule{}, &river.InsertOpts{Queue: reconcileQueue, MaxAttempts: 1}
		},
		&river.PeriodicJobOpts{ID: "inbox_reconcile", RunOnStart: true},
	))
	return nil
}
