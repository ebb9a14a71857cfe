package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"inbox/account"
	"inbox/api"
	"inbox/internal/lifecycle"
	"inbox/keyring"
	"inbox/metrics"
	"inbox/sql/schema"
	"inbox/store"
	"inbox/tally"
	"inbox/twilio"
)

// serveConfig is the configuration of `inbox serve`.
type serveConfig struct {
	commonConfig
	listenAddr         string
	publicBaseURL      string
	authToken          string
	authTokenSecondary string
	encryptionKey      string
	eventsBasicAuth    string
	requestTimeout     time.Duration
	shutdownTimeout    time.Duration
	maxConnections     int
	workerConns        int
	writers            int
	maxBatch           int
	admin              adminConfig
	processing         processingConfig
	reconcile          reconcileConfig

	// Set by validate.
	fallback *twilio.Validator // TWILIO_AUTH_TOKEN's; nil: none
	keys     *keyring.Keyring
}

// defaultMaxConnections caps open client connections. Twilio needs a few
// dozen at most; each idle one costs about 16 KiB, so the cap bounds what
// a flood of idle connections can take to about 16 MiB.
const defaultMaxConnections = 1024

// defaultPoolMaxConns replaces pgx's default of max(4, cores) unless the
// URL sets pool_max_conns. Each webhook is one short insert whose commit
// waits on the WAL flush; with more connections more commits share one flush.
// On two cores, at 32 concurrent webhooks, 4 connections gave 0.33 of
// pgbench's rate, 8 gave 0.42, 16 gave 0.53 and 32 gave 0.50 with worse
// tail latency (scripts/bench -db-params pool_max_conns=N).
const defaultPoolMaxConns = 16

// defaultWorkerConns is the workers' own pool in serve: job fetches and
// completions, payload reads and sweeps wait for these, never for the
// webhook's connections.
const defaultWorkerConns = 8

// Group commit: see store.Options. Measured with scripts/bench, see
// docs/benchmarks.md.
const (
	defaultWriters  = 2
	defaultMaxBatch = 64
)

func (c *serveConfig) bind(b *binder) {
	c.commonConfig.bind(b)
	b.String(&c.listenAddr, "listen-addr", "LISTEN_ADDR", ":8080", "address to listen on")
	b.String(&c.publicBaseURL, "public-base-url", "PUBLIC_BASE_URL", "",
		"scheme, host, port and optional path prefix Twilio calls, e.g. https://hooks.example.com; the request path is appended to it (required)")
	b.Secret(&c.authToken, "TWILIO_AUTH_TOKEN", "the auth token of deliveries whose AccountSid is not in twilio_accounts")
	b.Secret(&c.authTokenSecondary, "TWILIO_AUTH_TOKEN_SECONDARY", "a second accepted token, while rotating")
	b.Secret(&c.encryptionKey, "ENCRYPTION_KEY", "keys that open twilio_accounts' tokens: 32 bytes as base64 or hex, comma-separated")
	b.Secret(&c.eventsBasicAuth, "EVENTS_BASIC_AUTH", "user:password the Event Streams sink's requests must carry as HTTP Basic credentials, beside Twilio's signature (optional)")
	b.Duration(&c.requestTimeout, "request-timeout", "REQUEST_TIMEOUT", api.DefaultRequestTimeout,
		"bound on one webhook's database work; past it, 503")
	b.Duration(&c.shutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 20*time.Second,
		"how long in-flight requests may take to finish on SIGTERM")
	b.Int(&c.maxConnections, "max-connections", "MAX_CONNECTIONS", defaultMaxConnections,
		"most client connections open at once; more wait in the kernel's queue (0: no cap)")
	b.Int(&c.workerConns, "worker-db-conns", "WORKER_DB_CONNS", defaultWorkerConns,
		"database connections of the workers' own pool (jobs, reconciliation, retention), apart from the webhook's (DATABASE_URL's pool_max_conns, default 16)")
	b.Int(&c.writers, "writers", "WRITERS", defaultWriters,
		"connections that write messages, each committing the deliveries waiting for it together (0: one statement per delivery)")
	b.Int(&c.maxBatch, "write-batch-max", "WRITE_BATCH_MAX", defaultMaxBatch, "most deliveries committed together")
	c.admin.bind(b, defaultServeAdminAddr)
	c.processing.bind(b)
	c.reconcile.bind(b, true)
}

// validate checks what the flags cannot: the service refuses to start
// rather than accept unsigned webhooks or check signatures against the
// wrong URL.
func (c *serveConfig) validate() error {
	if c.authToken == "" && c.authTokenSecondary != "" {
		return errors.New("TWILIO_AUTH_TOKEN_SECONDARY is set but TWILIO_AUTH_TOKEN is not")
	}
	base, err := api.ParsePublicBaseURL(c.publicBaseURL)
	if err != nil {
		return err
	}
	c.publicBaseURL = base
	if user, _, ok := strings.Cut(c.eventsBasicAuth, ":"); c.eventsBasicAuth != "" && (!ok || user == "") {
		return errors.New("EVENTS_BASIC_AUTH: want user:password, as the sink's URL carries them (https://user:password@host/twilio/events)")
	}
	if c.workerConns < 1 || c.workerConns > 1000 {
		return fmt.Errorf("invalid WORKER_DB_CONNS %d: want 1 to 1000", c.workerConns)
	}
	if c.requestTimeout >= 15*time.Second {
		return fmt.Errorf("REQUEST_TIMEOUT %s: must be under Twilio's 15 s, or Twilio gives up first", c.requestTimeout)
	}
	if err := c.admin.validate(); err != nil {
		return err
	}
	if err := c.processing.validate(); err != nil {
		return err
	}
	c.reconcile.authToken = c.authToken
	c.processing.twilioAPI, c.processing.fallbackToken, c.processing.mediaBase = c.reconcile.apiURL, c.authToken, c.publicBaseURL
	if err := c.reconcile.validate(c.processing.retention); err != nil {
		return err
	}
	if c.authToken != "" {
		if c.fallback, err = twilio.NewValidator(c.authToken, c.authTokenSecondary); err != nil {
			return fmt.Errorf("TWILIO_AUTH_TOKEN: %w", err)
		}
	}
	if c.keys, err = keyring.Parse(c.encryptionKey); err != nil {
		return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	return nil
}

// runServe runs the webhook until ctx is cancelled, with the workers,
// the accounts and the admin listener as configured, then stops them in
// reverse order: stop accepting and let in-flight requests finish, stop
// the admin listener, the accounts and the workers, close the store's
// writers, and the pools last. The webhook, the workers and the admin
// listener each have a pool of their own, so none waits for another's
// connections.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	if err := parseCommand("serve", &cfg, args, getenv, stdout, stderr); err != nil {
		return err
	}
	logger, pool, err := cfg.open(ctx, stderr, defaultPoolMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close() // after every part has stopped
	counts := tally.New(logger)
	m := metrics.New(metrics.WithTally(counts))
	logBuild(logger, m, "serve")
	opts := store.Options{JobAttempts: cfg.processing.attempts(), RouteAttempts: int16(cfg.processing.maxAttempts), Metrics: m}
	// The webhook's pool is the workers' no more: a backlog of forwards or
	// a sweep waits for connections of its own.
	workPool, err := cfg.pool(ctx, int32(cfg.workerConns), 0)
	if err != nil {
		return err
	}
	defer workPool.Close()
	st := store.NewWith(pool, store.Options{JobAttempts: opts.JobAttempts, RouteAttempts: opts.RouteAttempts, Metrics: m,
		Writers: cfg.writers, MaxBatch: cfg.maxBatch, BatchTimeout: cfg.requestTimeout})
	defer st.Close() // on a failed start; once started, its part closes it in order
	workSt := store.NewWith(workPool, opts)
	need, j, err := jobSettings{cfg.processing, cfg.reconcile, cfg.shutdownTimeout, cfg.keys}.open(ctx, workPool, workSt, cfg.databaseURL.s, logger, m)
	if err != nil {
		return err
	}
	mediaServer, err := cfg.processing.mediaServer(workSt, cfg.keys, logger, m) // the workers' pool: downloads never take the webhook's
	if err != nil {
		return err
	}
	accounts, err := account.Open(ctx, account.RegistryConfig{
		Store: st, Keys: cfg.keys, Fallback: cfg.fallback, Logger: logger, Metrics: m, LookupTimeout: cfg.requestTimeout,
	})
	if err != nil {
		return err
	}
	var g lifecycle.Group
	// First, so stopped last: it keeps the counts of everything after it.
	g.Add("overview counts", counts.Run(workSt))
	j.addParts(&g, st)
	g.Add("accounts", accounts.Run)
	if err := cfg.admin.add(&g, adminParts{db: &cfg.commonConfig, store: st, jobs: j, keys: cfg.keys, metrics: m, logger: logger,
		attempts: int16(cfg.processing.maxAttempts)}); err != nil {
		return err
	}
	g.Add("webhook listener", cfg.webhook(api.Config{Logger: logger, Store: st, Accounts: accounts, PublicBaseURL: cfg.publicBaseURL,
		RequestTimeout: cfg.requestTimeout, Metrics: m, SchemaVersion: need, EventsBasicAuth: cfg.eventsBasicAuth, Media: mediaServer, Duplicates: counts}, accounts.Len()))
	return runParts(ctx, &g, logger, "refusing new connections, finishing in-flight requests", cfg.shutdownTimeout)
}

// webhook is the part that listens on LISTEN_ADDR and serves the webhook;
// accounts is how many Twilio accounts it starts with, for the log.
func (c *serveConfig) webhook(apiCfg api.Config, accounts int) func(ctx context.Context, ready func()) error {
	return func(ctx context.Context, ready func()) error {
		ln, err := listen(c.listenAddr, "LISTEN_ADDR", "-listen-addr")
		if err != nil {
			return err
		}
		if c.maxConnections > 0 {
			ln = netutil.LimitListener(ln, c.maxConnections)
		}
		apiCfg.Logger.Info("listening", "addr", ln.Addr().String(), "webhook", c.publicBaseURL+api.PathMessages,
			"accounts", accounts, "fallback_token", c.fallback != nil, "secondary_token", c.authTokenSecondary != "",
			"max_connections", c.maxConnections, "database", redactURL(c.databaseURL.s))
		ready()
		return serveHTTP(ctx, newHTTPServer(apiCfg.Logger, apiCfg), ln, c.shutdownTimeout)
	}
}

// checkDatabase pings the database and reads its schema version at start,
// and returns the version this binary needs. A database that is down is
// not fatal: the pool reconnects on its own and /readyz says 503 until then.
// One that cannot be right by waiting (no such database, credentials
// refused) is, naming DATABASE_URL; so is a schema behind this binary's,
// logged with what to run, while /readyz answers 503 until it is migrated.
func checkDatabase(ctx context.Context, st *store.Store, databaseURL string, logger *slog.Logger) (int64, error) {
	need, err := schema.Version()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		p := store.DescribeConnectError(err)
		if p.Permanent {
			return 0, fmt.Errorf("database at DATABASE_URL %s: %s: %w", redactURL(databaseURL), p.Class, err)
		}
		logger.Error("database not reachable at start; serving anyway, /readyz reports 503 until it is",
			"problem", p.Class, "database_url", redactURL(databaseURL), "hint", "check DATABASE_URL (host, port) and that PostgreSQL runs", "err", err)
		return need, nil
	}
	have, err := st.SchemaVersion(ctx)
	switch {
	case err != nil:
		logger.Error("reading the schema version at start", "err", err)
	case have < need:
		logger.Error(api.SchemaBehind(have, need), "database_url", redactURL(databaseURL))
	}
	return need, nil
}

// listen listens on addr, the value of setting env (or flag), naming both
// when it cannot, so a port already in use says which setting to change.
func listen(addr, env, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s, %s): %w", addr, env, flag, err)
	}
	return ln, nil
}

// newHTTPServer returns the webhook's HTTP server, with timeouts that fit
// Twilio: it sends small requests and gives up after 15 s; nothing
// legitimate needs longer, and slow clients must not hold sockets.
func newHTTPServer(logger *slog.Logger, apiCfg api.Config) *http.Server {
	return &http.Server{
		Handler:           api.NewServer(apiCfg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
