package api

import (
	"context"
	"net/http"
	"time"

	"inbox/store"
)

// handleHealthz answers GET /healthz: the process is alive and serving HTTP.
// It does not touch the database, so an orchestrator does not restart a
// healthy process because PostgreSQL is briefly away.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// readyTimeout bounds a readiness check so that a hung database answers 503
// quickly instead of hanging the probe.
const readyTimeout = 2 * time.Second

// handleReadyz answers GET /readyz: 200 when the database answers, else 503,
// so a load balancer sends webhooks only to replicas that can store them.
func handleReadyz(st *store.Store) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			return &httpError{status: http.StatusServiceUnavailable, reason: "database not reachable", err: err}
		}
		databaseReached(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ready\n"))
		return nil
	})
}
