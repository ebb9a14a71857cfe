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

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/account"
	"inbox/admin"
	"inbox/keyring"
	"inbox/metrics"
	"inbox/process"
	"inbox/store"
)

// adminConfig is the admin listener's configuration.
type adminConfig struct {
	addr  string
	token string
	hosts string
}

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

// serve starts the admin listener, if one is configured, and returns what
// stops it. The pool's, the job table's and the forwarding controls'
// collectors are registered in m.
func (c *adminConfig) serve(ctx context.Context, pool *pgxpool.Pool, st *store.Store, m *metrics.Metrics,
	forwardAttempts int16, keys *keyring.Keyring, logger *slog.Logger) (stop func(), err error) {
	op, err := process.NewOperator(pool, st, forwardAttempts, logger, m)
	if err != nil {
		return nil, err
	}
	if err := m.Register(metrics.NewPoolCollector(st.PoolStat), metrics.NewJobCollector(st.CountJobsByState, 2*time.Second),
		metrics.NewForwardingCollector(op.Control, 2*time.Second)); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if c.addr == "" {
		logger.Info("admin listener off")
		return func() {}, nil
	}
	ui, err := process.NewRiverUI(pool, logger)
	if err != nil {
		return nil, err
	}
	uiCtx, cancelUI := context.WithCancel(context.WithoutCancel(ctx))
	if err := ui.Start(uiCtx); err != nil {
		cancelUI()
		return nil, fmt.Errorf("start river ui: %w", err)
	}
	ln, err := listen(c.addr, "ADMIN_ADDR", "-admin-addr")
	if err != nil {
		cancelUI()
		return nil, err
	}
	hosts, _ := c.hostList() // validated
	srv := &http.Server{
		Handler: admin.NewServer(admin.Config{
			Logger: logger, Token: c.token, Metrics: m, Store: st, ForwardAttempts: forwardAttempts, RiverUI: ui, Hosts: hosts,
			Forwarding: op, Readable: func(ctx context.Context) (map[string]bool, error) { return account.Readable(ctx, st, keys) },
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener stopped", "err", err)
		}
	}()
	logger.Info("admin listening", "addr", ln.Addr().String(), "auth", c.token != "", "console", "http://"+ln.Addr().String()+"/")
	return func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		cancelUI()
	}, nil
}
