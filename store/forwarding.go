package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
	"inbox/job"
)

// The reasons forwarding is paused.
const (
	PausedByOperator = "operator"
	PausedByBreaker  = "breaker"
)

// Control is the operator's controls of forwarding (forwarding_control).
type Control struct {
	// Rate is forwards a second across every worker; nil: unlimited.
	Rate *float64
	// PausedReason is PausedByOperator, PausedByBreaker, or "" when
	// forwarding runs.
	PausedReason string
	PausedDetail string
	PausedAt     *time.Time
}

// Paused reports whether forwarding is paused.
func (c Control) Paused() bool { return c.PausedReason != "" }

// ForwardingControl returns the controls as they stand.
func (s *Store) ForwardingControl(ctx context.Context) (Control, error) {
	r, err := s.q.GetForwardingControl(ctx)
	if err != nil {
		return Control{}, fail("read forwarding control", err, ErrSchemaBehind)
	}
	return Control{Rate: r.Rate, PausedReason: deref(r.PausedReason), PausedDetail: deref(r.PausedDetail), PausedAt: r.PausedAt}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// PauseForwarding records that forwarding is paused, and why, in one
// transaction with also (River's queue pause), so the two never disagree.
// A pause while paused keeps the first reason and detail; paused is true
// when this call paused it.
func (s *Store) PauseForwarding(ctx context.Context, reason, detail string, also func(pgx.Tx) error) (paused bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if paused, err = s.q.WithTx(tx).SetForwardingPaused(ctx, db.SetForwardingPausedParams{Reason: reason, Detail: optionalString(detail)}); err != nil {
			return err
		}
		return also(tx)
	})
	if err != nil {
		return false, fail("pause forwarding", err, ErrSchemaBehind)
	}
	return paused, nil
}

// ResumeForwarding clears the pause, in one transaction with also
// (River's queue resume); wasPaused is true when it was paused.
func (s *Store) ResumeForwarding(ctx context.Context, also func(pgx.Tx) error) (wasPaused bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if wasPaused, err = s.q.WithTx(tx).ClearForwardingPaused(ctx); err != nil {
			return err
		}
		return also(tx)
	})
	if err != nil {
		return false, fail("resume forwarding", err, ErrSchemaBehind)
	}
	return wasPaused, nil
}

// SetForwardRate sets the delivery rate, forwards a second across every
// worker of every process; nil lifts it.
func (s *Store) SetForwardRate(ctx context.Context, perSecond *float64) error {
	if err := s.q.SetForwardingRate(ctx, perSecond); err != nil {
		return fail("set forwarding rate", err, ErrSchemaBehind)
	}
	return nil
}

// ReserveForwardSlot takes the next slot of the delivery rate when it is
// at most maxAhead away: reserved, and the forward may go in wait. When the
// next free slot is further, nothing is taken: reserved is false and wait
// is how long until it frees. Without a rate, reserved with no wait.
func (s *Store) ReserveForwardSlot(ctx context.Context, maxAhead time.Duration) (reserved bool, wait time.Duration, err error) {
	r, err := s.q.ReserveForwardSlot(ctx, maxAhead.Seconds())
	if err != nil {
		return false, 0, fail("reserve a forwarding slot", err, ErrSchemaBehind)
	}
	return r.Reserved, time.Duration(r.WaitSeconds * float64(time.Second)), nil
}

// RetryRun is a bulk retry of failed forwards (forward_retries).
type RetryRun struct {
	ID int64 `json:"id"`
	// Filter is the message filter the run covers, as JSON, as the caller
	// gave it.
	Filter      json.RawMessage `json:"filter"`
	RequestedAt time.Time       `json:"requested_at"`
	// Matched counts the failed forwards found; Retried those given a new
	// job (the rest already had an unfinished replay).
	Matched    int32      `json:"matched"`
	Retried    int32      `json:"retried"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error,omitempty"`
}

func toRun(r db.GetForwardRetryRow) RetryRun {
	return RetryRun{ID: r.ID, Filter: r.Filter, RequestedAt: r.RequestedAt, Matched: r.Matched, Retried: r.Retried,
		FinishedAt: r.FinishedAt, Error: r.Error}
}

// StartForwardRetry records a bulk retry over filter (JSON) and calls
// insert, in the same transaction, to insert its job. When insert reports
// that a run is already under way (dup), the new record is rolled back and
// that run is returned, with created false.
func (s *Store) StartForwardRetry(ctx context.Context, filter []byte,
	insert func(tx pgx.Tx, runID int64) (existing int64, dup bool, err error)) (run RetryRun, created bool, err error) {
	var existing int64
	errDup := errors.New("a bulk retry is under way")
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := s.q.WithTx(tx).InsertForwardRetry(ctx, filter)
		if err != nil {
			return err
		}
		run = toRun(db.GetForwardRetryRow(r))
		var dup bool
		if existing, dup, err = insert(tx, r.ID); err != nil {
			return err
		} else if dup {
			return errDup
		}
		return nil
	})
	if errors.Is(err, errDup) {
		run, err = s.ForwardRetry(ctx, existing)
		return run, false, err
	}
	if err != nil {
		return RetryRun{}, false, fail("start a bulk retry", err, ErrSchemaBehind)
	}
	return run, true, nil
}

// AddForwardRetryProgress adds a page's counts to the run id.
func (s *Store) AddForwardRetryProgress(ctx context.Context, id int64, matched, retried int32) error {
	if err := s.q.AddForwardRetryProgress(ctx, db.AddForwardRetryProgressParams{ID: id, Matched: matched, Retried: retried}); err != nil {
		return fail("record bulk retry "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return nil
}

// FinishForwardRetry records that the run id ended, with errText when it
// ended short of its filter, in one transaction with also (River's
// completion of the run's job, so no moment has the run finished and its
// job still holding the one-at-a-time slot); also may be nil.
func (s *Store) FinishForwardRetry(ctx context.Context, id int64, errText string, also func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.q.WithTx(tx).FinishForwardRetry(ctx, db.FinishForwardRetryParams{ID: id, Error: optionalString(errText)}); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err != nil {
		return fail("finish bulk retry "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return nil
}

// ForwardRetry returns the run id; ErrNotFound when there is none.
func (s *Store) ForwardRetry(ctx context.Context, id int64) (RetryRun, error) {
	r, err := s.q.GetForwardRetry(ctx, id)
	if err != nil {
		return RetryRun{}, fail("read bulk retry "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return toRun(r), nil
}

// ForwardRetries returns the latest limit runs, newest first.
func (s *Store) ForwardRetries(ctx context.Context, limit int32) ([]RetryRun, error) {
	rows, err := s.q.ListForwardRetries(ctx, limit)
	if err != nil {
		return nil, fail("list bulk retries", err, ErrNotFound)
	}
	runs := make([]RetryRun, len(rows))
	for i, r := range rows {
		runs[i] = toRun(db.GetForwardRetryRow(r))
	}
	return runs, nil
}

// ForwardStats is the state of the forwards' queue.
type ForwardStats struct {
	// Unfinished counts the forwards not done yet, by River state
	// (available, scheduled, retryable, running, pending).
	Unfinished map[string]int64
	// OldestDue is when the longest-waiting due forward became due: the
	// lag is its age (zero when none waits).
	OldestDue time.Time
	// Finished counts the forwards that ended since the time asked for, by
	// River state (completed, discarded, cancelled), each at most the cap
	// asked for.
	Finished map[string]int64
}

// ForwardStats returns the state of queue's forwards, and the outcomes of
// those that ended since since, each count capped at capAt.
func (s *Store) ForwardStats(ctx context.Context, queue string, since time.Time, capAt int32) (ForwardStats, error) {
	kinds := job.ProcessingKinds()
	st := ForwardStats{Unfinished: map[string]int64{}, Finished: map[string]int64{}}
	unfinished, err := s.q.CountUnfinishedForwards(ctx, db.CountUnfinishedForwardsParams{Queue: queue, Kinds: kinds})
	if err != nil {
		return st, fail("count unfinished forwards", err, ErrNotFound)
	}
	for _, r := range unfinished {
		st.Unfinished[r.State] = r.Jobs
	}
	if st.OldestDue, err = s.q.OldestAvailableForward(ctx, db.OldestAvailableForwardParams{Queue: queue, Kinds: kinds}); err != nil {
		return st, fail("find the oldest due forward", err, ErrNotFound)
	}
	finished, err := s.q.CountFinishedForwardsSince(ctx, db.CountFinishedForwardsSinceParams{Since: since, Kinds: kinds, MaxCount: capAt})
	if err != nil {
		return st, fail(fmt.Sprintf("count forwards finished since %s", since.Format(time.RFC3339)), err, ErrNotFound)
	}
	for _, r := range finished {
		st.Finished[r.State] = r.Jobs
	}
	return st, nil
}

// ForwardStatesOf returns the forward state of each of sids (at most
// 1000), by sid.
func (s *Store) ForwardStatesOf(ctx context.Context, sids []string) (map[string]string, error) {
	rows, err := s.q.ForwardStates(ctx, sids)
	if err != nil {
		return nil, fail("read forward states", err, ErrNotFound)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.SID] = r.State
	}
	return out, nil
}
