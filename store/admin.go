package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
)

// Cursor is a position in the newest-first order of messages: the last
// message of a page.
type Cursor struct {
	ReceivedAt time.Time
	ID         int64
}

// Filter selects messages for ListMessages. Zero fields select everything.
type Filter struct {
	Direction  string
	Status     string
	From       string
	To         string
	AccountSID string
	// Since and Until bound received_at to [Since, Until).
	Since time.Time
	Until time.Time
	// After, when set, starts the page after this position.
	After *Cursor
	// Limit is the page size, at least 1.
	Limit int32
}

// endOfTime is later than any received_at: the first page's cursor, so that
// the cursor is always an index condition.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// ListMessages returns a page of messages newest first (by received_at,
// then id), which stays consistent while messages arrive: a page starts
// strictly after the cursor, so paging on skips no row that existed when
// paging began and repeats none. A filter on From, To or AccountSID uses the
// index that leads with it.
func (s *Store) ListMessages(ctx context.Context, f Filter) ([]db.Message, error) {
	before := Cursor{ReceivedAt: endOfTime, ID: math.MaxInt64}
	if f.After != nil {
		before = *f.After
	}
	if !f.Until.IsZero() && f.Until.Before(before.ReceivedAt) {
		// (received_at, id) < (until, MinInt64) is received_at < until.
		before = Cursor{ReceivedAt: f.Until, ID: math.MinInt64}
	}
	var (
		ms  []db.Message
		err error
	)
	switch {
	case f.From != "":
		ms, err = s.q.ListMessagesFrom(ctx, db.ListMessagesFromParams{
			FromAddress: f.From, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			ToAddress: optionalString(f.To), AccountSID: optionalString(f.AccountSID),
			Direction: optionalString(f.Direction), Status: optionalString(f.Status), MaxRows: f.Limit,
		})
	case f.To != "":
		ms, err = s.q.ListMessagesTo(ctx, db.ListMessagesToParams{
			ToAddress: f.To, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			AccountSID: optionalString(f.AccountSID),
			Direction:  optionalString(f.Direction), Status: optionalString(f.Status), MaxRows: f.Limit,
		})
	case f.AccountSID != "":
		ms, err = s.q.ListMessagesForAccount(ctx, db.ListMessagesForAccountParams{
			AccountSID: f.AccountSID, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			Direction: optionalString(f.Direction), Status: optionalString(f.Status), MaxRows: f.Limit,
		})
	default:
		ms, err = s.q.ListMessages(ctx, db.ListMessagesParams{
			BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			Direction: optionalString(f.Direction), Status: optionalString(f.Status), MaxRows: f.Limit,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return ms, nil
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Job is a processing job as the admin API shows it.
type Job struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	State       string     `json:"state"`
	Attempt     int16      `json:"attempt"`
	MaxAttempts int16      `json:"max_attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	AttemptedAt *time.Time `json:"attempted_at"`
	FinalizedAt *time.Time `json:"finalized_at"`
	LastError   string     `json:"last_error,omitempty"`
}

// MessageJobs returns up to limit processing jobs of the message sid (its
// forward and its status changes'), newest first.
func (s *Store) MessageJobs(ctx context.Context, sid string, limit int32) ([]Job, error) {
	rows, err := s.q.ListMessageJobs(ctx, db.ListMessageJobsParams{SID: sid, MaxRows: limit})
	if err != nil {
		return nil, fmt.Errorf("list jobs of %s: %w", sid, err)
	}
	jobs := make([]Job, len(rows))
	for i, r := range rows {
		jobs[i] = Job(r)
	}
	return jobs, nil
}

// InsertMessageJob inserts a new processing job for the stored inbound
// message sid, with maxAttempts attempts, and returns it with created true;
// while an earlier job inserted this way for sid is unfinished (waiting,
// retrying or running), it returns that job instead, with created false, so
// any number of concurrent calls make at most one new job. ErrNotFound when
// no inbound message has that sid.
func (s *Store) InsertMessageJob(ctx context.Context, sid string, maxAttempts int16) (job Job, created bool, err error) {
	r, err := s.q.InsertMessageJob(ctx, db.InsertMessageJobParams{SID: sid, MaxAttempts: maxAttempts})
	switch {
	case err == nil:
		return Job{ID: r.ID, Kind: r.Kind, State: r.State, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt,
			ScheduledAt: r.ScheduledAt, AttemptedAt: r.AttemptedAt, FinalizedAt: r.FinalizedAt, LastError: r.LastError}, r.Created, nil
	case errors.Is(err, pgx.ErrNoRows):
		return Job{}, false, fmt.Errorf("insert job for %s: %w", sid, ErrNotFound)
	default:
		return Job{}, false, fmt.Errorf("insert job for %s: %w", sid, err)
	}
}

// CountJobsByState returns the number of jobs in each River state that has
// any.
func (s *Store) CountJobsByState(ctx context.Context) (map[string]int64, error) {
	rows, err := s.q.CountJobsByState(ctx)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	counts := make(map[string]int64, len(rows))
	for _, r := range rows {
		counts[r.State] = r.Jobs
	}
	return counts, nil
}

// Deleted counts the rows one call of DeleteBefore removed, by table.
type Deleted struct {
	Messages     int64
	StatusEvents int64
	Jobs         int64
}

// Total is the rows deleted from every table.
func (d Deleted) Total() int64 { return d.Messages + d.StatusEvents + d.Jobs }

// DeleteBefore deletes up to maxRows messages received before cutoff, up to
// maxRows of their status events, and up to maxRows of this service's
// finished jobs, each in its own short statement. Call it again while
// Total is not 0.
func (s *Store) DeleteBefore(ctx context.Context, cutoff time.Time, maxRows int32) (Deleted, error) {
	var d Deleted
	var err error
	if d.Messages, err = s.q.DeleteMessagesBefore(ctx, db.DeleteMessagesBeforeParams{Before: cutoff, MaxRows: maxRows}); err != nil {
		return d, fmt.Errorf("delete messages before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	if d.StatusEvents, err = s.q.DeleteStatusEventsBefore(ctx, db.DeleteStatusEventsBeforeParams{Before: cutoff, MaxRows: maxRows}); err != nil {
		return d, fmt.Errorf("delete status events before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	if d.Jobs, err = s.q.DeleteFinishedJobsBefore(ctx, db.DeleteFinishedJobsBeforeParams{Before: cutoff, MaxRows: maxRows}); err != nil {
		return d, fmt.Errorf("delete finished jobs before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	return d, nil
}
