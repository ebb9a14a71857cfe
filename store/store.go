// Package store is the boundary between the service and the sqlc-generated
// db package. It calls each generated query, turns "no row" into a plain
// result or ErrNotFound, and wraps every other error with the step that
// failed, so that nothing above it needs pgx to learn what happened.
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

// ErrNotFound is returned when no message (or status event) has the
// requested sid.
var ErrNotFound = errors.New("message not found")

// Store reads and writes messages through a connection pool.
type Store struct {
	pool *pgxpool.Pool
	q    *db.Queries
	// jobAttempts, when not 0, makes every write that stores a new message
	// or moves a status also insert its River job, with this many attempts.
	jobAttempts int16
	group       *groupCommit // nil: each insert is its own statement
	resetAt     atomic.Int64 // unix nanoseconds of the last pool reset
}

// Options says how a Store writes.
type Options struct {
	// JobAttempts, when not 0, makes the statement that stores a new
	// message insert its River job too (package process runs it), and so
	// the one that moves a status: the job commits with the row or not at
	// all, and runs at most JobAttempts times.
	JobAttempts int16
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
	s := &Store{pool: pool, q: db.New(pool), jobAttempts: opts.JobAttempts}
	if opts.Writers > 0 {
		if opts.BatchTimeout <= 0 {
			opts.BatchTimeout = 5 * time.Second
		}
		s.group = newGroupCommit(s.q, opts, s.connectionLost)
	}
	return s
}

// connectionLost resets the pool after a write failed without an answer
// from the server (a timeout, a broken connection), at most once a second.
// After a network outage every idle connection is dead too, and the pool
// would otherwise find them one at a time, each costing a request its
// whole deadline in a liveness ping: recovery took up to 4 s after the
// network healed. An error PostgreSQL answered, or a caller that left,
// says nothing about the connections.
func (s *Store) connectionLost(err error) {
	if _, ok := errors.AsType[*pgconn.PgError](err); ok || errors.Is(err, context.Canceled) {
		return
	}
	now := time.Now().UnixNano()
	last := s.resetAt.Load()
	if now-last < int64(time.Second) || !s.resetAt.CompareAndSwap(last, now) {
		return
	}
	s.pool.Reset()
}

// Close stops the group-commit writers, if any, after their batches in
// flight; call it once nothing inserts any more.
func (s *Store) Close() {
	if s.group != nil {
		s.group.close()
	}
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// ErrInvalid wraps a database error that blames the message itself (a
// check or a type the form checks let through), not the database: storing
// it again would fail again.
var ErrInvalid = errors.New("the database refused the message")

// ErrSchemaBehind wraps a database error that says a table, column or
// function the query names does not exist: the database has not been
// migrated to what this binary needs (inbox migrate up).
var ErrSchemaBehind = errors.New("the database schema is behind this binary: run inbox migrate up")

// classify wraps err with ErrInvalid or ErrSchemaBehind when PostgreSQL's
// answer says which.
func classify(err error) error {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	switch {
	case !ok:
		return err
	case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"):
		// Class 22 (data exception) or 23 (integrity constraint).
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case pe.Code == "42P01", pe.Code == "42703", pe.Code == "42883":
		// undefined_table, undefined_column, undefined_function.
		return fmt.Errorf("%w: %w", ErrSchemaBehind, err)
	}
	return err
}

// SchemaVersion returns the latest migration applied to the database, 0
// when none is (not even goose's table exists).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	v, err := s.q.GetSchemaVersion(ctx)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42P01" {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// InsertInboundMessage stores m unless a message with the same sid
// (m.Metadata.MessageSID) is already stored. inserted is true, with the new
// row's id, only for the one call that stored it; every other call for that
// sid, concurrent or later, gets inserted == false and a nil error. The
// database decides through its unique index: there is no lookup first.
//
// With JobAttempts, the statement inserts the message's job when, and only
// when, it stores the message. With Writers, concurrent calls are committed
// together (see Options); each still learns its own outcome, and a call
// whose ctx ends while its group is in flight returns ctx's error although
// the group may still commit its row.
func (s *Store) InsertInboundMessage(ctx context.Context, m db.InsertInboundMessageParams) (id int64, inserted bool, err error) {
	switch {
	case s.group != nil:
		id, inserted, err = s.group.insert(ctx, m)
	case s.jobAttempts == 0:
		id, inserted, err = fromRow(s.q.InsertInboundMessage(ctx, m))
	default: // a group of one
		var rs []insertResult
		if rs, err = sendBatch(ctx, s.q, s.jobAttempts, []db.InsertInboundMessageParams{m}); err == nil {
			id, inserted = rs[0].id, rs[0].inserted
		}
	}
	if err != nil {
		return 0, false, fmt.Errorf("insert inbound message %s: %w", m.Metadata.MessageSID, classify(err))
	}
	return id, inserted, nil
}

// fromRow reads an INSERT … ON CONFLICT DO NOTHING RETURNING id: a row is
// new, none a duplicate.
func fromRow(id int64, err error) (int64, bool, error) {
	switch {
	case err == nil:
		return id, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	default:
		return 0, false, err
	}
}

// GetMessageBySID returns the message with Twilio sid sid, or ErrNotFound.
func (s *Store) GetMessageBySID(ctx context.Context, sid string) (db.Message, error) {
	m, err := s.q.GetMessageBySID(ctx, sid)
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, pgx.ErrNoRows):
		return db.Message{}, fmt.Errorf("get message %s: %w", sid, ErrNotFound)
	default:
		return db.Message{}, fmt.Errorf("get message %s: %w", sid, err)
	}
}

// CountMessagesBySIDs returns how many stored messages have one of sids.
func (s *Store) CountMessagesBySIDs(ctx context.Context, sids []string) (int64, error) {
	n, err := s.q.CountMessagesBySIDs(ctx, sids)
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}

// StatusResult says what a status callback changed.
type StatusResult struct {
	// NewEvent is true when this callback is the first to report its status
	// for its message; false for a repeat.
	NewEvent bool
	// Moved is true when the message's current status became this status
	// (or the outbound row was created with it); false for a repeat or a
	// status that ranks below the current one.
	Moved bool
}

// RecordStatus stores a delivery status callback in one transaction: the
// (sid, status) event at most once, and the message's current status moved
// only forward (see message_status_rank), creating the outbound message on
// its first callback. With jobs, the statement that moves a status inserts
// its job too. Concurrent and out-of-order callbacks for the same
// message end in the same state whatever their order.
func (s *Store) RecordStatus(ctx context.Context, ev db.InsertStatusEventParams, msg db.UpsertOutboundStatusParams) (StatusResult, error) {
	var res StatusResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		_, err := q.InsertStatusEvent(ctx, ev)
		switch {
		case err == nil:
			res.NewEvent = true
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("insert status event: %w", err)
		}
		msg.MaxAttempts = s.jobAttempts // 0: no job
		_, err = q.UpsertOutboundStatus(ctx, msg)
		switch {
		case err == nil:
			res.Moved = true
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("upsert outbound status: %w", err)
		}
		return nil
	})
	if err != nil {
		return StatusResult{}, fmt.Errorf("record status %s of %s: %w", ev.Status, ev.MessageSID, classify(err))
	}
	return res, nil
}

// ListStatusEvents returns up to limit status events of a message, in the
// order they arrived.
func (s *Store) ListStatusEvents(ctx context.Context, sid string, limit int32) ([]db.MessageStatusEvent, error) {
	evs, err := s.q.ListStatusEvents(ctx, db.ListStatusEventsParams{MessageSID: sid, MaxRows: limit})
	if err != nil {
		return nil, fmt.Errorf("list status events of %s: %w", sid, err)
	}
	return evs, nil
}

// MessageReceivedPayload returns the JSON forwarded for the newly stored
// message sid (README, "The forward"), with id as its id, or ErrNotFound.
func (s *Store) MessageReceivedPayload(ctx context.Context, id, sid string) ([]byte, error) {
	p, err := s.q.GetMessageReceivedPayload(ctx, db.GetMessageReceivedPayloadParams{ID: id, SID: sid})
	return payload(p, err, "message "+sid)
}

// StatusChangedPayload returns the JSON forwarded for the message sid's
// change to status, with id as its id, or ErrNotFound.
func (s *Store) StatusChangedPayload(ctx context.Context, id, sid, status string) ([]byte, error) {
	p, err := s.q.GetStatusChangedPayload(ctx, db.GetStatusChangedPayloadParams{ID: id, SID: sid, Status: status})
	return payload(p, err, "status "+status+" of "+sid)
}

func payload(p string, err error, what string) ([]byte, error) {
	switch {
	case err == nil:
		return []byte(p), nil
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("payload of %s: %w", what, ErrNotFound)
	default:
		return nil, fmt.Errorf("payload of %s: %w", what, err)
	}
}
