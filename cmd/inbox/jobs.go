package main

import (
	"context"
	"fmt"
	"inbox/keyring"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/control"
	"inbox/destination/httpdest"
	"inbox/dispatch"
	"inbox/metrics"
	"inbox/queue"
	"inbox/reconcile"
	"inbox/retention"
	"inbox/store"
)

// jobs is what a process builds of the job queue: the queue, with the
// workers this process runs, and the operator's controls over it.
type jobs struct {
	queue    *queue.Queue
	controls *control.Service
	// forwarding: this process forwards (FORWARD_URL set, WORKERS not 0).
	forwarding bool
}

// jobSettings are what serve and work share to run jobs.
type jobSettings struct {
	processing      processingConfig
	reconcile       reconcileConfig
	shutdownTimeout time.Duration
	keys            *keyring.Keyring
}

// open checks the database (returning the schema version this binary
// needs) and builds the sweeper and the jobs on st.
func (s jobSettings) open(ctx context.Context, pool *pgxpool.Pool, st *store.Store, databaseURL string, logger *slog.Logger, m *metrics.Metrics) (int64, *jobs, error) {
	need, err := checkDatabase(ctx, st, databaseURL, logger)
	if err != nil {
		return 0, nil, err
	}
	sw, err := s.reconcile.periodicSweeper(st, s.keys, logger, m)
	if err != nil {
		return 0, nil, err
	}
	j, err := newJobs(ctx, pool, st, s.processing, sw, s.reconcile.interval, s.shutdownTimeout, logger, m)
	return need, j, err
}

// newJobs builds the queue of a process that runs the forwards
// (FORWARD_URL set and WORKERS not 0), retention (RETENTION set),
// reconciliation (sw set, every every), any of them, or none: then it only
// inserts, pauses and serves River UI. Nothing runs until the queue's Run.
func newJobs(ctx context.Context, pool *pgxpool.Pool, st *store.Store, c processingConfig, sw *reconcile.Sweeper, every time.Duration,
	stopTimeout time.Duration, logger *slog.Logger, m *metrics.Metrics) (*jobs, error) {
	switch {
	case c.forwardURL == "":
		logger.Info("processing off: FORWARD_URL is not set, messages are stored only")
	case c.workers == 0:
		logger.Info("processing on, workers elsewhere: each new message and status change is enqueued; inbox work forwards them",
			"max_attempts", c.maxAttempts)
	}
	j := &jobs{forwarding: c.forwardURL != "" && c.workers > 0}
	qc := queue.Config{Logger: logger, Store: st, StopTimeout: stopTimeout, Queues: map[string]int{},
		// A forward takes at most FORWARD_TIMEOUT after waiting at most
		// MaxRateWait for its slot; the rest is two reads. So a job running
		// for twice that belongs to a process that died.
		JobTimeout: c.forwardTimeout + dispatch.MaxRateWait + 5*time.Second,
	}
	if err := c.register(&qc, j, sw, every, m); err != nil {
		return nil, err
	}
	if qc.Register != nil {
		noReindex, err := notJobTableOwner(ctx, pool, logger)
		if err != nil {
			return nil, err
		}
		qc.NoReindex = noReindex
	}
	q, err := queue.New(pool, qc)
	if err != nil {
		return nil, err
	}
	j.queue = q
	if j.controls == nil { // not built by a worker's registration
		j.controls = control.New(st, q, c.attempts(), logger, m)
	}
	if c.forwardURL != "" {
		if err := c.applyRate(ctx, j.controls); err != nil {
			return nil, err
		}
	}
	if j.forwarding {
		if err := j.controls.EnsurePaused(ctx, q); err != nil {
			return nil, fmt.Errorf("keep forwarding paused: %w", err)
		}
	}
	c.logStart(logger, sw != nil, every)
	return j, nil
}

// register sets in qc the queues and the workers this process runs; the
// forwards' registration builds j's controls, which their breaker trips.
func (c processingConfig) register(qc *queue.Config, j *jobs, sw *reconcile.Sweeper, every time.Duration, m *metrics.Metrics) error {
	st, logger := qc.Store, qc.Logger
	var parts []func(q *queue.Queue, ws *queue.Workers) []queue.Periodic
	if j.forwarding {
		fwd, err := httpdest.NewForwarder(c.forwardURL, c.forwardSecret, c.forwardTimeout)
		if err != nil {
			return err
		}
		qc.Queues[queue.Default], qc.Queues[control.RetryQueue] = c.workers, 1
		parts = append(parts, func(q *queue.Queue, ws *queue.Workers) []queue.Periodic {
			j.controls = control.New(st, q, c.attempts(), logger, m)
			dispatch.New(dispatch.Config{Store: st, Queue: q, Sender: fwd, Pauser: j.controls, Logger: logger, Metrics: m,
				Workers: c.workers, BreakAfter: c.breakAfter}).Register(ws)
			j.controls.Register(ws)
			return nil
		})
	}
	if c.retention > 0 {
		qc.Queues[retention.Queue] = 1
		parts = append(parts, func(q *queue.Queue, ws *queue.Workers) []queue.Periodic {
			return []queue.Periodic{retention.New(st, q, c.retention, 0, logger, m).Register(ws, 0)}
		})
	}
	if sw != nil {
		qc.Queues[reconcile.Queue] = reconcile.Workers
		parts = append(parts, func(_ *queue.Queue, ws *queue.Workers) []queue.Periodic {
			return []queue.Periodic{sw.Register(ws, every)}
		})
	}
	if len(parts) == 0 {
		return nil
	}
	qc.Register = func(q *queue.Queue, ws *queue.Workers) []queue.Periodic {
		var periodic []queue.Periodic
		for _, part := range parts {
			periodic = append(periodic, part(q, ws)...)
		}
		return periodic
	}
	return nil
}

// logStart says what this process's workers do.
func (c *processingConfig) logStart(logger *slog.Logger, reconciling bool, every time.Duration) {
	if c.forwardURL != "" && c.workers > 0 {
		logger.Info("processing on: each new message and status change is forwarded", "forward_url", redactURL(c.forwardURL),
			"workers", c.workers, "max_attempts", c.maxAttempts)
	}
	if c.retention > 0 {
		logger.Info("retention on: older messages, status events and finished jobs are deleted hourly", "retention", c.retention.String())
	}
	if reconciling {
		logger.Info("reconciliation on: each account's messages on Twilio's API are swept for what no webhook delivered", "every", every.String())
	}
}

// notJobTableOwner reports whether this process's role does not own
// River's job table (a least-privileged role, docs/deploy.md): then River's
// nightly reindex, which it may not run, is off, and the log says so.
func notJobTableOwner(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (bool, error) {
	owns, err := queue.OwnsJobTable(ctx, pool)
	if err != nil {
		return false, err
	}
	if !owns {
		logger.Info("River's nightly reindex of the job table is off: this role does not own it; the owner can run REINDEX INDEX CONCURRENTLY (docs/deploy.md)")
	}
	return !owns, nil
}
