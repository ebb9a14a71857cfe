package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"inbox/db"
	"inbox/tally"
)

// AddCounts adds a process's per-minute counts (tally.Tally's flush).
func (s *Store) AddCounts(ctx context.Context, cs []tally.Count) error {
	p := db.AddTalliesParams{Minutes: make([]time.Time, len(cs)), Series: make([]string, len(cs)), Labels: make([]string, len(cs)), Ns: make([]int64, len(cs))}
	for i, c := range cs {
		p.Minutes[i], p.Series[i], p.Labels[i], p.Ns[i] = c.Minute, c.Series, c.Label, c.N
	}
	if err := s.q.AddTallies(ctx, p); err != nil {
		return fail("add the overview's counts", err, ErrSchemaBehind)
	}
	return nil
}

// AddDuplicates adds duplicate deliveries dropped to their messages'
// counts (tally.Tally's flush).
func (s *Store) AddDuplicates(ctx context.Context, ds []tally.Duplicates) error {
	p := db.AddDuplicateDeliveriesParams{SIDs: make([]string, len(ds)), Sources: make([]string, len(ds)), Ns: make([]int64, len(ds))}
	for i, d := range ds {
		p.SIDs[i], p.Sources[i], p.Ns[i] = d.SID, d.Source, d.N
	}
	if err := s.q.AddDuplicateDeliveries(ctx, p); err != nil {
		return fail("add the duplicate deliveries dropped", err, ErrSchemaBehind)
	}
	return nil
}

// DeleteCountsBefore deletes the per-minute counts before before.
func (s *Store) DeleteCountsBefore(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.q.DeleteTalliesBefore(ctx, before)
	if err != nil {
		return 0, fail("delete old overview counts", err, ErrSchemaBehind)
	}
	return n, nil
}

// Counts returns each series' and label's counts since since, summed per
// bucket (a minute, or a divisor of an hour or a day), oldest first.
func (s *Store) Counts(ctx context.Context, since time.Time, bucket time.Duration) ([]tally.Count, error) {
	rows, err := s.q.TalliesSince(ctx, db.TalliesSinceParams{Since: since, Bucket: pgtype.Interval{Microseconds: bucket.Microseconds(), Valid: true}})
	if err != nil {
		return nil, fail("read the overview's counts", err, ErrSchemaBehind)
	}
	cs := make([]tally.Count, len(rows))
	for i, r := range rows {
		cs[i] = tally.Count{Minute: r.At, Series: r.Series, Label: r.Label, N: r.N}
	}
	return cs, nil
}

// LastCounted returns the last minute since since in which any of series
// was counted with one of labels; zero when none was.
func (s *Store) LastCounted(ctx context.Context, since time.Time, series, labels []string) (time.Time, error) {
	t, err := s.q.LastTallied(ctx, db.LastTalliedParams{Since: since, Series: series, Labels: labels})
	if err != nil {
		return time.Time{}, fail("read when the service was last reached", err, ErrSchemaBehind)
	}
	if t.Before(since) {
		return time.Time{}, nil
	}
	return t, nil
}

// DuplicateDelivery is how many duplicate deliveries of a message were
// dropped from one source, the last at LastAt.
type DuplicateDelivery struct {
	Source string
	N      int64
	LastAt time.Time
}

// DuplicateDeliveries returns the duplicate deliveries dropped for the
// message id, by source.
func (s *Store) DuplicateDeliveries(ctx context.Context, id int64) ([]DuplicateDelivery, error) {
	rows, err := s.q.DuplicateDeliveries(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read the duplicate deliveries of message %d: %w", id, err)
	}
	ds := make([]DuplicateDelivery, len(rows))
	for i, r := range rows {
		ds[i] = DuplicateDelivery{Source: r.Source, N: r.N, LastAt: r.LastAt}
	}
	return ds, nil
}
