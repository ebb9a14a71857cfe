package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"inbox/metrics"
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
	// put back for; River's scheduler makes it due again after that.
	pausedSnooze = 5 * time.Second
	// DefaultBreakAfter is FORWARD_BREAK_AFTER's default.
	DefaultBreakAfter = 50
)

// pauseForwarding pauses River's queue of forwards and records why, in one
// transaction: River stops handing its jobs to workers (every process's,
// told by notification), and the jobs stay, so nothing is lost and a
// resume sends them. A queue no worker has started yet has no row in
// River's table to pause: the recorded reason then holds it, in the
// workers' gate and when a worker starts (Client.Start).
func pauseForwarding(ctx context.Context, rc *river.Client[pgx.Tx], st *store.Store, reason, detail string) (bool, error) {
	return st.PauseForwarding(ctx, reason, detail, func(tx pgx.Tx) error {
		if err := rc.QueuePauseTx(ctx, tx, river.QueueDefault, nil); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("pause river queue: %w", err)
		}
		return nil
	})
}

// resumeForwarding undoes pauseForwarding.
func resumeForwarding(ctx context.Context, rc *river.Client[pgx.Tx], st *store.Store) (bool, error) {
	return st.ResumeForwarding(ctx, func(tx pgx.Tx) error {
		if err := rc.QueueResumeTx(ctx, tx, river.QueueDefault, nil); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("resume river queue: %w", err)
		}
		return nil
	})
}

// gate is what every forward passes before its attempt: held while
// forwarding is paused, spaced by the delivery rate, and counted by the
// circuit breaker.
type gate struct {
	store   *store.Store
	logger  *slog.Logger
	metrics *metrics.Metrics
	refresh time.Duration

	mu     sync.Mutex
	ctl    store.Control
	readAt time.Time

	// breakAfter consecutive failed attempts in this process pause
	// forwarding (0: never); trip does it.
	breakAfter int64
	failures   atomic.Int64
	trip       func(ctx context.Context, detail string) (paused bool, err error)
}

// control returns the controls, reread when older than g.refresh. One
// worker rereads while the others wait for it, so a process asks at most
// once per refresh however many workers it has. When the read fails, the
// last controls stand.
func (g *gate) control(ctx context.Context) store.Control {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.readAt) < g.refresh {
		return g.ctl
	}
	c, err := g.store.ForwardingControl(ctx)
	g.readAt = time.Now()
	if err != nil {
		g.logger.WarnContext(ctx, "cannot read the forwarding controls; the last ones read stand", "err", err)
		return g.ctl
	}
	g.ctl = c
	return c
}

// held records a pause this process made itself (the breaker's), so its
// own workers hold at once rather than at the next reread.
func (g *gate) held(c store.Control) {
	g.mu.Lock()
	g.ctl, g.readAt = c, time.Now()
	g.mu.Unlock()
}

// admit returns nil when the forward may go now, after waiting for its
// slot of the delivery rate; or River's snooze, which puts the job back
// without spending an attempt, when forwarding is paused or the slot is
// more than MaxRateWait away.
func (g *gate) admit(ctx context.Context) error {
	c := g.control(ctx)
	if c.Paused() {
		g.metrics.ForwardHeld(metrics.HeldPaused)
		return river.JobSnooze(pausedSnooze)
	}
	if c.Rate == nil {
		return nil
	}
	reserved, wait, err := g.store.ReserveForwardSlot(ctx, MaxRateWait)
	if err != nil {
		// Not the receiver's failure: try again soon, attempt unspent.
		g.logger.WarnContext(ctx, "cannot take a slot of the delivery rate; the forward is put back", "err", err)
		g.metrics.ForwardHeld(metrics.HeldRate)
		return river.JobSnooze(time.Second)
	}
	if !reserved {
		g.metrics.ForwardHeld(metrics.HeldRate)
		return river.JobSnooze(max(wait-MaxRateWait/2, 100*time.Millisecond))
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
		return river.JobSnooze(0)
	}
}

// succeeded ends a run of failures.
func (g *gate) succeeded() { g.failures.Store(0) }

// failed counts a failed attempt; the breakAfter-th in a row pauses
// forwarding, once per run of failures.
func (g *gate) failed(ctx context.Context, err error) {
	if g.breakAfter <= 0 || ctx.Err() != nil {
		return // off, or this process is stopping: not the receiver's doing
	}
	if g.failures.Add(1) != g.breakAfter {
		return
	}
	g.failures.Store(0)
	detail := fmt.Sprintf("%d consecutive failed attempts; the last: %v", g.breakAfter, err)
	// Not the job's context, which ends with the attempt.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	paused, perr := g.trip(pctx, detail)
	if perr != nil {
		g.logger.ErrorContext(ctx, "the circuit breaker could not pause forwarding", "err", perr)
		return
	}
	if !paused {
		g.logger.WarnContext(ctx, "the circuit breaker tripped while forwarding was already paused", "last_err", err)
		return
	}
	g.metrics.BreakerTripped()
	now := time.Now()
	g.held(store.Control{PausedReason: store.PausedByBreaker, PausedDetail: detail, PausedAt: &now})
	g.logger.ErrorContext(ctx, "forwarding paused by the circuit breaker: the app keeps failing",
		"consecutive_failures", g.breakAfter, "last_err", err,
		"hint", "messages are stored and wait; once the app is healthy, press Resume forwarding on the console's Forwarding page or POST /api/forwarding/resume")
}
