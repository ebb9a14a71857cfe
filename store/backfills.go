package store

import (
	"context"
	"strconv"
	"time"

	"inbox/db"
)

// Backfill is a run of a destination's backfill (00016_backfills.sql).
type Backfill struct {
	ID          int64
	Destination string
	Since       time.Time
	RequestedAt time.Time
	// Read counts the messages looked at; Queued the deliveries created
	// (the others were owed to the destination already, or did not match).
	Read, Queued int64
	FinishedAt   *time.Time
	Error        string
}

// StartBackfill records a new backfill of dest since since. Its job must
// commit with it (queue.Transact).
func (s *Store) StartBackfill(ctx context.Context, dest string, since time.Time) (Backfill, error) {
	r, err := s.q.InsertBackfill(ctx, db.InsertBackfillParams{Destination: dest, Since: since})
	if err != nil {
		return Backfill{}, fail("start a backfill of "+dest, err, ErrSchemaBehind)
	}
	return Backfill(db.GetBackfillRow(r)), nil
}

// AddBackfillProgress adds a page's counts to the run id.
func (s *Store) AddBackfillProgress(ctx context.Context, id, read, queued int64) error {
	if err := s.q.AddBackfillProgress(ctx, db.AddBackfillProgressParams{ID: id, Read: read, Queued: queued}); err != nil {
		return fail("record backfill "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return nil
}

// FinishBackfill records that the run id ended, with errText when it
// ended short.
func (s *Store) FinishBackfill(ctx context.Context, id int64, errText string) error {
	if err := s.q.FinishBackfill(ctx, db.FinishBackfillParams{ID: id, Error: optionalString(errText)}); err != nil {
		return fail("finish backfill "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return nil
}

// BackfillRun returns the run id; ErrNotFound when there is none.
func (s *Store) BackfillRun(ctx context.Context, id int64) (Backfill, error) {
	r, err := s.q.GetBackfill(ctx, id)
	if err != nil {
		return Backfill{}, fail("read backfill "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return Backfill(r), nil
}

// Backfills returns dest's latest limit runs, newest first.
func (s *Store) Backfills(ctx context.Context, dest string, limit int32) ([]Backfill, error) {
	rows, err := s.q.LatestBackfills(ctx, db.LatestBackfillsParams{Destination: dest, MaxRows: limit})
	if err != nil {
		return nil, fail("list the backfills of "+dest, err, ErrNotFound)
	}
	out := make([]Backfill, len(rows))
	for i, r := range rows {
		out[i] = Backfill(r)
	}
	return out, nil
}
