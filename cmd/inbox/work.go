package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/keyring"
	"inbox/metrics"
	"inbox/process"
	"inbox/store"
)

// processingConfig is what `serve` and `work` need to process messages.
type processingConfig struct {
	forwardURL     string
	forwardSecret  string
	forwardTimeout time.Duration
	maxAttempts    int
	workers        int
	retention      time.Duration
	// rate is FORWARD_RATE as given: "" leaves the stored rate alone.
	rate       string
	breakAfter int
}

// defaultWorkers: a worker is a goroutine that mostly waits on the network,
// so even two cores keep a hundred forwards in flight; fewer could not keep
// up with ingest at a few thousand messages a second (scripts/bench).
const defaultWorkers = 100

func (c *processingConfig) bind(b *binder) {
	b.String(&c.forwardURL, "forward-url", "FORWARD_URL", "",
		"POST each new message and status change here, signed as Standard Webhooks; unset: store only")
	b.Secret(&c.forwardSecret, "FORWARD_SECRET", "whsec_ and the base64 of the key forwards are signed with (Standard Webhooks)")
	b.Duration(&c.forwardTimeout, "forward-timeout", "FORWARD_TIMEOUT", process.DefaultForwardTimeout, "bound on one forward attempt")
	b.Int(&c.maxAttempts, "forward-max-attempts", "FORWARD_MAX_ATTEMPTS", 25, "attempts before a job is discarded")
	b.Int(&c.workers, "workers", "WORKERS", defaultWorkers, "jobs run at once in this process (0: none here; inbox work runs them)")
	b.String(&c.rate, "forward-rate", "FORWARD_RATE", "",
		"forwards a second across every worker of every process, or unlimited; set at start (the console changes it at run time); unset: as last set, unlimited at first")
	b.Int(&c.breakAfter, "forward-break-after", "FORWARD_BREAK_AFTER", process.DefaultBreakAfter,
		"consecutive failed forward attempts in a process that pause forwarding until an operator resumes it (0: never)")
	b.Retention(&c.retention, "retention", "RETENTION",
		"delete messages, status events and finished jobs older than this, e.g. 90d (at least 1d; unset: keep everything)")
}

// attempts is the attempts of a processing job, 0 when processing is off.
func (c *processingConfig) attempts() int16 {
	if c.forwardURL == "" {
		return 0
	}
	return int16(c.maxAttempts)
}

// validate refuses to start a forwarder that cannot sign.
func (c *processingConfig) validate() error {
	if c.forwardURL == "" {
		return nil
	}
	if c.forwardSecret == "" {
		return errors.New("FORWARD_URL is set but FORWARD_SECRET is not: forwarded messages must be signed")
	}
	if c.maxAttempts < 1 || c.maxAttempts > math.MaxInt16 {
		return fmt.Errorf("invalid FORWARD_MAX_ATTEMPTS %d: want 1 to %d", c.maxAttempts, math.MaxInt16)
	}
	if _, _, err := c.parseRate(); err != nil {
		return err
	}
	_, err := process.NewForwarder(c.forwardURL, c.forwardSecret, c.forwardTimeout)
	return err
}

// parseRate reads FORWARD_RATE: set is false when it is unset, and rate
// nil for unlimited.
func (c *processingConfig) parseRate() (rate *float64, set bool, err error) {
	switch c.rate {
	case "":
		return nil, false, nil
	case "unlimited":
		return nil, true, nil
	}
	r, err := strconv.ParseFloat(c.rate, 64)
	if err != nil || math.IsNaN(r) || r <= 0 || r > process.MaxRate {
		return nil, false, fmt.Errorf("invalid FORWARD_RATE %q: want forwards a second, above 0 and at most %d, or unlimited", c.rate, process.MaxRate)
	}
	return &r, true, nil
}

// applyRate writes FORWARD_RATE, when set, where every worker reads it.
func (c *processingConfig) applyRate(ctx context.Context, st *store.Store, logger *slog.Logger) error {
	rate, set, _ := c.parseRate() // validated
	if !set {
		return nil
	}
	if err := st.SetForwardRate(ctx, rate); err != nil {
		return fmt.Errorf("apply FORWARD_RATE: %w", err)
	}
	if rate == nil {
		logger.Info("delivery rate lifted (FORWARD_RATE=unlimited)")
	} else {
		logger.Info("delivery rate set (FORWARD_RATE): forwards are held to it across every worker", "per_second", *rate)
	}
	return nil
}

// start starts River's workers when this process runs jobs: the forwards
// (FORWARD_URL set and WORKERS not 0), retention (RETENTION set),
// reconciliation (rec set, every every), or any of them. It returns nil
// when it runs none; stopWorkers takes either.
func (c *processingConfig) start(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger, m *metrics.Metrics,
	rec process.Reconciler, every time.Duration) (*process.Client, error) {
	forwarding := c.forwardURL != "" && c.workers > 0
	switch {
	case c.forwardURL == "":
		logger.Info("processing off: FORWARD_URL is not set, messages are stored only")
	case c.workers == 0:
		logger.Info("processing on, workers elsewhere: each new message and status change is enqueued; inbox work forwards them",
			"max_attempts", c.maxAttempts)
	}
	if c.forwardURL != "" {
		if err := c.applyRate(ctx, store.New(pool), logger); err != nil {
			return nil, err
		}
	}
	if !forwarding && c.retention == 0 && rec == nil {
		return nil, nil
	}
	pcfg := process.Config{
		Store: store.New(pool), Logger: logger, Metrics: m, Retention: c.retention, Reconciler: rec, ReconcileInterval: every,
		// A forward takes at most FORWARD_TIMEOUT after waiting at most
		// MaxRateWait for its slot; the rest is two reads. So a job running
		// for twice that belongs to a process that died.
		JobTimeout: c.forwardTimeout + process.MaxRateWait + 5*time.Second,
		BreakAfter: c.breakAfter,
	}
	noReindex, err := notJobTableOwner(ctx, pcfg.Store, logger)
	if err != nil {
		return nil, err
	}
	pcfg.NoReindex = noReindex
	if forwarding {
		fwd, err := process.NewForwarder(c.forwardURL, c.forwardSecret, c.forwardTimeout)
		if err != nil {
			return nil, err
		}
		pcfg.Processor, pcfg.Workers = fwd, c.workers
	}
	client, err := process.NewClient(pool, pcfg)
	if err != nil {
		return nil, err
	}
	// Not ctx itself: River takes the end of Start's context for a hard
	// stop that cancels running jobs. SIGTERM ends ctx; stopWorkers is the
	// soft stop, called once the HTTP server has drained.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	if forwarding {
		logger.Info("processing on: each new message and status change is forwarded", "forward_url", redactURL(c.forwardURL),
			"workers", c.workers, "max_attempts", c.maxAttempts)
	}
	if c.retention > 0 {
		logger.Info("retention on: older messages, status events and finished jobs are deleted hourly", "retention", c.retention.String())
	}
	if rec != nil {
		logger.Info("reconciliation on: each account's messages on Twilio's API are swept for what no webhook delivered", "every", every.String())
	}
	return client, nil
}

// notJobTableOwner reports whether this process's role does not own
// River's job table (a least-privileged role, docs/deploy.md): then River's
// nightly reindex, which it may not run, is off, and the log says so.
func notJobTableOwner(ctx context.Context, st *store.Store, logger *slog.Logger) (bool, error) {
	owns, err := st.OwnsJobTable(ctx)
	if err != nil {
		return false, err
	}
	if !owns {
		logger.Info("River's nightly reindex of the job table is off: this role does not own it; the owner can run REINDEX INDEX CONCURRENTLY (docs/deploy.md)")
	}
	return !owns, nil
}

// stopWorkers stops fetching jobs and lets running ones finish within
// timeout; client may be nil.
func stopWorkers(ctx context.Context, client *process.Client, timeout time.Duration, logger *slog.Logger) {
	if client == nil {
		return
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		logger.Error("stopping workers", "err", err)
	}
}

// workConfig is the configuration of `inbox work`.
type workConfig struct {
	commonConfig
	processing      processingConfig
	reconcile       reconcileConfig
	admin           adminConfig
	encryptionKey   string
	shutdownTimeout time.Duration
	keys            *keyring.Keyring // set by validate
}

func (c *workConfig) bind(b *binder) {
	c.commonConfig.bind(b)
	c.processing.bind(b)
	c.reconcile.bind(b, true)
	c.admin.bind(b, defaultWorkAdminAddr)
	b.Secret(&c.reconcile.authToken, "TWILIO_AUTH_TOKEN", "the auth token of TWILIO_ACCOUNT_SID's account, for reconciliation")
	b.Secret(&c.encryptionKey, "ENCRYPTION_KEY", "keys that open twilio_accounts' tokens, for reconciliation")
	b.Duration(&c.shutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 20*time.Second, "how long running jobs may take to finish on SIGTERM")
}

func (c *workConfig) validate() (err error) {
	if c.processing.forwardURL == "" && c.processing.retention == 0 && c.reconcile.interval == 0 {
		return errors.New("work: neither FORWARD_URL, RETENTION nor RECONCILE_INTERVAL is set: there is nothing to do")
	}
	if c.processing.workers == 0 {
		return errors.New("work: WORKERS is 0")
	}
	if err := c.processing.validate(); err != nil {
		return err
	}
	if err := c.reconcile.validate(c.processing.retention); err != nil {
		return err
	}
	if c.keys, err = keyring.Parse(c.encryptionKey); err != nil {
		return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	return c.admin.validate()
}

// runWork runs workers only, and the admin listener for their metrics, so
// a team can scale processing apart from the webhook: `serve` with
// WORKERS=0 enqueues, `work` processes.
func runWork(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	b := newBinder("work", getenv, stdout, stderr)
	var cfg workConfig
	cfg.bind(b)
	if err := b.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	logger, pool, err := cfg.open(ctx, stderr, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	m := metrics.New()
	logBuild(logger, m, "work")
	// Only found messages are written here, with their jobs.
	st := store.NewWith(pool, store.Options{JobAttempts: cfg.processing.attempts()})
	if _, err := checkDatabase(ctx, st, cfg.databaseURL.s, logger); err != nil {
		return err
	}
	rec, err := startReconcile(cfg.reconcile, st, cfg.keys, logger, m)
	if err != nil {
		return err
	}
	workers, err := cfg.processing.start(ctx, pool, logger, m, rec, cfg.reconcile.interval)
	if err != nil {
		return err
	}
	stopAdmin, err := cfg.admin.serve(ctx, pool, st, m, cfg.processing.attempts(), cfg.keys, logger)
	if err != nil {
		stopWorkers(ctx, workers, cfg.shutdownTimeout, logger)
		return err
	}
	defer stopAdmin()
	<-ctx.Done()
	logger.Info("shutting down: no new jobs, finishing running ones", "timeout", cfg.shutdownTimeout.String())
	stopWorkers(ctx, workers, cfg.shutdownTimeout, logger)
	logger.Info("stopped")
	return nil
}

// startReconcile returns the sweeper the workers run periodically, or nil
// when RECONCILE_INTERVAL is off.
func startReconcile(c reconcileConfig, st *store.Store, keys *keyring.Keyring, logger *slog.Logger, m *metrics.Metrics) (process.Reconciler, error) {
	if c.interval == 0 {
		logger.Info("reconciliation off: RECONCILE_INTERVAL is off; messages whose webhooks all failed are not found")
		return nil, nil
	}
	return c.sweeper(st, keys, logger, m)
}
