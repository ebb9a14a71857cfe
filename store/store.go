// Package store is the service's PostgreSQL: the only package that knows
// the sqlc-generated package db exists. It takes and returns the project's
// own types (message.Inbound, message.Message, Account, Job, ...), calls
// each generated query, and turns every database error into its own in one
// place (fail), so nothing above it imports pgx or db to learn what
// happened. Its files are named after the tables they touch, as
// sql/queries is.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/db"
	"inbox/metrics"
)

// The errors the store returns, wrapped with the step that failed: test
// them with errors.Is.
var (
	// ErrNotFound: no row has what was asked for (a message sid, a status,
	// an account).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: PostgreSQL refused the data itself (a check, a type the
	// form checks let through): storing it again would fail again.
	ErrInvalid = errors.New("the database refused the message")
	// ErrSchemaBehind: a table, column or function the query names does
	// not exist: the database is not migrated to what this binary needs.
	ErrSchemaBehind = errors.New("the database schema is behind this binary: run inbox migrate up")
	// ErrUnavailable: anything else, from the network to a timeout: the
	// database could not answer, and the outcome of a write is unknown (a
	// commit may have landed before its answer was lost).
	ErrUnavailable = errors.New("database unavailable")
)

// fail is the one place a database error becomes the store's: no row
// becomes notFound (ErrNotFound, or one that wraps it), SQLSTATE class 22
// (data exception) or 23 (integrity constraint) ErrInvalid, an undefined
// table, column or function ErrSchemaBehind, anything else ErrUnavailable.
// op names the step, for the message.
func fail(op string, err error, notFound error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, notFound)
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"):
			return fmt.Errorf("%s: %w: %w", op, ErrInvalid, err)
		case pe.Code == "42P01", pe.Code == "42703", pe.Code == "42883":
			return fmt.Errorf("%s: %w: %w", op, ErrSchemaBehind, err)
		}
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Store reads and writes through a connection pool, or, made by InTx,
// within one transaction.
type Store struct {
	pool *pgxpool.Pool // nil in a Store made by InTx
	// conn is what the store's statements and its own transactions run
	// on: the pool, or the transaction of InTx (where they are
	// savepoints).
	conn conn
	q    *db.Queries
	// jobAttempts, when not 0, makes every write that stores a new message
	// or moves a status also insert its River jobs, with this many attempts.
	jobAttempts jobAttempts
	group       *groupCommit // nil: each insert is sent on its own
	resetAt     atomic.Int64 // unix nanoseconds of the last pool reset
	// refused: the last message or status write the server refused
	// (WritesRefused); nil in a Store made by InTx.
	refused *refusals
}

// Options says how a Store writes.
type Options struct {
	// JobAttempts, when not 0, makes the statement that stores a new
	// message insert its River job too (the queue runs it), and so
	// the one that moves a status: the job commits with the row or not at
	// all, and runs at most JobAttempts times.
	JobAttempts int16
	// RouteAttempts, when not 0, makes the same statements insert a
	// delivery job for every destination whose rules match (one per batch
	// and destination in a group commit), in the destination's queue, with
	// this many attempts.
	RouteAttempts int16
	// Writers, when not 0, group-commits inbound inserts: that many
	// writers each send the inserts waiting for them, up to MaxBatch, as
	// one transaction in one round trip, each bounded by BatchTimeout. Close
	// stops them.
	Writers      int
	MaxBatch     int
	BatchTimeout time.Duration
	// Metrics, when set, records each group's size and round trip.
	Metrics *metrics.Metrics
}

// New returns a Store over pool that stores only, one statement per
// insert. The caller keeps ownership of the pool.
func New(pool *pgxpool.Pool) *Store { return NewWith(pool, Options{}) }

// NewWith returns a Store that writes as opts says.
func NewWith(pool *pgxpool.Pool, opts Options) *Store {
	s := &Store{pool: pool, conn: pool, q: db.New(pool), jobAttempts: jobAttempts{opts.JobAttempts, opts.RouteAttempts}, refused: &refusals{}}
	if opts.Writers > 0 {
		if opts.BatchTimeout <= 0 {
			opts.BatchTimeout = 5 * time.Second
		}
		s.group = newGroupCommit(pool, opts, s.connectionLost)
	}
	return s
}

// jobAttempts are the attempts of the jobs a stored message gets: its
// forward to FORWARD_URL (the default destination) and its deliveries to
// the destinations it matches; 0: none.
type jobAttempts struct{ forward, route int16 }

// conn runs statements and begins transactions: a pool, or a transaction
// (whose transactions are savepoints).
type conn interface {
	db.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx returns a Store whose statements run in tx: the store's part of a
// unit of work that spans another adapter (the queue's, which owns River
// and begins the transaction). It writes each statement alone, without
// group commit, and has no pool: Ping, PoolStat, LockSweep and
// ListenForAccountChanges are not for it.
func (s *Store) InTx(tx pgx.Tx) *Store {
	return &Store{conn: tx, q: s.q.WithTx(tx), jobAttempts: s.jobAttempts}
}

// Translate is the store's error translation (see the Err values) for a
// statement another adapter ran against the same database: the queue
// adapter's, so that nothing above either needs pgx to learn what
// happened. op names the step; a missing row is ErrNotFound.
func Translate(op string, err error) error {
	if err == nil {
		return nil
	}
	return fail(op, err, ErrNotFound)
}

// connectionLost resets the pool after a write failed without an answer
// from the server (a timeout, a broken connection), at most once a second.
// After a network outage every idle connection is dead too, and the pool
// would otherwise find them one at a time, each costing a request its
// whole deadline in a liveness ping: recovery took up to 4 s after the
// network healed. An error PostgreSQL answered, or a caller that left,
// says nothing about the connections.
func (s *Store) connectionLost(err error) {
	if _, ok := errors.AsType[*pgconn.PgError](err); ok || errors.Is(err, context.Canceled) || s.pool == nil {
		return
	}
	now := time.Now().UnixNano()
	last := s.resetAt.Load()
	if now-last < int64(time.Second) || !s.resetAt.CompareAndSwap(last, now) {
		return
	}
	s.pool.Reset()
}

// Run is the store as a part of a process (internal/lifecycle): it
// serves until ctx ends, then closes. Start it before, and so stop it
// after, everything that writes through it.
func (s *Store) Run(ctx context.Context, ready func()) error {
	ready()
	<-ctx.Done()
	s.Close()
	return nil
}

// Close stops the group-commit writers, if any, after their batches in
// flight; call it once nothing inserts any more. Calling it again does nothing.
func (s *Store) Close() {
	if s.group != nil {
		s.group.close()
	}
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.pool == nil {
		return nil // InTx: its transaction is proof enough
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// DeleteMessagesBefore deletes up to maxRows messages received before
// cutoff, and up to maxRows of the status events received before it, each
// in its own short statement; call it again while either count is
// maxRows.
func (s *Store) DeleteMessagesBefore(ctx context.Context, cutoff time.Time, maxRows int32) (messages, statusEvents int64, err error) {
	if messages, err = s.deleteMessagesBefore(ctx, cutoff, maxRows); err != nil {
		return messages, 0, err
	}
	statusEvents, err = s.deleteStatusEventsBefore(ctx, cutoff, maxRows)
	return messages, statusEvents, err
}
