package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
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
// webhook-id first arrived: the fastest app there can be, so the figures are
// the service's own.
type appStandIn struct {
	mu      sync.Mutex
	arrived map[string]time.Time
}

func (a *appStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	id := r.Header.Get("webhook-id")
	a.mu.Lock()
	if _, ok := a.arrived[id]; !ok {
		a.arrived[id] = now
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (a *appStandIn) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.arrived)
}

// processing runs the all-new mix at concurrency c with forwarding on, to an
// app that answers at once, and measures the processing lag: from the
// message's received_at (now() in the transaction that stored it) to its
// arrival at the app.
func (h *harness) processing(ctx context.Context, c int) (lagResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return lagResult{}, err
	}
	app := &appStandIn{arrived: map[string]time.Time{}}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	defer srv.Close()

	var out lagResult
	env := []string{"FORWARD_URL=http://" + ln.Addr().String() + "/inbox", "FORWARD_SECRET=" + benchSecret}
	res, _, err := h.serviceWith(ctx, bench.Load{Mix: bench.AllNew, Concurrency: c, Duration: h.cfg.duration}, env,
		func(ctx context.Context, pool *pgxpool.Pool, res bench.Result, run runCost) error {
			loadEnd := time.Now()
			out.byEnd = app.count()
			deadline := loadEnd.Add(2 * time.Minute)
			for app.count() < len(res.SIDs) {
				if time.Now().After(deadline) {
					return fmt.Errorf("processing at %d: %d of %d messages forwarded 2 min after the load", c, app.count(), len(res.SIDs))
				}
				time.Sleep(20 * time.Millisecond)
			}
			out.drain = time.Since(loadEnd)
			var err error
			if out.serviceCPU, out.serverCPU, err = run.sinceStart(ctx); err != nil {
				return err
			}
			if out.stmts, err = h.stmts.read(ctx, run.db); err != nil {
				return err
			}
			rows, err := pool.Query(ctx, `SELECT metadata->>'message_sid', received_at FROM messages`)
			if err != nil {
				return err
			}
			defer rows.Close()
			var lags []time.Duration
			app.mu.Lock()
			defer app.mu.Unlock()
			for rows.Next() {
				var sid string
				var at time.Time
				if err := rows.Scan(&sid, &at); err != nil {
					return err
				}
				lags = append(lags, app.arrived[sid].Sub(at))
			}
			out.lagP50, out.lagP99, out.lagMax = bench.Percentiles(lags)
			return rows.Err()
		})
	out.res = res
	if err == nil {
		fmt.Fprintf(os.Stderr, "level %d, processing on: %.0f req/s, lag p50 %s p99 %s, %d of %d forwarded by the end of the load\n",
			c, res.RPS(), out.lagP50, out.lagP99, out.byEnd, len(res.SIDs))
	}
	return out, err
}
