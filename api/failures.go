package api

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// failureSummaryInterval is how often, at most, an outage of the database
// is logged while it lasts.
const failureSummaryInterval = 10 * time.Second

// failureLog keeps an outage of the database from flooding the log: a 7 s
// outage once wrote 92 000 ERROR lines, one per 503. It logs the first
// failure in full, then at most one summary per interval (how many failed
// since the last line, and the last error), and one line when a request
// reaches the database again. It is safe for concurrent use.
type failureLog struct {
	interval time.Duration
	now      func() time.Time

	failing atomic.Bool // read on every success: the only cost on the hot path

	mu         sync.Mutex
	lastLine   time.Time
	unlogged   int   // failures since the last line
	total      int   // failures since the outage began
	lastErr    error // the latest of them
	lastReason string
}

func newFailureLog() *failureLog {
	return &failureLog{interval: failureSummaryInterval, now: time.Now}
}

// failed records a request that could not reach the database.
func (f *failureLog) failed(ctx context.Context, logger *slog.Logger, status int, reason string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.total++
	if !f.failing.Load() {
		f.failing.Store(true)
		f.lastLine, f.unlogged = now, 0
		logger.ErrorContext(ctx, "request failed", "status", status, "reason", reason, "err", err)
		return
	}
	f.unlogged++
	f.lastErr, f.lastReason = err, reason
	if now.Sub(f.lastLine) >= f.interval {
		logger.ErrorContext(ctx, "requests still failing", "status", status, "failed", f.unlogged,
			"since", now.Sub(f.lastLine).Round(time.Millisecond).String(), "reason", f.lastReason, "last_err", f.lastErr)
		f.lastLine, f.unlogged = now, 0
	}
}

// succeeded records a request that reached the database, ending an outage
// if one was being logged.
func (f *failureLog) succeeded(ctx context.Context, logger *slog.Logger) {
	if !f.failing.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing.Load() {
		return
	}
	f.failing.Store(false)
	logger.InfoContext(ctx, "database reachable again", "failed_during_outage", f.total, "not_logged", f.unlogged)
	f.total, f.unlogged, f.lastErr = 0, 0, nil
}
