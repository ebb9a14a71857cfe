package api

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
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

// readiness is what /readyz checks: the database answers, its schema is
// at least the version this binary needs, and the last message or status
// written was not refused for want of disk, memory or a primary
// (store.WritesRefused). The schema is read on the first
// probe and again only after a probe failed, never per webhook: a database
// that answers pings but was never migrated would otherwise look ready
// while every webhook got 503.
type readiness struct {
	store    *store.Store
	need     int64       // 0: not checked
	schemaOK atomic.Bool // the schema was at need when last read
}

// check returns nil when the service can store webhooks, else the 503 that
// says why.
func (r *readiness) check(ctx context.Context) error {
	if r.need > 0 && !r.schemaOK.Load() {
		v, err := r.store.SchemaVersion(ctx)
		if err != nil {
			return &httpError{status: http.StatusServiceUnavailable, reason: "database not reachable", err: err}
		}
		if v < r.need {
			return &httpError{status: http.StatusServiceUnavailable, reason: SchemaBehind(v, r.need)}
		}
		r.schemaOK.Store(true)
	}
	if err := r.store.Ping(ctx); err != nil {
		r.schemaOK.Store(false) // it may come back restored from an older backup, or as another server
		return &httpError{status: http.StatusServiceUnavailable, reason: "database not reachable", err: err}
	}
	// A full disk answers pings: what webhooks got says more.
	if err := r.store.WritesRefused(); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, reason: "database refuses writes: " + err.Error()}
	}
	return nil
}

// SchemaBehind says that the database's schema, at version have, is older
// than this binary's need, and what to do.
func SchemaBehind(have, need int64) string {
	return fmt.Sprintf("database schema is at version %d, this binary needs %d: run inbox migrate up", have, need)
}

// handleReadyz answers GET /readyz: 200 when the database answers and is
// migrated far enough, else 503 saying which, so a load balancer sends
// webhooks only to replicas that can store them.
func handleReadyz(ready *readiness) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready.check(ctx); err != nil {
			return err
		}
		databaseReached(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ready\n"))
		return nil
	})
}
