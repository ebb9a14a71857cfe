package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/bench"
)

// benchSecret signs the forwards of the processing-on runs.
const benchSecret = "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC0zMmJ5dGVz"

// lagResult is a processing-on run: the ingest figures, and how long after
// its commit each message reached the app.
type lagResult struct {
	res            bench.Result
	lagP50, lagP99 time.Duration
	lagMax         time.Duration
	byEnd          int // messages forwarded before the load ended
	drain          time.Duration
	// The whole run's cost, from the load's start to the last forward:
	// CPU per message, and each statement's (when measured).
	serviceCPU, serverCPU time.Duration
	stmts                 []stmtCost
}

// appStandIn answers every forward 204 at once and notes when each
// webhook-id first arrived at each path (a destination's): the fastest app
// there can be, so the figures are the service's own.
type appStandIn struct {
	mu      sync.Mutex
	arrived map[string]time.Time // by path and webhook-id
	// failing is a path answered 500 to everything (a failing
	// destination's), recorded nowhere.
	failing string
}

func (a *appStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if a.failing != "" && r.URL.Path == a.failing {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	key := r.URL.Path + " " + r.Header.Get("webhook-id")
	a.mu.Lock()
	if _, ok := a.arrived[key]; !ok {
		a.arrived[key] = now
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (a *appStandIn) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.arrived)
}

// forwardPath is where FORWARD_URL's forwards arrive at the stand-in.
const forwardPath = "/inbox"

// processing runs the all-new mix at concurrency c with forwarding on, to an
// app that answers at once, and measures the processing lag: from the
// message's received_at (now() in the transaction that stored it) to its
// arrival at the app (by FORWARD_URL). With extra above 0, that many
// destinations of the table, each matching every message, are added
// before serve starts, each to its own path of the app, and the run ends
// when every message reached every one; with h.cfg.failing, the first of
// them answers 500 to everything, its breaker off, and the run ends when
// every message reached the others.
func (h *harness) processing(ctx context.Context, c, extra int) (lagResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return lagResult{}, err
	}
	app := &appStandIn{arrived: map[string]time.Time{}}
	healthy := extra
	if extra > 0 && h.cfg.failing {
		app.failing, healthy = "/d0", extra-1
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	defer srv.Close()

	var out lagResult
	base := "http://" + ln.Addr().String()
	env := []string{"FORWARD_URL=" + base + forwardPath, "FORWARD_SECRET=" + benchSecret}
	if app.failing != "" {
		// It fails for the whole run: no breaker pauses it.
		env = append(env, "FORWARD_BREAK_AFTER=0")
	}
	addDestinations := func(dbURL string) error {
		for i := range extra {
			cmd := exec.CommandContext(ctx, h.cfg.inbox, "destinations", "add", fmt.Sprintf("bench-%d", i),
				"-url", fmt.Sprintf("%s/d%d", base, i), "-allow-plaintext-secrets")
			cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_FORMAT=json")
			cmd.Stdin = strings.NewReader(benchSecret)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("add destination %d: %w: %s", i, err, out)
			}
		}
		return nil
	}
	res, _, err := h.serviceWith(ctx, bench.Load{Mix: bench.AllNew, Concurrency: c, Duration: h.cfg.duration}, env, addDestinations,
		func(ctx context.Context, pool *pgxpool.Pool, res bench.Result, run runCost) error {
			if err := h.drain(ctx, &out, run, fmt.Sprintf("processing at %d", c), app.count, len(res.SIDs)*(1+healthy)); err != nil {
				return err
			}
			app.mu.Lock()
			defer app.mu.Unlock()
			lags, err := lagsSince(ctx, pool, func(sid string) time.Time { return app.arrived[forwardPath+" "+sid] })
			if err != nil {
				return err
			}
			out.lagP50, out.lagP99, out.lagMax = bench.Percentiles(lags)
			return nil
		})
	out.res = res
	if err == nil {
		fmt.Fprintf(os.Stderr, "level %d, processing on, %d destinations: %.0f req/s, lag p50 %s p99 %s, %d of %d deliveries made by the end of the load\n",
			c, 1+extra, res.RPS(), out.lagP50, out.lagP99, out.byEnd, len(res.SIDs)*(1+extra))
	}
	return out, err
}

// drain waits, up to 2 minutes after the load, for count to reach want
// (the deliveries made), then records in out what the run cost from the
// load's start: how long the drain took, the CPU, each statement.
func (h *harness) drain(ctx context.Context, out *lagResult, run runCost, what string, count func() int, want int) error {
	loadEnd := time.Now()
	out.byEnd = count()
	deadline := loadEnd.Add(2 * time.Minute)
	for count() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d deliveries made 2 min after the load", what, count(), want)
		}
		time.Sleep(20 * time.Millisecond) // polling the stand-in's count, in a benchmark
	}
	out.drain = time.Since(loadEnd)
	var err error
	if out.serviceCPU, out.serverCPU, err = run.sinceStart(ctx); err != nil {
		return err
	}
	out.stmts, err = h.stmts.read(ctx, run.db)
	return err
}
