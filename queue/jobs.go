package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db/jobdb"
	"inbox/job"
	"inbox/store"
)

// riverFailure is an attempt's error as River records it in
// river_job.errors.
type riverFailure struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// JobsOf returns up to limit processing jobs of the message sid (its
// forward and its status changes'), newest first.
func (q *Queue) JobsOf(ctx context.Context, sid string, limit int32) ([]job.Info, error) {
	rows, err := q.q.ListMessageJobs(ctx, jobdb.ListMessageJobsParams{SID: sid, Kinds: job.ProcessingKinds(), MaxRows: limit})
	if err != nil {
		return nil, store.Translate("list jobs of "+sid, err)
	}
	jobs := make([]job.Info, len(rows))
	for i, r := range rows {
		jobs[i] = job.Info{ID: r.ID, Kind: r.Kind, State: r.State, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt,
			ScheduledAt: r.ScheduledAt, AttemptedAt: r.AttemptedAt, FinalizedAt: r.FinalizedAt, LastError: r.LastError,
			Failures: []job.Failure{}, BatchSize: r.BatchSize, HandedOffBy: r.HandedOffBy}
		var failures []riverFailure
		if err := json.Unmarshal(r.Failures, &failures); err != nil {
			return nil, fmt.Errorf("list jobs of %s: job %d's errors: %w", sid, r.ID, err)
		}
		for _, f := range failures {
			jobs[i].Failures = append(jobs[i].Failures, job.Failure(f))
		}
	}
	return jobs, nil
}

// Replay inserts a new forward job for the stored inbound message sid to
// the destination dest ("default" is FORWARD_URL's), with maxAttempts
// attempts, and returns it with created true; its delivery is pending
// again. While an earlier replay of sid to dest is unfinished (waiting,
// retrying or running), it returns that job instead, with created false,
// so any number of concurrent calls make at most one new job.
// store.ErrNotFound when no inbound message has that sid.
func (q *Queue) Replay(ctx context.Context, sid, dest string, maxAttempts int16) (j job.Info, created bool, err error) {
	r, err := q.q.InsertMessageJob(ctx, jobdb.InsertMessageJobParams{SID: sid, Destination: dest, JobKind: job.KindMessage, MaxAttempts: maxAttempts})
	if err != nil {
		return job.Info{}, false, store.Translate("replay "+sid+" to "+dest, err)
	}
	return job.Info{ID: r.ID, Kind: r.Kind, State: r.State, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt,
		ScheduledAt: r.ScheduledAt, AttemptedAt: r.AttemptedAt, FinalizedAt: r.FinalizedAt, LastError: r.LastError,
		Failures: []job.Failure{}}, r.Created, nil
}

// BackfillPage is where a backfill page starts and what it covers.
type BackfillPage struct {
	Destination string
	Since       time.Time
	// AfterAt and AfterID are the last message of the previous page (zero
	// for the first).
	AfterAt     time.Time
	AfterID     int64
	Size        int32
	MaxAttempts int16
}

// BackfilledPage is what a page did, and where the next starts.
type BackfilledPage struct {
	Read, Queued int64
	LastAt       time.Time
	LastID       int64
}

// Backfill owes the destination each message of the page p its rules
// match and that is not owed to it yet, with one job for them, in one
// statement (BackfillPage).
func (q *Queue) Backfill(ctx context.Context, p BackfillPage) (BackfilledPage, error) {
	r, err := q.q.BackfillPage(ctx, jobdb.BackfillPageParams{AfterAt: p.AfterAt, AfterID: p.AfterID, Since: p.Since, PageSize: p.Size,
		Destination: p.Destination, JobKind: job.KindMessage, BatchKind: job.KindMessages, MaxAttempts: p.MaxAttempts})
	if err != nil {
		return BackfilledPage{}, store.Translate("backfill a page of "+p.Destination, err)
	}
	return BackfilledPage{Read: r.Read, Queued: r.Queued, LastAt: r.LastAt, LastID: r.LastID}, nil
}

// Retry is a page of a bulk retry (RetryDeliveries).
type Retry struct {
	// MessageIDs are the page's messages; States the delivery states
	// retried; Destination, when set, the one destination retried.
	MessageIDs  []int64
	States      []string
	Destination string
	// DefaultAttempts are the new jobs' attempts for FORWARD_URL's
	// deliveries, RouteAttempts for the destinations'.
	DefaultAttempts, RouteAttempts int16
}

// RetryDeliveries gives every delivery r selects a new forward job, as
// Replay does, in one statement, and returns how many jobs it inserted
// (one whose replay already waits keeps it).
func (q *Queue) RetryDeliveries(ctx context.Context, r Retry) (int64, error) {
	var dest *string
	if r.Destination != "" {
		dest = &r.Destination
	}
	n, err := q.q.RetryDeliveries(ctx, jobdb.RetryDeliveriesParams{MessageIds: r.MessageIDs, States: r.States, Destination: dest,
		JobKind: job.KindMessage, DefaultAttempts: r.DefaultAttempts, RouteAttempts: r.RouteAttempts})
	if err != nil {
		return 0, store.Translate(fmt.Sprintf("retry the deliveries of %d messages", len(r.MessageIDs)), err)
	}
	return n, nil
}

// CountByState returns the number of jobs in each River state that has
// any.
func (q *Queue) CountByState(ctx context.Context) (map[string]int64, error) {
	rows, err := q.q.CountJobsByState(ctx)
	if err != nil {
		return nil, store.Translate("count jobs", err)
	}
	counts := make(map[string]int64, len(rows))
	for _, r := range rows {
		counts[r.State] = r.Jobs
	}
	return counts, nil
}

// DeleteFinishedBefore deletes up to maxRows of this service's processing
// jobs that finished before cutoff: retention's share of the job table.
func (q *Queue) DeleteFinishedBefore(ctx context.Context, cutoff time.Time, maxRows int32) (int64, error) {
	n, err := q.q.DeleteFinishedJobsBefore(ctx, jobdb.DeleteFinishedJobsBeforeParams{Before: cutoff, Kinds: job.ProcessingKinds(), MaxRows: maxRows})
	if err != nil {
		return 0, store.Translate("delete finished jobs before "+cutoff.Format(time.RFC3339), err)
	}
	return n, nil
}

// OwnsJobTable reports whether the role connected is River's job table's
// owner (or a member of it, a superuser included): only an owner may
// reindex it (Config.NoReindex). It is asked before New.
func OwnsJobTable(ctx context.Context, db jobdb.DBTX) (bool, error) {
	owns, err := jobdb.New(db).OwnsJobTable(ctx)
	if err != nil {
		return false, store.Translate("check who owns river_job", err)
	}
	return owns, nil
}

// HandOff is a message of a batch job (job.Messages) that gets a forward
// job of its own.
type HandOff struct {
	SID string
	// Verdict is its failed forward's, and Error why it failed; a zero
	// Verdict, with no Error, when it failed nothing (it waits for its own
	// turn): its job starts available at NotBefore.
	Verdict Verdict
	Error   string
	// FailedAt is when the attempt failed.
	FailedAt  time.Time
	NotBefore time.Time
}

// HandOff gives each of hs, messages of the batch job batch, a forward job
// of its own (job.Message, with maxAttempts attempts, the failed one
// counted), in the River state its verdict says, its delivery naming that
// job and recording the failure, in one transaction with River's
// completion of the batch: a batch is done exactly when what it could not
// do is someone else's (and the others' deliveries, still naming the
// batch, are forwarded with it).
func (q *Queue) HandOff(ctx context.Context, batch *Job[job.Messages], hs []HandOff, maxAttempts int16) error {
	p := jobdb.InsertForwardHandOffsParams{JobKind: job.KindMessage, MaxAttempts: maxAttempts, BatchID: batch.ID,
		Destination: batch.Args.Destination,
		SIDs:        make([]string, len(hs)), Errors: make([]string, len(hs)), States: make([]string, len(hs)),
		NotBefore: make([]time.Time, len(hs)), FailedAt: make([]time.Time, len(hs))}
	for i, h := range hs {
		state, nb := h.Verdict.State, h.NotBefore
		switch state {
		case "":
			state = "available"
		case StateRetry:
			nb = h.Verdict.NotBefore
		}
		p.SIDs[i], p.Errors[i], p.States[i], p.NotBefore[i], p.FailedAt[i] = h.SID, h.Error, state, nb, h.FailedAt
	}
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if len(hs) > 0 {
			jq := q.q.WithTx(tx)
			if err := jq.InsertForwardHandOffs(ctx, p); err != nil {
				return err
			}
			if err := jq.NoteHandedOff(ctx, jobdb.NoteHandedOffParams{ID: batch.ID, HandedOff: int32(len(hs))}); err != nil {
				return err
			}
		}
		return batch.complete(ctx, tx)
	})
	return store.Translate(fmt.Sprintf("hand off %d forwards", len(hs)), err)
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
func (q *Queue) ForwardStats(ctx context.Context, queue string, since time.Time, capAt int32) (ForwardStats, error) {
	kinds := job.ProcessingKinds()
	st := ForwardStats{Unfinished: map[string]int64{}, Finished: map[string]int64{}}
	unfinished, err := q.q.CountUnfinishedForwards(ctx, jobdb.CountUnfinishedForwardsParams{Queue: queue, Kinds: kinds})
	if err != nil {
		return st, store.Translate("count unfinished forwards", err)
	}
	for _, r := range unfinished {
		st.Unfinished[r.State] = r.Jobs
	}
	if st.OldestDue, err = q.q.OldestAvailableForward(ctx, jobdb.OldestAvailableForwardParams{Queue: queue, Kinds: kinds}); err != nil {
		return st, store.Translate("find the oldest due forward", err)
	}
	finished, err := q.q.CountFinishedForwardsSince(ctx, jobdb.CountFinishedForwardsSinceParams{Since: since, Kinds: kinds, MaxCount: capAt})
	if err != nil {
		return st, store.Translate(fmt.Sprintf("count forwards finished since %s", since.Format(time.RFC3339)), err)
	}
	for _, r := range finished {
		st.Finished[r.State] = r.Jobs
	}
	return st, nil
}

// Waiting returns how many deliveries (messages, a batch's each counted)
// wait or run in queue: a destination's backlog.
func (q *Queue) Waiting(ctx context.Context, queue string) (int64, error) {
	rows, err := q.q.CountUnfinishedForwards(ctx, jobdb.CountUnfinishedForwardsParams{Queue: queue, Kinds: job.ProcessingKinds()})
	if err != nil {
		return 0, store.Translate("count the jobs of queue "+queue, err)
	}
	var n int64
	for _, r := range rows {
		n += r.Jobs
	}
	return n, nil
}

// CancelWaiting cancels the jobs that wait in queue and returns how many
// it cancelled (jobs: a batch's counts once).
func (q *Queue) CancelWaiting(ctx context.Context, queue string) (int64, error) {
	n, err := q.q.CancelWaitingJobs(ctx, jobdb.CancelWaitingJobsParams{Queue: queue, Kinds: job.ProcessingKinds()})
	if err != nil {
		return 0, store.Translate("cancel the jobs of queue "+queue, err)
	}
	return n, nil
}

// Backlog returns how many deliveries (messages) wait or run in queue, and
// when the longest-waiting due one became due (now when none waits): a
// destination's backlog and lag.
func (q *Queue) Backlog(ctx context.Context, queue string) (waiting int64, oldestDue time.Time, err error) {
	if waiting, err = q.Waiting(ctx, queue); err != nil {
		return 0, time.Time{}, err
	}
	oldestDue, err = q.q.OldestAvailableForward(ctx, jobdb.OldestAvailableForwardParams{Queue: queue, Kinds: job.ProcessingKinds()})
	if err != nil {
		return 0, time.Time{}, store.Translate("find the oldest due job of queue "+queue, err)
	}
	return waiting, oldestDue, nil
}

// ReleaseHeld makes the processing jobs of queue that a rate or a pause
// snoozed due now, and returns how many: a rate lifted or changed
// releases what the old one held.
func (q *Queue) ReleaseHeld(ctx context.Context, queue string) (int64, error) {
	n, err := q.q.ReleaseHeldJobs(ctx, jobdb.ReleaseHeldJobsParams{Queue: queue, Kinds: job.ProcessingKinds()})
	if err != nil {
		return 0, store.Translate("release the held jobs of "+queue, err)
	}
	return n, nil
}
