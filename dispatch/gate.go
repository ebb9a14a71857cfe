package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"inbox/destination"
	"inbox/metrics"
	"inbox/queue"
	"inbox/store"
)

// The operator's controls as the workers apply them (docs/console.md).
const (
	// DefaultControlRefresh is how often a process rereads the controls:
	// a pause or a new rate reaches its workers within this (River's own
	// queue pause reaches them within milliseconds, by notification).
	DefaultControlRefresh = time.Second
	// MaxRateWait is how far ahead a worker takes a slot of the delivery
	// rate and waits for it; a job whose slot is further off is snoozed
	// (put back for later without spending an attempt) instead, so a
	// backlog held by the rate does not hold every worker.
	MaxRateWait = 2 * time.Second
	// pausedSnooze is how long a job taken while forwarding is paused is
	// put back for; the queue makes it due again after that.
	pausedSnooze = 5 * time.Second
	// DefaultBreakAfter is FORWARD_BREAK_AFTER's default.
	DefaultBreakAfter = 50
	// controlReadTimeout bounds a reread of the controls.
	controlReadTimeout = 5 * time.Second
)

// gate is what every forward passes before its attempt: held while
// forwarding is paused, spaced by the delivery rate, and counted by the
// circuit breaker.
type gate struct {
	store   Store
	logger  *slog.Logger
	metrics *metrics.Metrics
	refresh time.Duration

	// ctl is the controls as last read; reading is set while one worker
	// rereads them, and the others go on with ctl meanwhile, so a slow
	// database delays no forward but the one that reads.
	ctl     atomic.Pointer[controls]
	first   sync.Mutex // held for the first read only: nothing is known before it
	reading atomic.Bool

	// breakAfter consecutive failed attempts in this process pause
	// forwarding (0: never), through pauser.
	breakAfter int64
	failures   atomic.Int64
	pauser     Pauser
}

// controls is the operator's controls, and when they were read.
type controls struct {
	store.Control
	readAt time.Time
}

// control returns the controls, reread when older than g.refresh by one
// worker while the others use what was read before; when a read fails,
// the last controls stand. Only the first read is waited for.
func (g *gate) control(ctx context.Context) store.Control {
	c := g.ctl.Load()
	if c == nil {
		g.first.Lock()
		defer g.first.Unlock()
		if c = g.ctl.Load(); c == nil {
			g.read(ctx, &controls{})
			c = g.ctl.Load()
		}
		return c.Control
	}
	if time.Since(c.readAt) >= g.refresh && g.reading.CompareAndSwap(false, true) {
		defer g.reading.Store(false)
		g.read(ctx, c)
		c = g.ctl.Load()
	}
	return c.Control
}

// read rereads the controls; last stands (with a new time, so the next
// read waits a refresh) when it fails.
func (g *gate) read(ctx context.Context, last *controls) {
	// Not only the job's context: the read serves every worker.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), controlReadTimeout)
	defer cancel()
	c, err := g.store.ForwardingControl(rctx)
	if err != nil {
		g.logger.WarnContext(ctx, "cannot read the forwarding controls; the last ones read stand", "err", err)
		c = last.Control
	}
	g.ctl.Store(&controls{Control: c, readAt: time.Now()})
}

// held records a pause this process made itself (the breaker's), so its
// own workers hold at once rather than at the next reread.
func (g *gate) held(c store.Control) { g.ctl.Store(&controls{Control: c, readAt: time.Now()}) }

// hold returns the snooze of a forward that may not go now because
// forwarding is paused, else nil, and the controls.
func (g *gate) hold(ctx context.Context) (store.Control, error) {
	c := g.control(ctx)
	if c.Paused() {
		g.metrics.ForwardHeld(metrics.HeldPaused)
		return c, queue.Snooze(pausedSnooze)
	}
	return c, nil
}

// admit returns nil when the forward may go now, after waiting for its
// slot of the delivery rate; or the queue's snooze, which puts the job back
// without spending an attempt, when forwarding is paused or the slot is
// more than MaxRateWait away.
func (g *gate) admit(ctx context.Context) error {
	c, err := g.hold(ctx)
	if err != nil || c.Rate == nil {
		return err
	}
	reserved, wait, err := g.store.ReserveForwardSlot(ctx, MaxRateWait)
	if err != nil {
		// Not the receiver's failure: try again soon, attempt unspent.
		g.logger.WarnContext(ctx, "cannot take a slot of the delivery rate; the forward is put back", "err", err)
		g.metrics.ForwardHeld(metrics.HeldRate)
		return queue.Snooze(time.Second)
	}
	if !reserved {
		g.metrics.ForwardHeld(metrics.HeldRate)
		return queue.Snooze(max(wait-MaxRateWait/2, 100*time.Millisecond))
	}
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return queue.Snooze(0)
	}
}

// succeeded ends a run of failures.
func (g *gate) succeeded() { g.failures.Store(0) }

// failed counts a failed attempt; the breakAfter-th in a row pauses
// forwarding, once per run of failures. An error that says the
// destination is misconfigured (destination.Misconfigured) pauses it at
// once, whatever breakAfter: retrying cannot succeed until someone fixes
// it.
func (g *gate) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // this process is stopping: not the receiver's doing
	}
	var detail, why string
	switch {
	case destination.IsMisconfigured(err):
		if c := g.ctl.Load(); c != nil && c.Paused() {
			return // paused already, by this or another worker
		}
		g.failures.Store(0)
		detail, why = fmt.Sprintf("misconfigured: %v", err), "forwarding paused: the destination is misconfigured"
	case g.breakAfter <= 0 || g.failures.Add(1) != g.breakAfter:
		return
	default:
		g.failures.Store(0)
		detail, why = fmt.Sprintf("%d consecutive failed attempts; the last: %v", g.breakAfter, err), "forwarding paused by the circuit breaker: the app keeps failing"
	}
	// Not the job's context, which ends with the attempt.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	paused, perr := g.pauser.Pause(pctx, store.PausedByBreaker, detail)
	if perr != nil {
		g.logger.ErrorContext(ctx, "the circuit breaker could not pause forwarding", "err", perr)
		return
	}
	now := time.Now()
	g.held(store.Control{PausedReason: store.PausedByBreaker, PausedDetail: detail, PausedAt: &now})
	if !paused {
		g.logger.WarnContext(ctx, "the circuit breaker tripped while forwarding was already paused", "last_err", err)
		return
	}
	g.metrics.BreakerTripped()
	g.logger.ErrorContext(ctx, why, "consecutive_failures", g.breakAfter, "last_err", err,
		"hint", "messages are stored and wait; once fixed, press Resume on the console's Forwarding or destination page, or POST /api/forwarding/resume (FORWARD_URL) or /api/destinations/NAME/resume")
}
