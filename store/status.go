package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
	"inbox/job"
	"inbox/message"
)

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
// its job too. Concurrent and out-of-order callbacks for the same message
// end in the same state whatever their order. Errors wrap ErrInvalid,
// ErrSchemaBehind or ErrUnavailable.
func (s *Store) RecordStatus(ctx context.Context, cb message.StatusCallback) (StatusResult, error) {
	var res StatusResult
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		_, err := q.InsertStatusEvent(ctx, db.InsertStatusEventParams{
			MessageSID: cb.MessageSID, Status: cb.Status, ErrorCode: cb.ErrorCode, Params: cb.Params,
		})
		switch {
		case err == nil:
			res.NewEvent = true
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("insert status event: %w", err)
		}
		_, err = q.UpsertOutboundStatus(ctx, db.UpsertOutboundStatusParams{
			AccountSID: cb.AccountSID, MessagingServiceSID: cb.MessagingServiceSID, FromAddress: cb.From, ToAddress: cb.To,
			Status: cb.Status, ErrorCode: cb.ErrorCode, Metadata: message.Metadata{MessageSID: cb.MessageSID, Params: cb.Params},
			JobKind: job.KindStatus, MaxAttempts: s.jobAttempts.forward, RouteAttempts: s.jobAttempts.route, // 0: no job
		})
		switch {
		case err == nil:
			res.Moved = true
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("upsert outbound status: %w", err)
		}
		return nil
	})
	if s.refused != nil {
		s.refused.observe(err)
	}
	if err != nil {
		return StatusResult{}, fail(fmt.Sprintf("record status %s of %s", cb.Status, cb.MessageSID), err, ErrNotFound)
	}
	return res, nil
}

// ListStatusEvents returns up to limit status events of a message, in the
// order they arrived.
func (s *Store) ListStatusEvents(ctx context.Context, sid string, limit int32) ([]message.StatusEvent, error) {
	rows, err := s.q.ListStatusEvents(ctx, db.ListStatusEventsParams{MessageSID: sid, MaxRows: limit})
	if err != nil {
		return nil, fail("list status events of "+sid, err, ErrNotFound)
	}
	evs := make([]message.StatusEvent, len(rows))
	for i, r := range rows {
		evs[i] = message.StatusEvent{ID: r.ID, MessageSID: r.MessageSID, Status: r.Status, ErrorCode: r.ErrorCode,
			ReceivedAt: r.ReceivedAt, Params: r.Params}
	}
	return evs, nil
}

// StatusChangedPayload returns the JSON forwarded for the message sid's
// change to status, with id as its id, or ErrNotFound.
func (s *Store) StatusChangedPayload(ctx context.Context, id, sid, status string) ([]byte, error) {
	p, err := s.q.GetStatusChangedPayload(ctx, db.GetStatusChangedPayloadParams{ID: id, SID: sid, Status: status})
	if err != nil {
		return nil, fail("payload of status "+status+" of "+sid, err, ErrNotFound)
	}
	return []byte(p), nil
}

func (s *Store) deleteStatusEventsBefore(ctx context.Context, cutoff time.Time, maxRows int32) (int64, error) {
	n, err := s.q.DeleteStatusEventsBefore(ctx, db.DeleteStatusEventsBeforeParams{Before: cutoff, MaxRows: maxRows})
	if err != nil {
		return 0, fail("delete status events before "+cutoff.Format(time.RFC3339), err, ErrNotFound)
	}
	return n, nil
}

// OptOutStatus is the status event an inbound message's late opt-out is
// recorded and forwarded as (InsertOptOut).
const OptOutStatus = "opt_out"

// RecordOptOut records the opt-out optOutType of the inbound message sid
// that its stored row lacks (its webhook did not carry one), with its
// forwards, once: recorded is false when the row has one already, is not
// inbound or not stored, or it was recorded before.
func (s *Store) RecordOptOut(ctx context.Context, sid, optOutType string) (recorded bool, err error) {
	_, err = s.q.InsertOptOut(ctx, db.InsertOptOutParams{OptOutType: optOutType, SID: sid, JobKind: job.KindStatus,
		MaxAttempts: s.jobAttempts.forward, RouteAttempts: s.jobAttempts.route})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fail("record the opt-out of "+sid, err, ErrNotFound)
	}
	return true, nil
}
