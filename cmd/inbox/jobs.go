package main

import (
	"context"
	"fmt"
	"inbox/internal/lifecycle"
	"inbox/keyring"
	"inbox/media"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/account"
	"inbox/control"
	"inbox/destination/httpdest"
	"inbox/destination/kinds"
	"inbox/dispatch"
	"inbox/metrics"
	"inbox/queue"
	"inbox/reconcile"
	"inbox/retention"
	"inbox/routing"
	"inbox/store"
	"inbox/twilioapi"
)

// jobs is what a process builds of the job queue: the queue, with the
// workers this process runs, and the operator's controls over it.
type jobs struct {
	queue    *queue.Queue
	controls *control.Service
	// router runs the deliveries of every destination (WORKERS not 0);
	// nil otherwise.
	router *dispatch.Router
	// forwarding: this process forwards (FORWARD_URL set, WORKERS not 0).
	forwarding bool
}

// addParts adds to g, in the order they start, the store's writers, the
// workers and, when they deliver to destinations, the router that keeps
// them in step with the table.
func (j *jobs) addParts(g *lifecycle.Group, st *store.Store) {
	g.Add("store", st.Run)
	if j.router != nil {
		g.Add("destination connections", j.router.Hold)
	}
	g.Add("workers", j.queue.Run)
	if j.router != nil {
		g.Add("destinations", j.router.Run)
	}
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
	// Workers poll the job table; a process with nothing to deliver does
	// not start them, and one started before the first destination is
	// restarted to deliver to it (docs/destinations.md).
	switch ds, err := st.Destinations(ctx); {
	case err != nil:
		// Down or not migrated at start: the service still starts and
		// serves (/readyz says why), and its workers deliver to the
		// destinations there may be once the database is ready.
		logger.Warn("destinations not read at start: the workers start once the database is ready", "err", err)
		s.processing.routing = true
	case len(ds) > 0:
		s.processing.routing = true
	}
	j, err := newJobs(ctx, pool, st, s.processing, s.keys, sw, s.reconcile.interval, s.shutdownTimeout, logger, m)
	return need, j, err
}

// newJobs builds the queue of a process that runs the forwards
// (FORWARD_URL set and WORKERS not 0), retention (RETENTION set),
// reconciliation (sw set, every every), any of them, or none: then it only
// inserts, pauses and serves River UI. Nothing runs until the queue's Run.
func newJobs(ctx context.Context, pool *pgxpool.Pool, st *store.Store, c processingConfig, keys *keyring.Keyring, sw *reconcile.Sweeper, every time.Duration,
	stopTimeout time.Duration, logger *slog.Logger, m *metrics.Metrics) (*jobs, error) {
	switch {
	case c.forwardURL == "" && !c.routing:
		logger.Info("processing off: FORWARD_URL is not set and no destination is defined, messages are stored only; " +
			"restart after adding the first destination")
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
	if err := c.register(&qc, j, keys, sw, every, m); err != nil {
		return nil, err
	}
	if qc.Register != nil {
		noReindex, err := notJobTableOwner(ctx, pool, logger)
		if err != nil {
			return nil, err
		}
		qc.NoReindex = noReindex
	}
	// What must hold before workers start, retried with their start while
	// the database is down or not migrated (queue.Run).
	qc.Prepare = func(ctx context.Context) error { return j.prepare(ctx, c) }
	q, err := queue.New(pool, qc)
	if err != nil {
		return nil, err
	}
	j.queue = q
	if j.router != nil {
		// The destinations' queues, before the queue runs; a database
		// down at start is not fatal: the router reads them again.
		if err := j.router.Sync(ctx); err != nil {
			logger.Warn("destinations not read at start; read again shortly", "err", err)
		}
	}
	if j.controls == nil { // not built by a worker's registration
		j.controls = control.New(st, q, c.attempts(), int16(c.maxAttempts), logger, m)
	}
	c.logStart(logger, sw != nil, every)
	return j, nil
}

// prepare writes FORWARD_RATE, when set, and keeps a recorded pause of
// the forwards before the workers start.
func (j *jobs) prepare(ctx context.Context, c processingConfig) error {
	if c.forwardURL != "" {
		if err := c.applyRate(ctx, j.controls); err != nil {
			return err
		}
	}
	if j.forwarding {
		if err := j.controls.EnsurePaused(ctx, j.queue); err != nil {
			return fmt.Errorf("keep forwarding paused: %w", err)
		}
	}
	return nil
}

// register sets in qc the queues and the workers this process runs; the
// forwards' registration builds j's controls, which their breaker trips.
func (c processingConfig) register(qc *queue.Config, j *jobs, keys *keyring.Keyring, sw *reconcile.Sweeper, every time.Duration, m *metrics.Metrics) error {
	st, logger := qc.Store, qc.Logger
	var parts []func(q *queue.Queue, ws *queue.Workers) []queue.Periodic
	if c.workers > 0 && (j.forwarding || c.routing) {
		part, err := c.deliveries(qc, j, keys, m)
		if err != nil {
			return err
		}
		parts = append(parts, part)
	}
	if c.workers > 0 {
		keeper, err := c.mediaKeeper(st, keys, logger, m)
		if err != nil {
			return err
		}
		qc.Queues[media.Queue] = media.Workers
		parts = append(parts, func(_ *queue.Queue, ws *queue.Workers) []queue.Periodic {
			keeper.Register(ws)
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

// deliveries sets in qc the queues of the forwards and the destinations'
// deliveries, and returns their registration, which builds j's controls
// (their breaker trips them) and router.
func (c processingConfig) deliveries(qc *queue.Config, j *jobs, keys *keyring.Keyring, m *metrics.Metrics) (func(q *queue.Queue, ws *queue.Workers) []queue.Periodic, error) {
	st, logger := qc.Store, qc.Logger
	var fwd *httpdest.Forwarder
	if j.forwarding {
		var err error
		if fwd, err = httpdest.NewForwarder(c.forwardURL, c.forwardSecret, c.forwardTimeout); err != nil {
			return nil, err
		}
	}
	// The bulk retries and the backfills of every destination's
	// deliveries.
	qc.Queues[control.RetryQueue] = 1
	qc.Queues[routing.BackfillQueue] = 1
	// The default queue even without FORWARD_URL: River runs workers
	// only with a queue, and the destinations' are added as they come.
	qc.Queues[queue.Default] = c.workers
	return func(q *queue.Queue, ws *queue.Workers) []queue.Periodic {
		j.controls = control.New(st, q, c.attempts(), int16(c.maxAttempts), logger, m)
		j.controls.Register(ws)
		payloads := dispatch.SharePayloads(c.withLinks(st)) // a batch's forwards, built once for every destination
		var def *dispatch.Dispatcher
		if fwd != nil {
			def = dispatch.New(dispatch.Config{Store: payloads, Queue: q, Sender: fwd, Pauser: j.controls, Logger: logger, Metrics: m,
				Workers: c.workers, BreakAfter: c.breakAfter})
		}
		manager := &routing.Manager{Store: st, Deliveries: q, Keys: keys, Attempts: int16(c.maxAttempts)}
		manager.Register(ws)
		j.router = dispatch.NewRouter(dispatch.RouterConfig{Logger: logger, Default: def, List: st.Destinations,
			Build:    c.destinationDispatcher(payloads, st, q, manager, logger, m),
			AddQueue: func(name string) error { return q.AddQueue(name, c.workers) }})
		j.router.Register(ws)
		return nil
	}, nil
}

// withLinks is st, whose payloads of received messages carry their media's
// download links when media are served (mediaBase set).
func (c processingConfig) withLinks(st *store.Store) dispatch.Store {
	if c.mediaBase == "" {
		return st
	}
	api, err := twilioapi.New(c.twilioAPI, twilioapi.Options{})
	if err != nil { // validated: TWILIO_API_URL
		return st
	}
	return linkedPayloads{Store: st, links: media.NewLinks(st, c.mediaBase, 0).Fetchable(api.ParseMedium)}
}

// linkedPayloads adds download links to the payloads of received
// messages.
type linkedPayloads struct {
	dispatch.Store
	links *media.Links
}

func (s linkedPayloads) MessageReceivedPayloads(ctx context.Context, sids []string) (map[string][]byte, error) {
	p, err := s.Store.MessageReceivedPayloads(ctx, sids)
	if err != nil {
		return nil, err
	}
	return p, s.links.Decorate(ctx, p)
}

func (s linkedPayloads) MessageReceivedPayload(ctx context.Context, id, sid string) ([]byte, error) {
	b, err := s.Store.MessageReceivedPayload(ctx, id, sid)
	if err != nil {
		return nil, err
	}
	p := map[string][]byte{sid: b}
	if err := s.links.Decorate(ctx, p); err != nil {
		return nil, err
	}
	return p[sid], nil
}

// mediaServer is what serves media's download links on the public
// listener, reading (and fetching what is not kept yet) through st.
func (c processingConfig) mediaServer(st *store.Store, keys *keyring.Keyring, logger *slog.Logger, m *metrics.Metrics) (*media.Server, error) {
	keeper, err := c.mediaKeeper(st, keys, logger, m)
	if err != nil {
		return nil, err
	}
	return media.NewServer(media.NewLinks(st, c.mediaBase, 0), st, keeper), nil // checks links only: no Fetchable needed
}

// mediaKeeper builds what keeps every medium of the messages stored: every
// process that runs workers runs the media's.
func (c processingConfig) mediaKeeper(st *store.Store, keys *keyring.Keyring, logger *slog.Logger, m *metrics.Metrics) (*media.Keeper, error) {
	api, err := twilioapi.New(c.twilioAPI, twilioapi.Options{Observe: m.TwilioAPI})
	if err != nil {
		return nil, err
	}
	return media.New(media.Config{Store: st, API: api, MaxBytes: int64(c.mediaMaxBytes), FetchTimeout: c.mediaFetchTimeout, DeleteAtTwilio: c.mediaDeleteAtTwilio, Logger: logger, Metrics: m,
		Credentials: func(ctx context.Context, accountSID string) (twilioapi.Credentials, error) {
			return account.CredentialsOf(ctx, st, keys, c.fallbackToken, accountSID)
		}}), nil
}

// destinationDispatcher returns what builds the dispatcher of a destination
// of the table: its URL and secret opened with the keys, its own gate
// over its row's controls, its own breaker.
func (c processingConfig) destinationDispatcher(payloads dispatch.Store, st *store.Store, q *queue.Queue, mgr *routing.Manager, logger *slog.Logger,
	m *metrics.Metrics) func(d store.Destination) (*dispatch.Dispatcher, error) {
	return func(d store.Destination) (*dispatch.Dispatcher, error) {
		t, err := mgr.Open(d)
		if err != nil {
			return nil, err
		}
		fwd, err := kinds.Open(t, c.forwardTimeout)
		if err != nil {
			return nil, err
		}
		return dispatch.New(dispatch.Config{Store: dispatch.ForDestination(payloads, st, d.Name), Queue: q, Sender: fwd,
			Pauser: mgr.Breaker(d.Name), Logger: logger.With("destination", d.Name), Metrics: m, Destination: d.Name,
			Workers: c.workers, BreakAfter: c.breakAfter}), nil
	}
}

// logStart says what this process's workers do.
func (c *processingConfig) logStart(logger *slog.Logger, reconciling bool, every time.Duration) {
	if c.forwardURL != "" && c.workers > 0 {
		logger.Info("processing on: each new message and status change is forwarded", "forward_url", redactURL(c.forwardURL),
			"workers", c.workers, "max_attempts", c.maxAttempts)
	}
	if c.routing && c.workers > 0 {
		logger.Info("routing on: each new message and status change is delivered to every destination whose rules match",
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
		// A database down or not migrated at start must not stop the
		// service (it serves and /readyz says why): without knowing, the
		// reindex stays off, which only the owner may run anyway.
		logger.Warn("cannot tell whether this role owns River's job table; its nightly reindex is off", "err", err)
		return true, nil
	}
	if !owns {
		logger.Info("River's nightly reindex of the job table is off: this role does not own it; the owner can run REINDEX TABLE CONCURRENTLY river_job (docs/deploy.md)")
	}
	return !owns, nil
}
