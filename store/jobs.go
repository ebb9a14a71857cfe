package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
	"inbox/job"
)

// Job is a processing job (a row of River's river_job), as the admin API
// shows it.
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
	// Failures are the job's failed attempts, oldest first, as River
	// recorded them (without their stack traces); a job that succeeded on
	// attempt n has n-1.
	Failures []Failure `json:"failures"`
	// BatchSize is how many messages a batch job (job.Messages) forwards;
	// HandedOffBy, for a message's own job, the batch job that gave it
	// the message when its forward failed there.
	BatchSize   int32 `json:"batch_size,omitempty"`
	HandedOffBy int64 `json:"handed_off_by,omitempty"`
}

// Failure is one failed attempt of a job.
type Failure struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// MessageJobs returns up to limit processing jobs of the message sid (its
// forward and its status changes'), newest first.
func (s *Store) MessageJobs(ctx context.Context, sid string, limit int32) ([]Job, error) {
	rows, err := s.q.ListMessageJobs(ctx, db.ListMessageJobsParams{SID: sid, Kinds: job.ProcessingKinds(), MaxRows: limit})
	if err != nil {
		return nil, fail("list jobs of "+sid, err, ErrNotFound)
	}
	jobs := make([]Job, len(rows))
	for i, r := range rows {
		jobs[i] = Job{ID: r.ID, Kind: r.Kind, State: r.State, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt,
			ScheduledAt: r.ScheduledAt, AttemptedAt: r.AttemptedAt, FinalizedAt: r.FinalizedAt, LastError: r.LastError, Failures: []Failure{},
			BatchSize: r.BatchSize, HandedOffBy: r.HandedOffBy}
		if err := json.Unmarshal(r.Failures, &jobs[i].Failures); err != nil {
			return nil, fmt.Errorf("list jobs of %s: job %d's errors: %w", sid, r.ID, err)
		}
	}
	return jobs, nil
}

// InsertMessageJob inserts a new processing job for the stored inbound
// message sid, with maxAttempts attempts, and returns it with created true;
// while an earlier job inserted this way for sid is unfinished (waiting,
// retrying or running), it returns that job instead, with created false, so
// any number of concurrent calls make at most one new job. ErrNotFound when
// no inbound message has that sid.
func (s *Store) InsertMessageJob(ctx context.Context, sid string, maxAttempts int16) (j Job, created bool, err error) {
	r, err := s.q.InsertMessageJob(ctx, db.InsertMessageJobParams{SID: sid, JobKind: job.KindMessage, MaxAttempts: maxAttempts})
	if err != nil {
		return Job{}, false, fail("insert job for "+sid, err, ErrNotFound)
	}
	return Job{ID: r.ID, Kind: r.Kind, State: r.State, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt,
		ScheduledAt: r.ScheduledAt, AttemptedAt: r.AttemptedAt, FinalizedAt: r.FinalizedAt, LastError: r.LastError, Failures: []Failure{}}, r.Created, nil
}

// CountJobsByState returns the number of jobs in each River state that has
// any.
func (s *Store) CountJobsByState(ctx context.Context) (map[string]int64, error) {
	rows, err := s.q.CountJobsByState(ctx)
	if err != nil {
		return nil, fail("count jobs", err, ErrNotFound)
	}
	counts := make(map[string]int64, len(rows))
	for _, r := range rows {
		counts[r.State] = r.Jobs
	}
	return counts, nil
}

func (s *Store) deleteFinishedJobsBefore(ctx context.Context, cutoff time.Time, maxRows int32) (int64, error) {
	n, err := s.q.DeleteFinishedJobsBefore(ctx, db.DeleteFinishedJobsBeforeParams{Before: cutoff, Kinds: job.ProcessingKinds(), MaxRows: maxRows})
	if err != nil {
		return 0, fail("delete finished jobs before "+cutoff.Format(time.RFC3339), err, ErrNotFound)
	}
	return n, nil
}

// HandOff is a message of a batch job (job.Messages) that gets a forward
// job of its own.
type HandOff struct {
	SID string
	// Error is why its forward failed, as River records an attempt's; ""
	// when it failed nothing (the delivery rate spaces each forward).
	Error string
	// State is the River state its job starts in: HandOffRetry,
	// HandOffCancelled, HandOffDiscarded, or "" (available) with no Error.
	State string
	// FailedAt is when the attempt failed; NotBefore when the next may run.
	FailedAt  time.Time
	NotBefore time.Time
}

// The states a handed-off job starts in, as River names them.
const (
	HandOffRetry     = "retryable"
	HandOffCancelled = "cancelled"
	HandOffDiscarded = "discarded"
)

// HandOffForwards gives each of hs, of the batch job batch, a forward job
// of its own (job.Message, with maxAttempts attempts, the failed one
// counted), in one transaction
// with also: River's completion of the batch job, so a batch is done
// exactly when what it could not do is someone else's.
func (s *Store) HandOffForwards(ctx context.Context, batch int64, hs []HandOff, maxAttempts int16, also func(pgx.Tx) error) error {
	p := db.InsertForwardHandOffsParams{JobKind: job.KindMessage, MaxAttempts: maxAttempts, BatchID: batch,
		SIDs: make([]string, len(hs)), Errors: make([]string, len(hs)), States: make([]string, len(hs)),
		NotBefore: make([]time.Time, len(hs)), FailedAt: make([]time.Time, len(hs))}
	for i, h := range hs {
		state := h.State
		if state == "" {
			state = "available"
		}
		p.SIDs[i], p.Errors[i], p.States[i], p.NotBefore[i], p.FailedAt[i] = h.SID, h.Error, state, h.NotBefore, h.FailedAt
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(hs) > 0 {
			q := s.q.WithTx(tx)
			if err := q.InsertForwardHandOffs(ctx, p); err != nil {
				return err
			}
			if err := q.NoteHandedOff(ctx, db.NoteHandedOffParams{ID: batch, HandedOff: int32(len(hs))}); err != nil {
				return err
			}
		}
		return also(tx)
	})
	if err != nil {
		return fail(fmt.Sprintf("hand off %d forwards", len(hs)), err, ErrNotFound)
	}
	return nil
}
