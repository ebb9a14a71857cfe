package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// refusedFor is how long a write the server refused keeps the store
// unready (WritesRefused) unless a write succeeds first: long enough for
// a load balancer's probes (every few seconds) to see it, short enough
// that a replica it took out of rotation is tried again soon after the
// database can write once more.
const refusedFor = 30 * time.Second

// writeRefusal is the last write the server refused, and when.
type writeRefusal struct {
	at  time.Time
	err error
}

// refusals remembers whether the last message or status written was
// refused by the server for want of something only an operator gives
// back (disk, memory, connections, a primary): what a ping cannot see,
// as a full disk answers pings.
type refusals struct{ last atomic.Pointer[writeRefusal] }

// observe records the outcome of a write.
func (r *refusals) observe(err error) {
	switch {
	case err == nil:
		if r.last.Load() != nil {
			r.last.Store(nil)
		}
	case RefusesWrites(err):
		r.last.Store(&writeRefusal{at: time.Now(), err: err})
	}
}

// WritesRefused returns why the last message or status written was
// refused by the server (a full disk, no memory, a read-only server, one
// starting up or in recovery), when that was under 30 s ago and no write
// has succeeded since; nil otherwise. /readyz reports it, so readiness
// says what webhooks get.
func (s *Store) WritesRefused() error {
	if s.refused == nil {
		return nil
	}
	l := s.refused.last.Load()
	if l == nil || time.Since(l.at) > refusedFor {
		return nil
	}
	return fmt.Errorf("the database refused the last write %s ago: %w", time.Since(l.at).Round(time.Second), l.err)
}

// RefusesWrites reports whether err is the server refusing work for want
// of what only an operator or time gives back: SQLSTATE class 53
// (insufficient resources: disk full, out of memory, too many
// connections), 57 (operator intervention: starting up, in recovery,
// shutting down), 58 (system error: I/O), or 25006 (a read-only server, a
// standby after a failover went wrong).
func RefusesWrites(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return false
	}
	switch {
	case strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57"), strings.HasPrefix(pe.Code, "58"), pe.Code == "25006":
		return true
	}
	return false
}

// Unavailable reports whether err, wherever it came from (the store, or a
// statement of River's the store never saw), says the database could not
// do the work now: the store's ErrUnavailable or ErrSchemaBehind, a
// connection that could not be made or broke, the server refusing for
// want of resources or in recovery (RefusesWrites), or a deadline. A
// caller answers 503 for it, not 500.
func Unavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrSchemaBehind) || errors.Is(err, context.DeadlineExceeded) || RefusesWrites(err) {
		return true
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && strings.HasPrefix(pe.Code, "08") {
		return true
	}
	_, isNet := errors.AsType[net.Error](err)
	return isNet || pgconn.SafeToRetry(err)
}
