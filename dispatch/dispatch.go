// Package dispatch runs the queue's forward jobs: it loads what a job
// names, passes the gate every forward passes (held while forwarding is
// paused, spaced by the delivery rate, counted by the circuit breaker),
// hands the event to the destination's Sender, and settles a failure by
// the queue's one verdict (queue.Job.Classify): the same metrics and log
// lines for a message alone, a batch's message and a status change.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"inbox/destination"
	"inbox/job"
	"inbox/message"
	"inbox/metrics"
	"inbox/queue"
	"inbox/store"
)

// Store is what the workers read: the events' payloads and the
// operator's controls.
type Store interface {
	MessageReceivedPayload(ctx context.Context, id, sid string) ([]byte, error)
	MessageReceivedPayloads(ctx context.Context, sids []string) (map[string][]byte, error)
	StatusChangedPayload(ctx context.Context, id, sid, status string) ([]byte, error)
	ForwardingControl(ctx context.Context) (store.Control, error)
	ReserveForwardSlot(ctx context.Context, maxAhead time.Duration) (reserved bool, wait time.Duration, err error)
	SettleDeliveries(ctx context.Context, dest string, sids []string, o store.Outcome) error
}

// Queue is what a batch needs of the queue: its failed messages handed to
// jobs of their own as it completes.
type Queue interface {
	HandOff(ctx context.Context, batch *queue.Job[job.Messages], hs []queue.HandOff, maxAttempts int16) error
}

// Pauser pauses forwarding, as the circuit breaker does: the operator's
// controls (control.Service).
type Pauser interface {
	Pause(ctx context.Context, reason, detail string) (changed bool, err error)
}

// Config is what New needs.
type Config struct {
	Store  Store
	Queue  Queue
	Sender destination.Sender
	// Pauser is what the circuit breaker trips.
	Pauser  Pauser
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Workers bounds the forwards in flight at once in this process, a
	// batch's included (the queue bounds the jobs).
	Workers int
	// Destination names the destination in metrics:
	// metrics.DefaultDestination for FORWARD_URL's.
	Destination string
	// BreakAfter consecutive failed attempts in this process pause
	// forwarding (FORWARD_BREAK_AFTER), until an operator resumes it; 0
	// never does.
	BreakAfter int
	// ControlRefresh is how often the workers reread the operator's
	// controls (default DefaultControlRefresh).
	ControlRefresh time.Duration
}

// Dispatcher runs the forward jobs of one destination.
type Dispatcher struct {
	name    string // its metrics label
	store   Store
	queue   Queue
	sender  destination.Sender
	logger  *slog.Logger
	metrics *metrics.Metrics
	gate    *gate
	// slots bounds the forwards batch jobs run at once in this process
	// (Workers), as the queue bounds the jobs.
	slots chan struct{}
}

// New returns the workers of cfg's destination; Register gives them to
// the queue.
func New(cfg Config) *Dispatcher {
	g := &gate{store: cfg.Store, logger: cfg.Logger, metrics: cfg.Metrics, pauser: cfg.Pauser,
		refresh: cmp.Or(cfg.ControlRefresh, DefaultControlRefresh), breakAfter: int64(cfg.BreakAfter)}
	return &Dispatcher{name: cmp.Or(cfg.Destination, metrics.DefaultDestination), store: cfg.Store, queue: cfg.Queue, sender: cfg.Sender, logger: cfg.Logger, metrics: cfg.Metrics,
		gate: g, slots: make(chan struct{}, max(1, cfg.Workers))}
}

// Close closes what the destination's Sender holds open (a broker's
// connection), if anything.
func (d *Dispatcher) Close() error {
	if c, ok := d.sender.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Register registers the forward jobs' workers: a message's own
// (job.Message), a batch's (job.Messages) and a status change's
// (job.Status).
func (d *Dispatcher) Register(ws *queue.Workers) {
	queue.Handle(ws, d.forwardMessage)
	queue.Handle(ws, d.forwardBatch)
	queue.Handle(ws, d.forwardStatus)
}

// forwardMessage runs job.Message: the forward of a new inbound message,
// alone (or a batch's, handed off or replayed).
func (d *Dispatcher) forwardMessage(ctx context.Context, j *queue.Job[job.Message]) error {
	if err := d.gate.admit(ctx); err != nil {
		return err
	}
	id := j.Args.SID
	p, err := d.store.MessageReceivedPayload(ctx, id, j.Args.SID)
	if err != nil {
		err = loadFailed("message", err)
	}
	ev := destination.Event{ID: id, Type: message.TypeReceived, Payload: p, Attempt: j.Attempt}
	if err := d.attempt(ctx, metrics.KindMessage, ev, j.CreatedAt, err, j.Classify); err != nil {
		d.failed(ctx, j.Args.SID, j.Attempt, j.Classify(err), err)
		return err
	}
	if j.Attempt == 1 {
		// Nothing was recorded of it since it was queued: its delivery is
		// in its job's state, forwarded once River completes it
		// (00017_delivery_jobs.sql), so a success costs no write.
		return nil
	}
	// An earlier attempt recorded a failure, which this success replaces.
	// If the record fails, the job runs again and its app drops the repeat
	// by webhook-id; so a completed job never leaves a failure showing.
	err = d.store.SettleDeliveries(ctx, d.name, []string{j.Args.SID}, store.Outcome{State: store.DeliveryForwarded, Attempt: j.Attempt})
	if err != nil {
		return fmt.Errorf("record the forwarded delivery of %s: %w", j.Args.SID, err)
	}
	return nil
}

// failed records a failed attempt of the message sid's delivery, by its
// verdict. The job's own outcome stands if it cannot: River retries it or
// ends it whatever this says, and the delivery shows what it last knew
// until its next attempt.
func (d *Dispatcher) failed(ctx context.Context, sid string, attempt int, v queue.Verdict, err error) {
	o := store.Outcome{State: store.DeliveryRetrying, Attempt: attempt, Error: err.Error()}
	switch v.State {
	case queue.StateCancelled:
		o.State = store.DeliveryCancelled
	case queue.StateDiscarded:
		o.State = store.DeliveryFailed
	}
	if ctx.Err() != nil {
		return // stopping: the attempt runs again
	}
	if rerr := d.store.SettleDeliveries(ctx, d.name, []string{sid}, o); rerr != nil {
		d.logger.WarnContext(ctx, "cannot record a failed delivery; it shows its previous state until its next attempt",
			"event", sid, "destination", d.name, "err", rerr)
	}
}

// forwardStatus runs job.Status: the forward of a status change.
func (d *Dispatcher) forwardStatus(ctx context.Context, j *queue.Job[job.Status]) error {
	if err := d.gate.admit(ctx); err != nil {
		return err
	}
	id := j.Args.SID + "." + j.Args.Status
	p, err := d.store.StatusChangedPayload(ctx, id, j.Args.SID, j.Args.Status)
	if err != nil {
		err = loadFailed("status change", err)
	}
	ev := destination.Event{ID: id, Type: message.TypeStatus, Payload: p, Attempt: j.Attempt}
	return d.attempt(ctx, metrics.KindStatus, ev, j.CreatedAt, err, j.Classify)
}

// loadFailed is the error of a job whose event could not be read: a
// message that is gone (deleted by retention) cannot come back, so its
// job ends; anything else is retried.
func loadFailed(what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return destination.Permanent(fmt.Errorf("load %s: %w", what, err))
	}
	return fmt.Errorf("load %s: %w", what, err)
}

// attempt sends ev unless it could not be loaded (loadErr), and settles
// the outcome: the job's own verdict decides what follows a failure.
func (d *Dispatcher) attempt(ctx context.Context, kind string, ev destination.Event, created time.Time, loadErr error,
	classify func(error) queue.Verdict) error {
	start := time.Now()
	err := loadErr
	if err == nil {
		err = d.send(ctx, ev)
	}
	if err == nil {
		d.metrics.Attempt(d.name, kind, metrics.OutcomeSuccess, time.Since(start), time.Since(created))
		return nil
	}
	d.settle(ctx, kind, ev, classify(err), err, time.Since(start))
	return err
}

// send hands ev to the sender, and tells the breaker how it went.
func (d *Dispatcher) send(ctx context.Context, ev destination.Event) error {
	err := d.sender.Send(ctx, ev)
	if err != nil {
		d.gate.failed(ctx, err)
	} else {
		d.gate.succeeded()
	}
	return err
}

// settle records a failed attempt of ev by its verdict, in the metrics
// and the log: the one failure policy of every forward. attrs add to the
// log line (a batch's id).
func (d *Dispatcher) settle(ctx context.Context, kind string, ev destination.Event, v queue.Verdict, err error, took time.Duration, attrs ...any) {
	line := append([]any{"event", ev.ID, "attempt", ev.Attempt}, attrs...)
	switch v.State {
	case queue.StateCancelled:
		d.metrics.Attempt(d.name, kind, metrics.OutcomeCancelled, took, 0)
		d.logger.ErrorContext(ctx, "processing failed for good; job cancelled", append(line, "err", err)...)
	case queue.StateDiscarded:
		d.metrics.Attempt(d.name, kind, metrics.OutcomeDiscarded, took, 0)
		d.logger.ErrorContext(ctx, "processing failed on its last attempt; job discarded", append(line, "err", err)...)
	default:
		d.metrics.Attempt(d.name, kind, metrics.OutcomeRetry, took, 0)
		d.logger.WarnContext(ctx, "processing failed; will retry", append(line, "next_attempt", v.NotBefore, "err", err)...)
	}
}
