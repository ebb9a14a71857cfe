package process

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"inbox/job"
	"inbox/message"
	"inbox/metrics"
	"inbox/store"
)

// messagesWorker runs job.Messages: the forwards of the new messages a
// group commit stored together, in one job. Each message is forwarded as
// if alone (its own event, id and signature; the breaker counts each), at
// once and at most Workers at a time in the process (one that waits longer
// than slotWait for its turn gets a job of its own). The batch completes
// in one transaction that gives each message whose forward failed a job of
// its own (job.Message: retried after the policy's backoff, or cancelled
// for good), so a failure retries that message alone. Run again (after a
// crash), the batch forwards all its messages again: at least once, with
// the same webhook-id.
type messagesWorker struct {
	*worker
	river.WorkerDefaults[job.Messages]
}

func (w *messagesWorker) Work(ctx context.Context, j *river.Job[job.Messages]) error {
	ctl := w.gate.control(ctx)
	if ctl.Paused() {
		w.metrics.ForwardHeld(metrics.HeldPaused)
		return river.JobSnooze(pausedSnooze)
	}
	if ctl.Rate != nil {
		// The rate spaces every forward: each message goes to a job of its
		// own, which the gate holds to it.
		hs := make([]store.HandOff, len(j.Args.SIDs))
		now := time.Now()
		for i, sid := range j.Args.SIDs {
			hs[i] = store.HandOff{SID: sid, NotBefore: now}
		}
		return w.complete(ctx, j, hs)
	}
	payloads, err := w.store.MessageReceivedPayloads(ctx, j.Args.SIDs)
	if err != nil {
		return fmt.Errorf("load the batch's messages: %w", err)
	}
	var (
		mu     sync.Mutex
		failed []store.HandOff
		wg     sync.WaitGroup
	)
	for _, sid := range j.Args.SIDs {
		p, ok := payloads[sid]
		if !ok {
			continue // deleted by retention since: nothing to forward
		}
		wg.Go(func() {
			if h, ok := w.forward(ctx, j, sid, p); !ok {
				mu.Lock()
				failed = append(failed, h)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Stopping, or out of time: the whole batch runs again.
		return fmt.Errorf("batch of %d: %w", len(j.Args.SIDs), ctx.Err())
	}
	if len(failed) == 0 {
		return nil
	}
	return w.complete(ctx, j, failed)
}

// slotWait is how long a batch's forward waits for one of the process's
// Workers slots before it is handed to a job of its own instead, so a busy
// process runs its batches within their time, not behind each other.
const slotWait = time.Second

// forward forwards one message of the batch j, within the process's bound
// on forwards at once; ok is false when it did not, with the job it needs.
func (w *messagesWorker) forward(ctx context.Context, j *river.Job[job.Messages], sid string, payload []byte) (h store.HandOff, ok bool) {
	wait := time.NewTimer(slotWait)
	defer wait.Stop()
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-wait.C:
		return store.HandOff{SID: sid, NotBefore: time.Now()}, false
	case <-ctx.Done():
		return store.HandOff{}, true // the batch runs again
	}
	start := time.Now()
	err := w.processor.Process(ctx, Event{ID: sid, Type: message.TypeReceived, Payload: payload, Attempt: j.Attempt})
	if err == nil {
		w.gate.succeeded()
		w.metrics.Attempt(metrics.KindMessage, metrics.OutcomeSuccess, time.Since(start), time.Since(j.CreatedAt))
		return store.HandOff{}, true
	}
	if ctx.Err() != nil {
		return store.HandOff{}, true // the batch runs again
	}
	w.gate.failed(ctx, err)
	now := time.Now()
	h = store.HandOff{SID: sid, Error: err.Error(), FailedAt: now, NotBefore: now, State: store.HandOffRetry}
	if _, isCancel := errors.AsType[*river.JobCancelError](err); isCancel {
		h.State = store.HandOffCancelled
		w.metrics.Attempt(metrics.KindMessage, metrics.OutcomeCancelled, time.Since(start), 0)
		w.logger.ErrorContext(ctx, "processing failed for good; job cancelled", "event", sid, "attempt", j.Attempt, "batch", j.ID, "err", err)
		return h, false
	}
	// The message's next attempt, as its own job's would be: the policy's
	// backoff after a first failure, or later if the app asked.
	h.NotBefore = w.policy.NextRetry(&rivertype.JobRow{Attempt: 1, AttemptedAt: &now, MaxAttempts: j.MaxAttempts,
		Errors: []rivertype.AttemptError{{At: now, Attempt: 1, Error: h.Error}}})
	if ra, isRA := errors.AsType[*retryAfterError](err); isRA {
		if nb := now.Add(min(ra.d, MaxRetryAfter)); nb.After(h.NotBefore) {
			h.NotBefore = nb
		}
	}
	if j.MaxAttempts <= 1 {
		// No attempt left: its job is discarded at once, as its own job's
		// last failure would be.
		h.State = store.HandOffDiscarded
		w.metrics.Attempt(metrics.KindMessage, metrics.OutcomeDiscarded, time.Since(start), 0)
		w.logger.ErrorContext(ctx, "processing failed on its last attempt; job discarded", "event", sid, "attempt", 1, "batch", j.ID, "err", err)
		return h, false
	}
	w.metrics.Attempt(metrics.KindMessage, metrics.OutcomeRetry, time.Since(start), 0)
	w.logger.WarnContext(ctx, "processing failed; will retry", "event", sid, "attempt", 1, "max_attempts", j.MaxAttempts, "batch", j.ID, "err", err)
	return h, false
}

// complete hands hs off to jobs of their own and completes the batch j, in
// one transaction.
func (w *messagesWorker) complete(ctx context.Context, j *river.Job[job.Messages], hs []store.HandOff) error {
	return w.store.HandOffForwards(ctx, j.ID, hs, int16(j.MaxAttempts), func(tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, j)
		return err
	})
}
