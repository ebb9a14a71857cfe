// Package process hands every stored message, and every status change of an
// outbound message, to the team's processing: a River job inserted by the
// statement that stored it (store.Options.JobAttempts; so it exists exactly when the
// row does), run by River's workers, and retried with backoff until it succeeds or is
// given up on visibly. The built-in processing is Forwarder, which POSTs
// each event to the team's app; a team that embeds these packages can give
// its own Processor instead.
//
// Delivery to a Processor is at least once: a worker that dies after the
// processing succeeded and before River recorded it runs the job again.
// Event.ID is the same on every run, so a receiver can drop repeats.
package process

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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

// Event is what a Processor is given.
type Event struct {
	// ID is stable across every run of the job: the message sid for a new
	// message, sid.status for a status change.
	ID string
	// Type is "message.received" or "message.status".
	Type string
	// Payload is the event as JSON, exactly what the Forwarder posts
	// (docs/processing.md, "The forward"); json.Unmarshal it into a
	// message.Payload for typed access. The message in it is as stored when the job runs: for a
	// status change its status may already be a later one.
	Payload []byte
	// Attempt counts the job's runs, from 1.
	Attempt int
}

// Processor does what follows a stored message. An error retries the job
// with backoff; an error wrapped by Permanent ends it for good (cancelled).
type Processor interface {
	Process(ctx context.Context, ev Event) error
}

// Permanent marks a processing error that a retry cannot fix: the job is
// cancelled rather than retried.
func Permanent(err error) error { return river.JobCancel(err) }

// MaxRetryAfter caps the wait a receiver can ask for with RetryAfter.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter marks a processing error after which the receiver asked to
// be left alone for d (a 429 or 503 with Retry-After): the next attempt
// is no earlier than d from now (at most MaxRetryAfter), nor earlier than
// the retry policy's own backoff. It spends an attempt like any error, so
// a receiver that always asks for more time still ends the job after its
// attempts.
func RetryAfter(err error, d time.Duration) error { return &retryAfterError{err: err, d: d} }

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// Config is what NewClient needs.
type Config struct {
	// Store is where workers read the messages their jobs name.
	Store *store.Store
	// Processor, when set, runs each message's and status change's job;
	// nil runs none of them here (retention only).
	Processor Processor
	Logger    *slog.Logger
	// Workers is how many of Processor's jobs run at once in this
	// process, at least 1 when Processor is set.
	Workers int
	// RetryPolicy replaces River's backoff (about attempt⁴ seconds); tests
	// set it short.
	RetryPolicy river.ClientRetryPolicy
	// FetchPollInterval is how often workers look for due jobs (default
	// DefaultFetchPollInterval).
	FetchPollInterval time.Duration
	// JobTimeout bounds one run of a job (River's default: 1 min). A job
	// still marked running twice that long after it started is taken to
	// belong to a process that died, and is retried: River's rescuer looks
	// every 30 s.
	JobTimeout time.Duration
	// FetchCooldown is the least time between two fetches of jobs
	// (default DefaultFetchCooldown). A fetch takes at most as many jobs
	// as there are idle workers, so Workers / FetchCooldown bounds the jobs
	// run per second.
	FetchCooldown time.Duration
	// Metrics, when set, records each run's outcome and the lag of each
	// success.
	Metrics *metrics.Metrics
	// Retention, when not 0, deletes messages, their status events and
	// finished jobs older than this, every RetentionInterval (default: an
	// hour) and when the client starts, at most RetentionBatch rows a
	// statement (default DefaultRetentionBatch). River runs periodic jobs
	// on its elected leader only, so replicas do not repeat the work.
	Retention         time.Duration
	RetentionInterval time.Duration
	RetentionBatch    int32
	// Reconciler, when set, sweeps each account on Twilio's API every
	// ReconcileInterval (and when the client starts), on River's leader,
	// one sweep per account at a time.
	Reconciler        Reconciler
	ReconcileInterval time.Duration
	// BreakAfter consecutive failed attempts of Processor in this process
	// pause forwarding (the circuit breaker; FORWARD_BREAK_AFTER), until an
	// operator resumes it; 0 never does.
	BreakAfter int
	// ControlRefresh is how often the workers reread the operator's
	// controls (default DefaultControlRefresh).
	ControlRefresh time.Duration
	// NoReindex turns off River's nightly REINDEX CONCURRENTLY of the job
	// table's indexes, which only the table's owner may run: for a
	// process that runs as a least-privileged role (docs/deploy.md).
	NoReindex bool
}

// Defaults of Config. The store inserts jobs in SQL, which sends River no
// notice of them, so workers look for due jobs every 100 ms, and a fetch
// may follow another after 20 ms: with 100 workers that runs up to 5 000
// jobs a second (River's own 1 s poll and 100 ms cooldown allowed 100 a
// second with 10 workers; the processing lag grew past a minute).
const (
	DefaultFetchPollInterval = 100 * time.Millisecond
	DefaultFetchCooldown     = 20 * time.Millisecond
)

// Client is the River client that runs the jobs the store inserts
// (store.Options.JobAttempts) with its writes, and retention.
type Client struct {
	river *river.Client[pgx.Tx]
	store *store.Store
	// forwarding is whether this client runs the forwards' queue.
	forwarding bool
	logger     *slog.Logger
}

// maintenanceQueue is retention's own queue, so a client that runs
// retention but no Processor never fetches the default queue's forwards.
const maintenanceQueue = "inbox_maintenance"

// NewClient returns a River client over pool that runs cfg.Processor's jobs
// on cfg.Workers workers when it is set, and retention when
// cfg.Retention is; at least one must be.
func NewClient(pool *pgxpool.Pool, cfg Config) (*Client, error) {
	rc := &river.Config{
		Logger: cfg.Logger, RetryPolicy: cfg.RetryPolicy,
		FetchPollInterval: cmp.Or(cfg.FetchPollInterval, DefaultFetchPollInterval),
		FetchCooldown:     cmp.Or(cfg.FetchCooldown, DefaultFetchCooldown),
		JobTimeout:        cfg.JobTimeout, RescueStuckJobsAfter: 2 * cfg.JobTimeout,
		Queues: map[string]river.QueueConfig{},
	}
	if cfg.NoReindex {
		rc.ReindexerIndexNames = []string{} // River's exact list: none
	}
	if cfg.Processor == nil && cfg.Retention == 0 && cfg.Reconciler == nil {
		return nil, errors.New("process: a client needs a Processor, a Retention or a Reconciler")
	}
	workers := river.NewWorkers()
	client := &Client{store: cfg.Store, forwarding: cfg.Processor != nil, logger: cfg.Logger}
	if cfg.Processor != nil {
		if cfg.Workers < 1 {
			return nil, errors.New("process: a client needs at least one worker")
		}
		g := &gate{store: cfg.Store, logger: cfg.Logger, metrics: cfg.Metrics,
			refresh: cmp.Or(cfg.ControlRefresh, DefaultControlRefresh), breakAfter: int64(cfg.BreakAfter),
			trip: func(ctx context.Context, detail string) (bool, error) {
				return pauseForwarding(ctx, client.river, cfg.Store, store.PausedByBreaker, detail)
			}}
		w := &worker{store: cfg.Store, processor: cfg.Processor, logger: cfg.Logger, metrics: cfg.Metrics, gate: g,
			slots:  make(chan struct{}, cfg.Workers),
			policy: cmp.Or[river.ClientRetryPolicy](cfg.RetryPolicy, &river.DefaultClientRetryPolicy{})}
		if err := river.AddWorkerSafely(workers, &messageWorker{worker: w}); err != nil {
			return nil, fmt.Errorf("add message worker: %w", err)
		}
		if err := river.AddWorkerSafely(workers, &messagesWorker{worker: w}); err != nil {
			return nil, fmt.Errorf("add batch worker: %w", err)
		}
		if err := river.AddWorkerSafely(workers, &statusWorker{worker: w}); err != nil {
			return nil, fmt.Errorf("add status worker: %w", err)
		}
		rc.Queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: cfg.Workers}
		// The console's bulk retries run where forwards do, on a queue of
		// their own, which a pause of forwarding does not stop.
		if err := river.AddWorkerSafely(workers, &retryWorker{store: cfg.Store, logger: cfg.Logger, metrics: cfg.Metrics}); err != nil {
			return nil, fmt.Errorf("add retry worker: %w", err)
		}
		rc.Queues[controlQueue] = river.QueueConfig{MaxWorkers: 1}
	}
	if cfg.Retention > 0 {
		r := &retentionWorker{
			store: cfg.Store, retention: cfg.Retention, batch: cmp.Or(cfg.RetentionBatch, DefaultRetentionBatch),
			logger: cfg.Logger, metrics: cfg.Metrics, now: time.Now,
		}
		if err := river.AddWorkerSafely(workers, r); err != nil {
			return nil, fmt.Errorf("add retention worker: %w", err)
		}
		rc.Queues[maintenanceQueue] = river.QueueConfig{MaxWorkers: 1}
		rc.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(
			river.PeriodicInterval(cmp.Or(cfg.RetentionInterval, DefaultRetentionInterval)),
			func() (river.JobArgs, *river.InsertOpts) {
				return job.Retention{}, &river.InsertOpts{Queue: maintenanceQueue}
			},
			&river.PeriodicJobOpts{ID: "inbox_retention", RunOnStart: true},
		)}
	}
	if cfg.Reconciler != nil {
		if cfg.ReconcileInterval <= 0 {
			return nil, errors.New("process: a Reconciler needs a ReconcileInterval")
		}
		if err := addReconcile(rc, workers, cfg.Reconciler, cfg.ReconcileInterval, cfg.Logger); err != nil {
			return nil, err
		}
	}
	rc.Workers = workers
	c, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	client.river = c
	return client, nil
}

// Start starts the workers. River takes the end of ctx for a hard stop
// that cancels running jobs: give it a context that outlives SIGTERM, and
// call Stop for a soft one.
func (c *Client) Start(ctx context.Context) error {
	if err := c.river.Start(ctx); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	if !c.forwarding {
		return nil
	}
	// River forgets a queue no worker has polled for a day, and its pause
	// with it; the recorded reason is what says forwarding is paused, so
	// the queue is paused again (the gate holds what is taken meanwhile).
	ctl, err := c.store.ForwardingControl(ctx)
	if err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	if ctl.Paused() {
		if err := c.river.QueuePause(ctx, river.QueueDefault, nil); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("start workers: keep forwarding paused: %w", err)
		}
		c.logger.WarnContext(ctx, "forwarding is paused; stored messages wait until it is resumed",
			"reason", ctl.PausedReason, "since", ctl.PausedAt, "detail", ctl.PausedDetail)
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones until ctx ends, then
// cancels those still running; River retries them later, here or in another
// process.
func (c *Client) Stop(ctx context.Context) error {
	err := c.river.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = c.river.StopAndCancel(cancelCtx)
	}
	if err != nil {
		return fmt.Errorf("stop workers: %w", err)
	}
	return nil
}

// worker loads what a job names and hands it to the Processor.
type worker struct {
	store     *store.Store
	processor Processor
	logger    *slog.Logger
	metrics   *metrics.Metrics
	policy    river.ClientRetryPolicy
	gate      *gate
	// slots bounds the forwards batch jobs run at once in this process
	// (Workers), as River bounds the jobs.
	slots chan struct{}
	// notBefore holds, by job id, the earliest next attempt a receiver
	// asked for (RetryAfter), from the failed run until River asks for
	// the job's next retry, which it does right after the run, in this
	// process.
	notBefore sync.Map
}

// nextRetry is River's NextRetry for both job kinds: the retry policy's
// time, or later if the receiver asked for it; zero (the client's policy)
// when it did not.
func (w *worker) nextRetry(row *rivertype.JobRow) time.Time {
	v, ok := w.notBefore.LoadAndDelete(row.ID)
	if !ok {
		return time.Time{}
	}
	t := w.policy.NextRetry(row)
	if nb := v.(time.Time); nb.After(t) {
		return nb
	}
	return t
}

// jobRun is what run needs of the job beyond the event.
type jobRun struct {
	id          int64
	kind        string // metrics.KindMessage or KindStatus
	maxAttempts int
	createdAt   time.Time
}

// load turns a failed read of what a job names into its error: a message
// that is gone (deleted by retention) cannot come back, so the job ends.
func load(what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return Permanent(fmt.Errorf("load %s: %w", what, err))
	}
	return fmt.Errorf("load %s: %w", what, err)
}

func (w *worker) run(ctx context.Context, ev Event, job jobRun, loadErr error) error {
	start := time.Now()
	err := loadErr
	if err == nil {
		if err = w.processor.Process(ctx, ev); err != nil {
			w.gate.failed(ctx, err)
		} else {
			w.gate.succeeded()
		}
	}
	if err == nil {
		w.metrics.Attempt(job.kind, metrics.OutcomeSuccess, time.Since(start), time.Since(job.createdAt))
		return nil
	}
	var cancel *river.JobCancelError
	switch {
	case errors.As(err, &cancel):
		w.metrics.Attempt(job.kind, metrics.OutcomeCancelled, time.Since(start), 0)
		w.logger.ErrorContext(ctx, "processing failed for good; job cancelled", "event", ev.ID, "attempt", ev.Attempt, "err", err)
	case ev.Attempt >= job.maxAttempts:
		w.metrics.Attempt(job.kind, metrics.OutcomeDiscarded, time.Since(start), 0)
		w.logger.ErrorContext(ctx, "processing failed on its last attempt; job discarded", "event", ev.ID, "attempt", ev.Attempt, "err", err)
	default:
		w.metrics.Attempt(job.kind, metrics.OutcomeRetry, time.Since(start), 0)
		w.logger.WarnContext(ctx, "processing failed; will retry", "event", ev.ID, "attempt", ev.Attempt, "max_attempts", job.maxAttempts, "err", err)
		if ra, ok := errors.AsType[*retryAfterError](err); ok {
			w.notBefore.Store(job.id, time.Now().Add(min(ra.d, MaxRetryAfter)))
		}
	}
	return err
}

// messageWorker runs job.Message: the forward of a new inbound message.
type messageWorker struct {
	*worker
	river.WorkerDefaults[job.Message]
}

func (w *messageWorker) Work(ctx context.Context, j *river.Job[job.Message]) error {
	if err := w.gate.admit(ctx); err != nil {
		return err
	}
	id := j.Args.SID
	p, err := w.store.MessageReceivedPayload(ctx, id, j.Args.SID)
	if err != nil {
		err = load("message", err)
	}
	return w.run(ctx, Event{ID: id, Type: message.TypeReceived, Payload: p, Attempt: j.Attempt},
		jobRun{id: j.ID, kind: metrics.KindMessage, maxAttempts: j.MaxAttempts, createdAt: j.CreatedAt}, err)
}

func (w *messageWorker) NextRetry(j *river.Job[job.Message]) time.Time { return w.nextRetry(j.JobRow) }

// statusWorker runs job.Status: the forward of a status change.
type statusWorker struct {
	*worker
	river.WorkerDefaults[job.Status]
}

func (w *statusWorker) Work(ctx context.Context, j *river.Job[job.Status]) error {
	if err := w.gate.admit(ctx); err != nil {
		return err
	}
	id := j.Args.SID + "." + j.Args.Status
	p, err := w.store.StatusChangedPayload(ctx, id, j.Args.SID, j.Args.Status)
	if err != nil {
		err = load("status change", err)
	}
	return w.run(ctx, Event{ID: id, Type: message.TypeStatus, Payload: p, Attempt: j.Attempt},
		jobRun{id: j.ID, kind: metrics.KindStatus, maxAttempts: j.MaxAttempts, createdAt: j.CreatedAt}, err)
}

func (w *statusWorker) NextRetry(j *river.Job[job.Status]) time.Time { return w.nextRetry(j.JobRow) }
