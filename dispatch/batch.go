package dispatch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"inbox/destination"
	"inbox/job"
	"inbox/message"
	"inbox/metrics"
	"inbox/queue"
)

// slotWait is how long a batch's forward waits for one of the process's
// Workers slots before it is handed to a job of its own instead, so a busy
// process runs its batches within their time, not behind each other.
const slotWait = time.Second

// forwardBatch runs job.Messages: the forwards of the new messages a
// group commit stored together, in one job. Each message is forwarded as
// if alone (its own event, id and signature; the breaker counts each), at
// once and at most Workers at a time in the process (one that waits longer
// than slotWait for its turn gets a job of its own). The batch completes
// in one transaction that gives each message whose forward failed a job of
// its own (job.Message: retried after the backoff, or cancelled for good),
// so a failure retries that message alone. Run again (after a crash), the
// batch forwards all its messages again: at least once, with the same
// webhook-id.
func (d *Dispatcher) forwardBatch(ctx context.Context, j *queue.Job[job.Messages]) error {
	ctl, err := d.gate.hold(ctx)
	if err != nil {
		return err
	}
	if ctl.Rate != nil {
		// The rate spaces every forward: each message goes to a job of its
		// own, which the gate holds to it.
		hs := make([]queue.HandOff, len(j.Args.SIDs))
		now := time.Now()
		for i, sid := range j.Args.SIDs {
			hs[i] = queue.HandOff{SID: sid, NotBefore: now}
		}
		return d.queue.HandOff(ctx, j, hs, int16(j.MaxAttempts))
	}
	payloads, err := d.store.MessageReceivedPayloads(ctx, j.Args.SIDs)
	if err != nil {
		return fmt.Errorf("load the batch's messages: %w", err)
	}
	var (
		mu     sync.Mutex
		failed []queue.HandOff
		wg     sync.WaitGroup
	)
	for _, sid := range j.Args.SIDs {
		p, ok := payloads[sid]
		if !ok {
			continue // deleted by retention since: nothing to forward
		}
		wg.Go(func() {
			if h, ok := d.forwardOfBatch(ctx, j, sid, p); !ok {
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
		// Its deliveries are in its state: forwarded once River completes
		// it (00017_delivery_jobs.sql).
		return nil
	}
	return d.queue.HandOff(ctx, j, failed, int16(j.MaxAttempts))
}

// forwardOfBatch forwards one message of the batch j, within the
// process's bound on forwards at once; ok is false when it did not, with
// the job it needs.
func (d *Dispatcher) forwardOfBatch(ctx context.Context, j *queue.Job[job.Messages], sid string, payload []byte) (h queue.HandOff, ok bool) {
	wait := time.NewTimer(slotWait)
	defer wait.Stop()
	select {
	case d.slots <- struct{}{}:
		defer func() { <-d.slots }()
	case <-wait.C:
		return queue.HandOff{SID: sid, NotBefore: time.Now()}, false
	case <-ctx.Done():
		return queue.HandOff{}, true // the batch runs again
	}
	start := time.Now()
	ev := destination.Event{ID: sid, Type: message.TypeReceived, Payload: payload, Attempt: j.Attempt}
	err := d.send(ctx, ev)
	if err == nil {
		d.metrics.Attempt(d.name, metrics.KindMessage, metrics.OutcomeSuccess, time.Since(start), time.Since(j.CreatedAt))
		return queue.HandOff{}, true
	}
	if ctx.Err() != nil {
		return queue.HandOff{}, true // the batch runs again
	}
	// The message's verdict is its own job's first: the backoff after one
	// failure, cancelled for good, or discarded when one attempt is all.
	v := j.ClassifyFirst(err)
	ev.Attempt = 1
	d.settle(ctx, metrics.KindMessage, ev, v, err, time.Since(start), "batch", j.ID)
	now := time.Now()
	return queue.HandOff{SID: sid, Verdict: v, Error: err.Error(), FailedAt: now, NotBefore: now}, false
}
