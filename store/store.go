// Package store is the boundary between the service and the sqlc-generated
// db package. It calls each generated query, turns "no row" into a plain
// result or ErrNotFound, and wraps every other error with the step that
// failed, so that nothing above it needs pgx to learn what happened.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/db"
)

// ErrNotFound is returned when no message (or status event) has the
// requested sid.
var ErrNotFound = errors.New("message not found")

// Store reads and writes messages through a connection pool.
type Store struct {
	pool *pgxpool.Pool
	q    *db.Queries
	jobs Jobs
}

// Jobs inserts the work that must follow a write, in the write's own
// transaction, so the work exists exactly when the write committed.
// Package process implements it with River.
type Jobs interface {
	// MessageStored enqueues the processing of a newly stored inbound message.
	MessageStored(ctx context.Context, tx pgx.Tx, sid string) error
	// StatusMoved enqueues the processing of an outbound message's new
	// current status.
	StatusMoved(ctx context.Context, tx pgx.Tx, sid, status string) error
}

// New returns a Store over pool that stores only. The caller keeps
// ownership of the pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, q: db.New(pool)}
}

// NewWithJobs returns a Store that, in the transaction of each write that
// stores a new message or moves a status, inserts its job through jobs.
func NewWithJobs(pool *pgxpool.Pool, jobs Jobs) *Store {
	return &Store{pool: pool, q: db.New(pool), jobs: jobs}
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// InsertInboundMessage stores m unless a message with the same sid
// (m.Metadata.MessageSID) is already stored. inserted is true, with the new
// row's id, only for the one call that stored it; every other call for that
// sid, concurrent or later, gets inserted == false and a nil error. The
// database decides through its unique index: there is no lookup first.
//
// With jobs (NewWithJobs), the message's job is inserted in the same
// transaction, only when the message is new: it exists exactly when the row
// does. Without, the insert is one statement.
func (s *Store) InsertInboundMessage(ctx context.Context, m db.InsertInboundMessageParams) (id int64, inserted bool, err error) {
	if s.jobs == nil {
		id, inserted, err = insertInbound(ctx, s.q, m)
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			id, inserted, err = insertInbound(ctx, s.q.WithTx(tx), m)
			if err != nil || !inserted {
				return err
			}
			if err := s.jobs.MessageStored(ctx, tx, m.Metadata.MessageSID); err != nil {
				return fmt.Errorf("enqueue processing: %w", err)
			}
			return nil
		})
	}
	if err != nil {
		return 0, false, fmt.Errorf("insert inbound message %s: %w", m.Metadata.MessageSID, err)
	}
	return id, inserted, nil
}

func insertInbound(ctx context.Context, q *db.Queries, m db.InsertInboundMessageParams) (int64, bool, error) {
	id, err := q.InsertInboundMessage(ctx, m)
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
// its first callback. With jobs, a status that moved enqueues its job in the
// same transaction. Concurrent and out-of-order callbacks for the same
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
		_, err = q.UpsertOutboundStatus(ctx, msg)
		switch {
		case err == nil:
			res.Moved = true
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("upsert outbound status: %w", err)
		}
		if res.Moved && s.jobs != nil {
			if err := s.jobs.StatusMoved(ctx, tx, ev.MessageSID, ev.Status); err != nil {
				return fmt.Errorf("enqueue processing: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return StatusResult{}, fmt.Errorf("record status %s of %s: %w", ev.Status, ev.MessageSID, err)
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

// GetStatusEvent returns the event that first reported status for the
// message sid, or ErrNotFound.
func (s *Store) GetStatusEvent(ctx context.Context, sid, status string) (db.MessageStatusEvent, error) {
	ev, err := s.q.GetStatusEvent(ctx, db.GetStatusEventParams{MessageSID: sid, Status: status})
	switch {
	case err == nil:
		return ev, nil
	case errors.Is(err, pgx.ErrNoRows):
		return db.MessageStatusEvent{}, fmt.Errorf("get status %s of %s: %w", status, sid, ErrNotFound)
	default:
		return db.MessageStatusEvent{}, fmt.Errorf("get status %s of %s: %w", status, sid, err)
	}
}
