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

	"inbox/api"
	"inbox/control"
	"inbox/destination/httpdest"
	"inbox/dispatch"
	"inbox/internal/lifecycle"
	"inbox/keyring"
	"inbox/media"
	"inbox/metrics"
	"inbox/reconcile"
	"inbox/store"
	"inbox/tally"
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
	// routing: destinations were defined at start: this process runs the workers that deliver to them. Set by
	// jobSettings.open, not a setting.
	routing bool
	// mediaMaxBytes bounds a medium kept (MEDIA_MAX_BYTES).
	mediaMaxBytes       int
	mediaDeleteAtTwilio bool
	// mediaFetchTimeout bounds one run of a message's media job
	// (MEDIA_FETCH_TIMEOUT): a run cut off by a crash is taken up again
	// only after it.
	mediaFetchTimeout time.Duration
	// twilioAPI and fallbackToken are where media are fetched from and
	// the token of accounts not in the table (TWILIO_API_URL,
	// TWILIO_AUTH_TOKEN); mediaBase is where media are served
	// (PUBLIC_BASE_URL; "": forwards carry no download links). Set by
	// the command's validate, not settings here.
	twilioAPI, fallbackToken, mediaBase string
}

// defaultWorkers: a worker is a goroutine that mostly waits on the network,
// so even two cores keep a hundred forwards in flight; fewer could not keep
// up with ingest at a few thousand messages a second (scripts/bench).
const defaultWorkers = 100

func (c *processingConfig) bind(b *binder) {
	c.bindJobs(b)
	b.Secret(&c.forwardSecret, "FORWARD_SECRET", "whsec_ and the base64 of the key forwards are signed with (Standard Webhooks)")
	b.Duration(&c.forwardTimeout, "forward-timeout", "FORWARD_TIMEOUT", httpdest.DefaultForwardTimeout, "bound on one forward attempt")
	b.Int(&c.workers, "workers", "WORKERS", defaultWorkers, "jobs run at once in this process (0: none here; inbox work runs them)")
	b.String(&c.rate, "forward-rate", "FORWARD_RATE", "",
		"forwards a second across every worker of every process, or unlimited; set at start (the console changes it at run time); unset: as last set, unlimited at first")
	b.Int(&c.breakAfter, "forward-break-after", "FORWARD_BREAK_AFTER", dispatch.DefaultBreakAfter,
		"consecutive failed forward attempts in a process that pause forwarding until an operator resumes it (0: never)")
	b.Bool(&c.mediaDeleteAtTwilio, "media-delete-at-twilio", "MEDIA_DELETE_AT_TWILIO", false,
		"once a medium is kept here (its bytes read back and checked), delete it at Twilio")
	b.Int(&c.mediaMaxBytes, "media-max-bytes", "MEDIA_MAX_BYTES", media.DefaultMaxBytes,
		"the largest medium kept, in bytes (WhatsApp's documents reach 16 MB); a larger one is given up")
	b.Duration(&c.mediaFetchTimeout, "media-fetch-timeout", "MEDIA_FETCH_TIMEOUT", media.DefaultFetchTimeout,
		"bound on fetching one message's media; the fetch of a process that died is taken up again after it")
	b.Retention(&c.retention, "retention", "RETENTION",
		"delete messages, status events and finished jobs older than this, e.g. 90d (at least 1d; unset: keep everything)")
}

// bindJobs binds what decides the jobs a stored message gets: whether it
// is forwarded (FORWARD_URL) and how often a job is tried.
func (c *processingConfig) bindJobs(b *binder) {
	b.String(&c.forwardURL, "forward-url", "FORWARD_URL", "",
		"POST each new message and status change here, signed as Standard Webhooks; unset: store only")
	b.Int(&c.maxAttempts, "forward-max-attempts", "FORWARD_MAX_ATTEMPTS", 25, "attempts before a job is discarded")
}

// validateAttempts checks FORWARD_MAX_ATTEMPTS.
func (c *processingConfig) validateAttempts() error {
	if c.maxAttempts < 1 || c.maxAttempts > math.MaxInt16 {
		return fmt.Errorf("invalid FORWARD_MAX_ATTEMPTS %d: want 1 to %d", c.maxAttempts, math.MaxInt16)
	}
	return nil
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
	// The destinations' deliveries take as many attempts as FORWARD_URL's.
	if err := c.validateAttempts(); err != nil {
		return err
	}
	if c.mediaMaxBytes < 1<<10 || c.mediaMaxBytes > 1<<30 {
		return fmt.Errorf("invalid MEDIA_MAX_BYTES %d: want 1024 to %d", c.mediaMaxBytes, 1<<30)
	}
	if c.mediaFetchTimeout < time.Second || c.mediaFetchTimeout > time.Hour {
		return fmt.Errorf("invalid MEDIA_FETCH_TIMEOUT %s: want 1s to 1h", c.mediaFetchTimeout)
	}
	if c.forwardURL == "" {
		return nil
	}
	if c.forwardSecret == "" {
		return errors.New("FORWARD_URL is set but FORWARD_SECRET is not: forwarded messages must be signed; make a secret with: echo whsec_$(head -c 32 /dev/urandom | base64), and give your app the same")
	}
	if _, _, err := c.parseRate(); err != nil {
		return err
	}
	_, err := httpdest.NewForwarder(c.forwardURL, c.forwardSecret, c.forwardTimeout)
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
	if err == nil {
		err = store.CheckRate(r)
	}
	if err != nil {
		return nil, false, fmt.Errorf("invalid FORWARD_RATE %q: want forwards a second, %g to %d, or unlimited", c.rate, store.MinRate, store.MaxRate)
	}
	return &r, true, nil
}

// applyRate writes FORWARD_RATE, when set, where every worker reads it.
func (c *processingConfig) applyRate(ctx context.Context, controls *control.Service) error {
	rate, set, _ := c.parseRate() // validated
	if !set {
		return nil
	}
	if err := controls.SetRate(ctx, rate); err != nil {
		return fmt.Errorf("apply FORWARD_RATE: %w", err)
	}
	return nil
}

// workConfig is the configuration of `inbox work`.
type workConfig struct {
	commonConfig
	processing      processingConfig
	reconcile       reconcileConfig
	admin           adminConfig
	encryptionKey   string
	shutdownTimeout time.Duration
	publicBaseURL   string
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
	b.String(&c.publicBaseURL, "public-base-url", "PUBLIC_BASE_URL", "",
		"serve's PUBLIC_BASE_URL: where the forwards' media download links point; unset: forwards from here carry none")
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
	if c.publicBaseURL != "" {
		if c.publicBaseURL, err = api.ParsePublicBaseURL(c.publicBaseURL); err != nil {
			return err
		}
	}
	c.processing.twilioAPI, c.processing.fallbackToken, c.processing.mediaBase = c.reconcile.apiURL, c.reconcile.authToken, c.publicBaseURL
	return c.admin.validate()
}

// runWork runs workers only, and the admin listener for their metrics, so
// a team can scale processing apart from the webhook: `serve` with
// WORKERS=0 enqueues, `work` processes.
func runWork(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg workConfig
	if err := parseCommand("work", &cfg, args, getenv, stdout, stderr); err != nil {
		return err
	}
	logger, pool, err := cfg.open(ctx, stderr, 0)
	if err != nil {
		return err
	}
	defer pool.Close() // after every part has stopped
	counts := tally.New(logger)
	m := metrics.New(metrics.WithTally(counts))
	logBuild(logger, m, "work")
	// Only found messages are written here, with their jobs.
	st := store.NewWith(pool, store.Options{JobAttempts: cfg.processing.attempts(), RouteAttempts: int16(cfg.processing.maxAttempts)})
	defer st.Close() // on a failed start; once started, its part closes it in order
	_, j, err := jobSettings{cfg.processing, cfg.reconcile, cfg.shutdownTimeout, cfg.keys}.open(ctx, pool, st, cfg.databaseURL.s, logger, m)
	if err != nil {
		return err
	}
	var g lifecycle.Group
	g.Add("overview counts", counts.Run(st)) // first, so stopped last
	j.addParts(&g, st)
	if err := cfg.admin.add(&g, adminParts{db: &cfg.commonConfig, store: st, jobs: j, keys: cfg.keys, metrics: m, logger: logger,
		attempts: int16(cfg.processing.maxAttempts)}); err != nil {
		return err
	}
	return runParts(ctx, &g, logger, "no new jobs, finishing running ones", cfg.shutdownTimeout)
}

// runParts runs a process's parts until ctx ends, then stops them in
// reverse order, saying so.
func runParts(ctx context.Context, g *lifecycle.Group, logger *slog.Logger, stopping string, timeout time.Duration) error {
	// Last, so stopped first: the line comes before any part stops.
	g.Add("signal", func(ctx context.Context, ready func()) error {
		ready()
		<-ctx.Done()
		logger.Info("shutting down: "+stopping, "timeout", timeout.String())
		return nil
	})
	if err := g.Run(ctx); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// periodicSweeper returns the sweeper the workers run periodically, or
// nil when RECONCILE_INTERVAL is off.
func (c reconcileConfig) periodicSweeper(st *store.Store, keys *keyring.Keyring, logger *slog.Logger, m *metrics.Metrics) (*reconcile.Sweeper, error) {
	if c.interval == 0 {
		logger.Info("reconciliation off: RECONCILE_INTERVAL is off; messages whose webhooks all failed are not found")
		return nil, nil
	}
	return c.sweeper(st, keys, logger, m)
}
