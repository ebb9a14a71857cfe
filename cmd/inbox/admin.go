package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"inbox/account"
	"inbox/admin"
	"inbox/control"
	"inbox/destination/kinds"
	"inbox/internal/lifecycle"
	"inbox/keyring"
	"inbox/metrics"
	"inbox/queue"
	"inbox/routing"
	"inbox/store"
	"inbox/story"
)

// adminConfig is the admin listener's configuration.
type adminConfig struct {
	addr  string
	token string
	hosts string
	// conns and statementTimeout bound the admin edge's own pool: a
	// console page or an API call waits for one of its connections, never
	// the webhook's or the workers'.
	conns            int
	statementTimeout time.Duration
}

// The admin edge's pool: four connections serve an operator or two and a
// scrape; a page that needs more than ten seconds of the database is a
// query to fix, not to wait for (its answer is 503, the log says which).
const (
	defaultAdminConns            = 4
	defaultAdminStatementTimeout = 10 * time.Second
)

// minAdminToken is the shortest admin token accepted: the API shows
// message bodies and can make the service forward again, so the token must
// not be guessable.
const minAdminToken = 16

// The default admin addresses are loopback, so a deployment that sets
// nothing exposes nothing: reaching them from elsewhere takes a decision
// and a token. serve and work differ, so both run on one host as they are.
const (
	defaultServeAdminAddr = "127.0.0.1:9090"
	defaultWorkAdminAddr  = "127.0.0.1:9091"
)

func (c *adminConfig) bind(b *binder, def string) {
	b.String(&c.addr, "admin-addr", "ADMIN_ADDR", def,
		"address of the admin listener (console, metrics, API, River UI, pprof); empty or off: none")
	b.Secret(&c.token, "ADMIN_TOKEN", "required on every admin request (Bearer, or Basic's password): at least 16 characters")
	b.String(&c.hosts, "admin-hosts", "ADMIN_HOSTS", "",
		"comma-separated names the admin listener is reached by, beyond IP addresses and localhost (e.g. a proxy's); other Host headers are refused")
	b.Int(&c.conns, "admin-db-conns", "ADMIN_DB_CONNS", defaultAdminConns,
		"database connections of the admin listener's own pool (console, API, metrics), apart from the webhook's and the workers'")
	b.Duration(&c.statementTimeout, "admin-statement-timeout", "ADMIN_STATEMENT_TIMEOUT", defaultAdminStatementTimeout,
		"bound on one database statement of the admin listener; past it, 503")
}

// hostList returns ADMIN_HOSTS as lower-case names without ports.
func (c *adminConfig) hostList() ([]string, error) {
	var hosts []string
	for h := range strings.SplitSeq(c.hosts, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, ":/ ") {
			return nil, fmt.Errorf("invalid ADMIN_HOSTS entry %q: give host names only, without scheme or port", h)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// validate refuses an admin listener reachable from other hosts without a
// token: it lists messages and replays them.
func (c *adminConfig) validate() error {
	if c.addr == "off" {
		c.addr = ""
	}
	if c.conns == 0 {
		c.conns = defaultAdminConns
	}
	if c.conns < 1 || c.conns > 100 {
		return fmt.Errorf("invalid ADMIN_DB_CONNS %d: want 1 to 100 (0: %d)", c.conns, defaultAdminConns)
	}
	if _, err := c.hostList(); err != nil {
		return err
	}
	if c.token != "" {
		if strings.TrimSpace(c.token) != c.token {
			return errors.New("invalid ADMIN_TOKEN: it begins or ends with whitespace, which a header cannot carry as sent")
		}
		if len(c.token) < minAdminToken {
			return fmt.Errorf("invalid ADMIN_TOKEN: %d characters, want at least %d (e.g. openssl rand -hex 32)", len(c.token), minAdminToken)
		}
	}
	if c.addr == "" || c.token != "" {
		return nil
	}
	if !loopback(c.addr) {
		return fmt.Errorf("ADMIN_ADDR %s is reachable from other hosts but ADMIN_TOKEN is not set: set a token, or listen on 127.0.0.1", c.addr)
	}
	return nil
}

// loopback reports whether addr listens on loopback only. ":9090" and
// "0.0.0.0:9090" listen on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminParts is what the admin listener shows and does.
type adminParts struct {
	// db opens the admin edge's own pool (commonConfig.pool).
	db      *commonConfig
	store   *store.Store
	jobs    *jobs
	keys    *keyring.Keyring
	metrics *metrics.Metrics
	logger  *slog.Logger
	// attempts are a delivery job's (FORWARD_MAX_ATTEMPTS): a backfill's.
	attempts int16
}

// add, when an admin listener is configured, registers the pool's, the job
// table's and the forwarding controls' collectors in p.metrics and adds the
// listener, and River UI under it, to g; with none, nothing.
func (c *adminConfig) add(g *lifecycle.Group, p adminParts) error {
	if c.addr == "" {
		// Nothing would serve the metrics: no collector reads the
		// database at a scrape that never comes.
		p.logger.Info("admin listener off")
		return nil
	}
	pool, err := p.db.pool(context.Background(), int32(c.conns), c.statementTimeout)
	if err != nil {
		return err
	}
	// Closed last of the admin edge's parts: started first.
	g.Add("admin database pool", func(ctx context.Context, ready func()) error {
		ready()
		<-ctx.Done()
		pool.Close()
		return nil
	})
	// Everything the admin edge reads and does runs on its own pool.
	st := store.New(pool)
	q, err := p.jobs.queue.On(pool)
	if err != nil {
		return err
	}
	controls := p.jobs.controls.On(st, q)
	destinations := &routing.Manager{Store: st, Deliveries: q, Keys: p.keys, Attempts: p.attempts, Check: kinds.Check}
	if err := p.registerMetrics(st, q, controls, destinations); err != nil {
		return err
	}
	ui, runUI, err := q.UI("/riverui")
	if err != nil {
		return err
	}
	hosts, _ := c.hostList() // validated
	srv := &http.Server{
		Handler: admin.NewServer(admin.Config{
			Logger: p.logger, Token: c.token, Metrics: p.metrics.Handler(), AuthMetrics: p.metrics, Revocations: st, Media: st, Counts: st, RiverUI: ui, Hosts: hosts,
			Stories:  story.New(st, q),
			Controls: controls,
			Accounts: &account.Manager{Store: st, Keys: p.keys},
			// Sealed with ENCRYPTION_KEY; without one, the API refuses to
			// store a destination's secret in the clear (409).
			Destinations: destinations,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn),
	}
	g.Add("river ui", runUI)
	g.Add("admin listener", func(ctx context.Context, ready func()) error {
		ln, err := listen(c.addr, "ADMIN_ADDR", "-admin-addr")
		if err != nil {
			return err
		}
		p.logger.Info("admin listening", "addr", ln.Addr().String(), "auth", c.token != "", "console", "http://"+ln.Addr().String()+"/")
		ready()
		return serveHTTP(ctx, srv, ln, 5*time.Second)
	})
	return nil
}

// registerMetrics registers the pool's (the webhook's, p.store's), the job
// table's, the controls' and the destinations' collectors, which read
// through the admin edge's st and q at a scrape.
func (p adminParts) registerMetrics(st *store.Store, q *queue.Queue, controls *control.Service, destinations *routing.Manager) error {
	if err := p.metrics.Register(metrics.NewPoolCollector(p.store.PoolStat), metrics.NewJobCollector(q.CountByState, 2*time.Second),
		metrics.NewForwardingCollector(controls.Control, 2*time.Second),
		metrics.NewDestinationCollector(destinationStates(destinations), 2*time.Second),
		metrics.NewUnroutedCollector(func(ctx context.Context) (int64, error) {
			return st.CountUnrouted(ctx, time.Now().Add(-time.Hour), unroutedCap)
		}, 2*time.Second),
		metrics.NewMediaCollector(st.MediaWaiting, 2*time.Second)); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}

// serveHTTP serves srv on ln until ctx ends, then stops accepting and lets
// in-flight requests finish for up to timeout.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// unroutedCap bounds the messages the unrouted gauge reads at a scrape.
const unroutedCap = 100_000

// destinationStates reads what the destinations' gauges report.
func destinationStates(m *routing.Manager) func(ctx context.Context) ([]metrics.DestinationState, error) {
	return func(ctx context.Context) ([]metrics.DestinationState, error) {
		ds, err := m.List(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]metrics.DestinationState, len(ds))
		for i, d := range ds {
			out[i] = metrics.DestinationState{Name: d.Name, PausedReason: d.PausedReason, Waiting: d.Waiting, Lag: d.Lag}
		}
		return out, nil
	}
}
