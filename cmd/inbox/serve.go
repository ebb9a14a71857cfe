package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/api"
	"inbox/store"
	"inbox/twilio"
)

// serveConfig is the configuration of `inbox serve`.
type serveConfig struct {
	commonConfig
	listenAddr         string
	publicBaseURL      string
	authToken          string
	authTokenSecondary string
	requestTimeout     time.Duration
	shutdownTimeout    time.Duration
	pprofAddr          string
}

func (c *serveConfig) bind(fs *flag.FlagSet, getenv func(string) string) error {
	c.commonConfig.bind(fs, getenv)
	fs.StringVar(&c.listenAddr, "listen-addr", envOr(getenv, "LISTEN_ADDR", ":8080"), "address to listen on (env LISTEN_ADDR)")
	fs.StringVar(&c.pprofAddr, "pprof-addr", getenv("PPROF_ADDR"),
		"if set, serve net/http/pprof on this address, apart from the webhook's (env PPROF_ADDR; keep it private)")
	fs.StringVar(&c.publicBaseURL, "public-base-url", getenv("PUBLIC_BASE_URL"),
		"scheme, host and port Twilio calls, e.g. https://hooks.example.com; the request path is appended (env PUBLIC_BASE_URL, required)")
	// The tokens have no flags: a flag would put them in `ps` output.
	c.authToken = getenv("TWILIO_AUTH_TOKEN")
	c.authTokenSecondary = getenv("TWILIO_AUTH_TOKEN_SECONDARY")
	rt, err := durationEnv(getenv, "REQUEST_TIMEOUT", api.DefaultRequestTimeout)
	if err != nil {
		return err
	}
	fs.DurationVar(&c.requestTimeout, "request-timeout", rt, "bound on one webhook's database work; past it, 503 (env REQUEST_TIMEOUT)")
	d, err := durationEnv(getenv, "SHUTDOWN_TIMEOUT", 20*time.Second)
	if err != nil {
		return err
	}
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", d, "how long in-flight requests may take to finish on SIGTERM (env SHUTDOWN_TIMEOUT)")
	return nil
}

// validate checks what the flags cannot: the service refuses to start
// rather than accept unsigned webhooks or check signatures against the
// wrong URL.
func (c *serveConfig) validate() error {
	if c.authToken == "" {
		return errors.New("TWILIO_AUTH_TOKEN is not set: the service will not accept webhooks it cannot verify")
	}
	base, err := publicBaseURL(c.publicBaseURL)
	if err != nil {
		return err
	}
	c.publicBaseURL = base
	if c.requestTimeout >= 15*time.Second {
		return fmt.Errorf("REQUEST_TIMEOUT %s: must be under Twilio's 15 s, or Twilio gives up first", c.requestTimeout)
	}
	return nil
}

// publicBaseURL validates PUBLIC_BASE_URL and returns it without a trailing
// slash, ready for a request path to be appended.
func publicBaseURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("PUBLIC_BASE_URL is not set: it is the scheme, host and port Twilio calls (e.g. https://hooks.example.com), which signatures cover")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: the scheme must be http or https", s)
	case u.Host == "":
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: give only scheme, host, port and an optional path prefix", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}

func durationEnv(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid %s %q: want a positive duration such as 10s", key, v)
	}
	return d, nil
}

// defaultPoolMaxConns replaces pgx's default of max(4, cores) unless the
// URL sets pool_max_conns. Each webhook is one short insert whose commit
// waits on the WAL flush; with more connections more commits share one flush.
// On two cores, at 32 concurrent webhooks, 4 connections gave 0.33 of
// pgbench's rate, 8 gave 0.42, 16 gave 0.53 and 32 gave 0.50 with worse
// tail latency (scripts/bench -db-params pool_max_conns=N).
const defaultPoolMaxConns = 16

// runServe runs the HTTP server until ctx is cancelled, then shuts down in
// order: stop accepting, let in-flight requests finish, close the pool last.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	if err := cfg.bind(fs, getenv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	validator, err := twilio.NewValidator(cfg.authToken, cfg.authTokenSecondary)
	if err != nil {
		return fmt.Errorf("TWILIO_AUTH_TOKEN: %w", err)
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	poolCfg, err := cfg.poolConfig()
	if err != nil {
		return err
	}
	if !strings.Contains(cfg.databaseURL, "pool_max_conns") {
		poolCfg.MaxConns = defaultPoolMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("create database pool: %w", err)
	}
	defer pool.Close() // deferred first, so it runs after the server has drained
	st := store.New(pool)

	// A database that is down at start is not fatal: the pool reconnects on
	// its own and /readyz says 503 until then.
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := st.Ping(pingCtx); err != nil {
		logger.Error("database not reachable at start; serving anyway, /readyz reports 503 until it is", "err", err)
	}
	cancel()

	srv := &http.Server{
		Handler: api.NewServer(api.Config{
			Logger:         logger,
			Store:          st,
			Validator:      validator,
			PublicBaseURL:  cfg.publicBaseURL,
			RequestTimeout: cfg.requestTimeout,
		}),
		// Twilio sends small requests and gives up after 15 s; nothing
		// legitimate needs longer, and slow clients must not hold sockets.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.pprofAddr != "" {
		stopPprof, err := servePprof(cfg.pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	ln, err := net.Listen("tcp", cfg.listenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listenAddr, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "webhook", cfg.publicBaseURL+"/twilio/messages",
		"secondary_token", cfg.authTokenSecondary != "")

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: refusing new connections, finishing in-flight requests", "timeout", cfg.shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// servePprof serves the runtime profiles on their own listener, so they are
// never reachable through the public webhook address.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for pprof on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	logger.Warn("serving pprof: keep this address private", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
