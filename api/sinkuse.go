package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"inbox/store"
)

// The Event Streams sink counts as in use while a batch arrived within
// sinkInUseFor, in any process; each process rereads that at most every
// sinkUseRefresh, and records its own batches at most every sinkUseMark.
const (
	sinkInUseFor   = 24 * time.Hour
	sinkUseRefresh = 10 * time.Second
	sinkUseMark    = time.Minute
	sinkUseTimeout = time.Second
)

// sinkUse says whether the Event Streams sink is in use, so that a
// webhook's repeat pays for the statement that completes a message an
// event stored first only where events arrive: a deployment without a
// sink answers repeats as fast as before (docs/benchmarks.md). Within
// sinkUseRefresh of the first batch a replica has not yet learned it, and
// a repeat there adds nothing: the event's message keeps the event's
// fields.
type sinkUse struct {
	store *store.Store
	// seen is the last answer, read at readAt; reading is set while one
	// request rereads it and the others use the last.
	mu      sync.Mutex
	seen    bool
	readAt  time.Time
	reading atomic.Bool
	// markedAt is when this process last recorded a batch.
	markedAt atomic.Int64
}

// inUse reports whether a batch arrived recently, as last read; one caller
// rereads it when it is older than sinkUseRefresh, the others meanwhile
// use what was read before.
func (u *sinkUse) inUse(ctx context.Context) bool {
	u.mu.Lock()
	seen, fresh := u.seen, time.Since(u.readAt) < sinkUseRefresh
	u.mu.Unlock()
	if fresh || !u.reading.CompareAndSwap(false, true) {
		return seen
	}
	defer u.reading.Store(false)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sinkUseTimeout)
	defer cancel()
	now := time.Now()
	got, err := u.store.EventStreamsSeenSince(rctx, now.Add(-sinkInUseFor))
	if err != nil {
		requestLogger(ctx).WarnContext(ctx, "cannot read whether Event Streams are in use; the last answer stands", "err", err)
		got = seen
	}
	u.mu.Lock()
	u.seen = got || u.seen && time.Since(u.readAt) < sinkInUseFor
	u.readAt = now
	seen = u.seen
	u.mu.Unlock()
	return seen
}

// marked records that a batch arrived: in this process at once, in the
// database at most every sinkUseMark.
func (u *sinkUse) marked(ctx context.Context) error {
	u.mu.Lock()
	u.seen = true
	u.mu.Unlock()
	last := u.markedAt.Load()
	now := time.Now().UnixNano()
	if time.Duration(now-last) < sinkUseMark || !u.markedAt.CompareAndSwap(last, now) {
		return nil
	}
	if err := u.store.MarkEventStreamsSeen(ctx); err != nil {
		u.markedAt.Store(last) // the next batch tries again
		return err
	}
	return nil
}
