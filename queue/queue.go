// Package queue is the one owner of River, the job queue that runs what
// follows a stored message: the process's one River client, the
// statements written by hand against River's job table (generated into
// db/jobdb), River's unique-state bits, the units of work that must commit
// River's changes with the store's (Transact), and the failure policy every
// worker shares (Classify). Nothing else imports River: a worker is a
// function of a Job, registered with Handle, and its errors say what
// should happen next (Snooze, Cancel, RetryAfter).
//
// How a job is born, runs and dies, in one place:
//   - born: a message's or status's job in the store's statement that
//     stores it (its kind a parameter, a contract test holding the row to
//     River's own); a replay (Replay), a hand-off (HandOff), or a control
//     job (StartOnce) here;
//   - runs: River fetches it from its queue and calls its Handle function,
//     within the job's timeout;
//   - dies: completed when the function returns nil (or Complete commits
//     with the store's record); retried at Classify's time, cancelled or
//     discarded by Classify's verdict; deleted by River's cleaner, or by
//     DeleteFinishedBefore for retention.
package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"

	"inbox/db/jobdb"
	"inbox/store"
)

// Default is River's default queue: the forwards'.
const Default = river.QueueDefault

// Defaults of Config. The store inserts jobs in SQL, which sends River no
// notice of them, so workers look for due jobs every 100 ms, and a fetch
// may follow another after 20 ms: with 100 workers that runs up to 5 000
// jobs a second (River's own 1 s poll and 100 ms cooldown allowed 100 a
// second with 10 workers; the processing lag grew past a minute).
const (
	DefaultFetchPollInterval = 100 * time.Millisecond
	DefaultFetchCooldown     = 20 * time.Millisecond
	// DefaultStopTimeout is how long running jobs may finish when the
	// queue stops, before they are cancelled (and retried later).
	DefaultStopTimeout = 20 * time.Second
)

// Config is what New needs.
type Config struct {
	Logger *slog.Logger
	// Store is the store Transact's units of work write through.
	Store *store.Store
	// Register, when set, registers the jobs this process runs with ws
	// and returns the periodic ones (run on River's elected leader). It is
	// given the queue being built, for the workers that insert jobs or
	// commit with it once they run. Nil makes a queue that runs nothing:
	// it inserts, pauses queues and serves River UI.
	Register func(q *Queue, ws *Workers) []Periodic
	// Queues are the queues this process fetches from, each with the most
	// jobs it runs at once; only with Register.
	Queues map[string]int
	// Backoff is the wait before a failed job's next attempt, by attempt
	// (from 1); nil: River's (about attempt⁴ seconds). Tests set it short.
	Backoff func(attempt int) time.Duration
	// FetchPollInterval and FetchCooldown: see the Defaults.
	FetchPollInterval time.Duration
	FetchCooldown     time.Duration
	// JobTimeout bounds one run of a job (River's default: 1 min). A job
	// still marked running twice that long after it started is taken to
	// belong to a process that died, and is retried: River's rescuer looks
	// every 30 s.
	JobTimeout time.Duration
	// NoReindex turns off River's nightly REINDEX CONCURRENTLY of the job
	// table's indexes, which only the table's owner may run (OwnsJobTable).
	NoReindex bool
	// StopTimeout: see DefaultStopTimeout.
	StopTimeout time.Duration
	// Prepare, when set, runs before the workers start (each time Run
	// tries to start them): what must hold in the database first, such
	// as a pause recorded while no worker had its queue.
	Prepare func(ctx context.Context) error
	// RetryStart is the first wait before Run tries again to start the
	// workers when the database was not ready; it doubles up to 30 s.
	// Zero: 1 s.
	RetryStart time.Duration
}

// Periodic is a job River's leader inserts every Every (and when the
// client starts), into Queue.
type Periodic struct {
	ID    string
	Every time.Duration
	Args  func() Args
	Queue string
}

// Queue is a process's River client and the job table's statements.
type Queue struct {
	client  *river.Client[pgx.Tx]
	pool    *pgxpool.Pool
	q       *jobdb.Queries
	store   *store.Store
	logger  *slog.Logger
	works   bool
	stopFor time.Duration
	prepare func(ctx context.Context) error
	retry   time.Duration
}

// New returns the process's queue over pool. It runs nothing until Run.
func New(pool *pgxpool.Pool, cfg Config) (*Queue, error) {
	q := &Queue{pool: pool, q: jobdb.New(pool), store: cfg.Store, logger: cfg.Logger,
		works: cfg.Register != nil, stopFor: cmp.Or(cfg.StopTimeout, DefaultStopTimeout),
		prepare: cfg.Prepare, retry: cmp.Or(cfg.RetryStart, time.Second)}
	p := &policy{backoff: cfg.Backoff}
	rc := &river.Config{
		Logger: cfg.Logger, RetryPolicy: p,
		FetchPollInterval: cmp.Or(cfg.FetchPollInterval, DefaultFetchPollInterval),
		FetchCooldown:     cmp.Or(cfg.FetchCooldown, DefaultFetchCooldown),
		JobTimeout:        cfg.JobTimeout, RescueStuckJobsAfter: 2 * cfg.JobTimeout,
	}
	if cfg.NoReindex {
		rc.ReindexerIndexNames = []string{} // River's exact list: none
	}
	if cfg.Register != nil {
		ws := newWorkers()
		ws.policy = p
		periodic := cfg.Register(q, ws)
		if ws.err != nil {
			return nil, ws.err
		}
		rc.Workers = ws.w
		rc.Queues = make(map[string]river.QueueConfig, len(cfg.Queues))
		for name, n := range cfg.Queues {
			rc.Queues[name] = river.QueueConfig{MaxWorkers: n}
		}
		for _, pj := range periodic {
			rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(pj.Every),
				func() (river.JobArgs, *river.InsertOpts) {
					return pj.Args(), &river.InsertOpts{Queue: pj.Queue, MaxAttempts: 1}
				},
				&river.PeriodicJobOpts{ID: pj.ID, RunOnStart: true}))
		}
	}
	c, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	q.client = c
	return q, nil
}

// Run runs the workers, if any (Prepare all the same), until ctx ends, then stops fetching jobs
// and lets running ones finish for the StopTimeout, then cancels those
// still running; River retries them later, here or in another process.
//
// A database that is down or not yet migrated does not stop the process:
// Run is ready at once and starts the workers once the database lets it
// (Prepare, then River's start), trying again with a growing wait and
// saying so each time, so a server started before its database serves
// webhooks (its /readyz says why not yet) and delivers once it can.
func (q *Queue) Run(ctx context.Context, ready func()) error {
	if !q.startWhenReady(ctx, ready) {
		return nil // stopped before the workers started
	}
	<-ctx.Done()
	if !q.works {
		return nil
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.stopFor)
	defer cancel()
	err := q.client.Stop(stopCtx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = q.client.StopAndCancel(cancelCtx)
	}
	if err != nil {
		return fmt.Errorf("stop workers: %w", err)
	}
	return nil
}

// startWhenReady starts the workers, trying until it can or ctx ends
// (false). It calls ready once they started, as the parts after the queue
// expect (a queue River knows of, to pause), or after the first attempt
// failed, so that the process serves meanwhile.
func (q *Queue) startWhenReady(ctx context.Context, ready func()) bool {
	wait := q.retry
	for failures := 0; ; failures++ {
		err := q.start(ctx)
		if err == nil {
			if failures > 0 {
				q.logger.Info("workers started", "after_failures", failures)
			}
			ready()
			return true
		}
		ready()
		q.logger.Error("workers not started: the database is not ready; trying again", "in", wait.String(), "err", err,
			"hint", "/readyz says what the database lacks (down, or not migrated: run inbox migrate up)")
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// start runs Prepare, then starts River's client if this process works.
func (q *Queue) start(ctx context.Context) error {
	if q.prepare != nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := q.prepare(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
	if !q.works {
		return nil
	}
	// Not ctx: River takes the end of Start's context for a hard stop that
	// cancels running jobs; the soft stop in Run comes first.
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	return nil
}

// UI returns River's web UI over this queue's job table, to be served
// under prefix, and what runs it (its Run, a lifecycle part, must be
// running while it serves).
func (q *Queue) UI(prefix string) (http.Handler, func(ctx context.Context, ready func()) error, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(q.client, nil),
		Logger:    q.logger,
		Prefix:    prefix,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("river ui: %w", err)
	}
	run := func(ctx context.Context, ready func()) error {
		uiCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		if err := h.Start(uiCtx); err != nil {
			return fmt.Errorf("start river ui: %w", err)
		}
		ready()
		<-ctx.Done()
		return nil
	}
	return h, run, nil
}

// On returns a queue over the same job table that runs nothing and whose
// statements, units of work (Transact) and River UI use pool: the admin
// edge's, so that what an operator reads or does waits on its own bounded
// connections, under their statement timeout, never on the workers'.
func (q *Queue) On(pool *pgxpool.Pool) (*Queue, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: q.logger})
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	return &Queue{client: c, pool: pool, q: jobdb.New(pool), store: q.store, logger: q.logger, stopFor: q.stopFor}, nil
}

// AddQueue has this process fetch from the queue name too, running at
// most workers of its jobs at once: a destination added while it runs.
// Before Run, the queue is fetched from once Run starts.
func (q *Queue) AddQueue(name string, workers int) error {
	if err := q.client.Queues().Add(name, river.QueueConfig{MaxWorkers: max(1, workers)}); err != nil {
		return fmt.Errorf("add queue %s: %w", name, err)
	}
	return nil
}
