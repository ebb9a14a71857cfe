package store

import (
	"context"
	"time"

	"inbox/db"
	"inbox/message"
)

// Sweep is an account's reconciliation state (a row of reconcile_sweeps).
type Sweep struct {
	AccountSID string
	// Watermark: every message sent before it has been listed and stored;
	// nil before the first sweep finished.
	Watermark *time.Time
	// From and To are the window of the sweep under way, and NextPageURI
	// the page it resumes at; nil and "" when none is under way.
	From, To    *time.Time
	NextPageURI string
	// Listed and Found count the messages the last (or the current) sweep
	// listed, and stored that no webhook had.
	Listed, Found int64
	LastSweepAt   *time.Time
	LastSuccessAt *time.Time
	LastError     string
}

func toSweep(r db.ReconcileSweep) Sweep {
	s := Sweep{AccountSID: r.AccountSID, Watermark: r.Watermark, From: r.SweepFrom, To: r.SweepTo, Listed: r.Listed,
		Found: r.Found, LastSweepAt: r.LastSweepAt, LastSuccessAt: r.LastSuccessAt}
	if r.NextPageURI != nil {
		s.NextPageURI = *r.NextPageURI
	}
	if r.LastError != nil {
		s.LastError = *r.LastError
	}
	return s
}

// Sweep returns an account's sweep state, or ErrNotFound before its first
// sweep.
func (s *Store) Sweep(ctx context.Context, accountSID string) (Sweep, error) {
	r, err := s.q.GetReconcileSweep(ctx, accountSID)
	if err != nil {
		return Sweep{}, fail("get the sweep of "+accountSID, err, ErrNotFound)
	}
	return toSweep(r), nil
}

// maxSweeps bounds what Sweeps reads: one row per account.
const maxSweeps = 10_000

// Sweeps returns every account's sweep state, in sid order.
func (s *Store) Sweeps(ctx context.Context) ([]Sweep, error) {
	rows, err := s.q.ListReconcileSweeps(ctx, maxSweeps)
	if err != nil {
		return nil, fail("list sweeps", err, ErrNotFound)
	}
	out := make([]Sweep, len(rows))
	for i, r := range rows {
		out[i] = toSweep(r)
	}
	return out, nil
}

// StartSweep records a new sweep of an account over [from, to], starting
// at firstPage.
func (s *Store) StartSweep(ctx context.Context, accountSID string, from, to time.Time, firstPage string) error {
	err := s.q.StartReconcileSweep(ctx, db.StartReconcileSweepParams{AccountSID: accountSID, SweepFrom: from, SweepTo: to, NextPageURI: firstPage})
	if err != nil {
		return fail("start the sweep of "+accountSID, err, ErrNotFound)
	}
	return nil
}

// Progress is where a sweep stands when it asks about a page: the page
// (which it resumes at should it stop) and what it had listed and found
// before it.
type Progress struct {
	AccountSID    string
	Page          string
	Listed, Found int64
}

// MissingMessages returns which of sids no stored message has, in one
// statement, which also records p, unless p is nil (a sweep that keeps no
// state, as `inbox reconcile` runs one).
func (s *Store) MissingMessages(ctx context.Context, sids []string, p *Progress) ([]string, error) {
	params := db.MissingMessagesParams{SIDs: sids, MaxRows: int32(len(sids))}
	if p != nil {
		params.Persist, params.AccountSID, params.ResumeURI, params.Listed, params.Found = true, p.AccountSID, p.Page, p.Listed, p.Found
	}
	missing, err := s.q.MissingMessages(ctx, params)
	if err != nil {
		return nil, fail("ask which messages are stored", err, ErrNotFound)
	}
	return missing, nil
}

// FinishSweep records that an account's sweep listed its whole window: the
// watermark moves to its end.
func (s *Store) FinishSweep(ctx context.Context, accountSID string, listed, found int64) error {
	if err := s.q.FinishReconcileSweep(ctx, db.FinishReconcileSweepParams{AccountSID: accountSID, Listed: listed, Found: found}); err != nil {
		return fail("finish the sweep of "+accountSID, err, ErrNotFound)
	}
	return nil
}

// FailSweep records why an account's sweep stopped short; it resumes where
// it stood.
func (s *Store) FailSweep(ctx context.Context, accountSID, why string) error {
	if err := s.q.FailReconcileSweep(ctx, db.FailReconcileSweepParams{AccountSID: accountSID, LastError: why}); err != nil {
		return fail("record the failed sweep of "+accountSID, err, ErrNotFound)
	}
	return nil
}

// Inserted is what InsertInboundMessages did with one message.
type Inserted struct {
	ID       int64
	Inserted bool // false: a duplicate
}

// InsertInboundMessages stores ms as one batch of InsertInboundMessage (the
// statement a webhook's delivery is stored with, its job too when the
// store has JobAttempts): one round trip, one transaction, each message
// stored or found a duplicate by the unique index. An error stored none of
// them.
func (s *Store) InsertInboundMessages(ctx context.Context, ms []message.Inbound) ([]Inserted, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	rs, err := sendInserts(ctx, s.conn, s.jobAttempts, ms)
	if err != nil {
		return nil, err
	}
	out := make([]Inserted, len(rs))
	for i, r := range rs {
		out[i] = Inserted{ID: r.id, Inserted: r.inserted}
	}
	return out, nil
}

// Unfinished is an outbound message whose status can still move.
type Unfinished struct {
	SID    string
	Status string
}

// UnfinishedOutbound returns up to limit of an account's outbound messages
// whose status can still move and has not moved since movedBefore, the
// longest unchecked first.
func (s *Store) UnfinishedOutbound(ctx context.Context, accountSID string, movedBefore time.Time, limit int32) ([]Unfinished, error) {
	rows, err := s.q.ListUnfinishedOutbound(ctx, db.ListUnfinishedOutboundParams{AccountSID: accountSID, MovedBefore: movedBefore, MaxRows: limit})
	if err != nil {
		return nil, fail("list unfinished outbound messages of "+accountSID, err, ErrNotFound)
	}
	out := make([]Unfinished, len(rows))
	for i, r := range rows {
		out[i] = Unfinished{SID: r.SID, Status: r.Status}
	}
	return out, nil
}

// MarkStatusChecked records that Twilio was just asked for these outbound
// messages' status, so the others take their turn.
func (s *Store) MarkStatusChecked(ctx context.Context, sids []string) error {
	if err := s.q.MarkStatusChecked(ctx, sids); err != nil {
		return fail("mark statuses checked", err, ErrNotFound)
	}
	return nil
}

// LockSweep takes the account's sweep lock, on a connection of its own
// held until unlock: ok is false, with nothing to unlock, when another
// session holds it (a sweep of the account is under way elsewhere). A
// process that dies releases it with its connection.
func (s *Store) LockSweep(ctx context.Context, accountSID string) (unlock func(), ok bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fail("acquire a connection for the sweep lock", err, ErrNotFound)
	}
	q := db.New(conn)
	locked, err := q.TryLockSweep(ctx, accountSID)
	if err != nil || !locked {
		conn.Release()
		if err != nil {
			return nil, false, fail("lock the sweep of "+accountSID, err, ErrNotFound)
		}
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := q.UnlockSweep(ctx, accountSID); err != nil {
			conn.Conn().Close(ctx) // the session, and with it the lock, ends
		}
		conn.Release()
	}, true, nil
}

// MessagesAwaitingMedia returns up to limit sids of the account's inbound
// messages that say they carry media but hold none (an Event Streams event
// stored them first), oldest first.
func (s *Store) MessagesAwaitingMedia(ctx context.Context, accountSID string, limit int32) ([]string, error) {
	sids, err := s.q.ListMessagesAwaitingMedia(ctx, db.ListMessagesAwaitingMediaParams{AccountSID: accountSID, MaxRows: limit})
	if err != nil {
		return nil, fail("list the messages awaiting media of "+accountSID, err, ErrNotFound)
	}
	return sids, nil
}
