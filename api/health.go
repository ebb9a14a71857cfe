package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"
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
func handleReadyz(logger *slog.Logger, db Pinger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := db.Ping(ctx); err != nil {
			logger.WarnContext(ctx, "not ready: database does not answer", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("database unavailable\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
}
