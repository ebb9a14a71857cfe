// Package tally counts, per minute, what the console's overview charts:
// messages received by source, duplicates dropped, refusals by reason,
// status callbacks, deliveries by destination and outcome, media kept and
// failed; and, per message, the duplicate deliveries dropped. Counts
// gather in memory and are added to PostgreSQL every few seconds in one
// statement (table tallies, migration 00024), so they survive restarts and
// sum across replicas without any ingest transaction waiting on a shared
// counter row. A crash loses at most the last FlushEvery of counts.
//
// It depends on nothing of the service's own: the store implements its
// Store, and metrics tells it what it counts.
package tally

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// The series of the overview, and their labels.
const (
	Received  = "received"  // label: the source (message.Source…)
	Duplicate = "duplicate" // label: the source
	Refused   = "refused"   // label: the reason (api's refusal codes)
	Status    = "status"    // label: new or duplicate
	// Deliveries, labelled by destination ("default": FORWARD_URL).
	Delivered = "delivered"
	Retrying  = "retrying"
	Failed    = "failed"
	// LagMS sums, per destination, the milliseconds from a delivery's job
	// to its success: divided by Delivered, the mean lag.
	LagMS       = "lag_ms"
	MediaKept   = "media_kept"
	MediaFailed = "media_failed" // label: the reason
)

// The sources of Received and Duplicate (as message.Source…).
const (
	FromWebhook     = "webhook"
	FromEventStream = "event-stream"
	FromReconcile   = "reconcile"
)

// FlushEvery is how often the counts are added to the store.
const FlushEvery = 5 * time.Second

// maxKeys bounds what gathers between flushes, whatever arrives: the
// labels come from fixed sets, but a store that stays down must not make
// memory grow with the traffic. Past it, counts are dropped and the
// flush logs how many.
const maxKeys = 10_000

// keep is how long the minutes are kept: the overview's longest window,
// and a day.
const keep = 8 * 24 * time.Hour

// Count is a minute's count of a series and label.
type Count struct {
	Minute time.Time
	Series string
	Label  string
	N      int64
}

// Duplicates is how many duplicate deliveries of one message were dropped
// from one source.
type Duplicates struct {
	SID    string
	Source string
	N      int64
}

// Store keeps the counts (store.Store).
type Store interface {
	AddCounts(ctx context.Context, cs []Count) error
	AddDuplicates(ctx context.Context, ds []Duplicates) error
	DeleteCountsBefore(ctx context.Context, before time.Time) (int64, error)
}

type key struct {
	minute        time.Time
	series, label string
}

type dupKey struct{ sid, source string }

// Tally gathers counts; Run adds them to the store. Its methods do nothing
// on a nil *Tally.
type Tally struct {
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	counts  map[key]int64
	dups    map[dupKey]int64
	dropped int64
}

// New returns an empty tally; Run adds what it gathers to a store.
func New(logger *slog.Logger) *Tally {
	return &Tally{logger: logger, now: time.Now, counts: map[key]int64{}, dups: map[dupKey]int64{}}
}

// Add counts n of series, label in the current minute.
func (t *Tally) Add(series, label string, n int64) {
	if t == nil || n == 0 {
		return
	}
	k := key{t.now().UTC().Truncate(time.Minute), series, label}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.counts[k]; !ok && len(t.counts) >= maxKeys {
		t.dropped += n
		return
	}
	t.counts[k] += n
}

// Duplicate counts one duplicate delivery of the message sid from source
// dropped.
func (t *Tally) Duplicate(sid, source string) {
	if t == nil {
		return
	}
	k := dupKey{sid, source}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.dups[k]; !ok && len(t.dups) >= maxKeys {
		t.dropped++
		return
	}
	t.dups[k]++
}

// Run returns the part that adds the counts to st every FlushEvery, and
// once more as it stops; once an hour it deletes the minutes older than
// eight days. (The store records into metrics, which tell the tally: the
// store comes after the tally, hence here.)
func (t *Tally) Run(st Store) func(ctx context.Context, ready func()) error {
	return func(ctx context.Context, ready func()) error {
		ready()
		t.run(ctx, st)
		return nil
	}
}

func (t *Tally) run(ctx context.Context, st Store) {
	tick := time.NewTicker(FlushEvery)
	defer tick.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			// The last counts, with a context of their own: ctx has ended.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FlushEvery)
			defer cancel()
			t.Flush(fctx, st)
			return
		case <-tick.C:
			t.Flush(ctx, st)
			if time.Since(lastPrune) > time.Hour {
				lastPrune = time.Now()
				if _, err := st.DeleteCountsBefore(ctx, t.now().Add(-keep)); err != nil {
					t.logger.WarnContext(ctx, "deleting old overview counts", "err", err)
				}
			}
		}
	}
}

// Flush adds what has gathered to the store. What it cannot add is put
// back, to be tried at the next flush (within maxKeys).
func (t *Tally) Flush(ctx context.Context, st Store) {
	t.mu.Lock()
	counts, dups, dropped := t.counts, t.dups, t.dropped
	t.counts, t.dups, t.dropped = map[key]int64{}, map[dupKey]int64{}, 0
	t.mu.Unlock()
	if dropped > 0 {
		t.logger.WarnContext(ctx, "overview counts dropped: too many to keep before the store took them", "dropped", dropped)
	}
	if len(counts) > 0 {
		cs := make([]Count, 0, len(counts))
		for k, n := range counts {
			cs = append(cs, Count{Minute: k.minute, Series: k.series, Label: k.label, N: n})
		}
		if err := st.AddCounts(ctx, cs); err != nil {
			t.logger.WarnContext(ctx, "overview counts not stored; trying again at the next flush", "err", err)
			putBack(&t.mu, t.counts, counts)
		}
	}
	if len(dups) > 0 {
		ds := make([]Duplicates, 0, len(dups))
		for k, n := range dups {
			ds = append(ds, Duplicates{SID: k.sid, Source: k.source, N: n})
		}
		if err := st.AddDuplicates(ctx, ds); err != nil {
			t.logger.WarnContext(ctx, "duplicate counts not stored; trying again at the next flush", "err", err)
			putBack(&t.mu, t.dups, dups)
		}
	}
}

// putBack adds what a flush could not store to what gathered since, within
// maxKeys.
func putBack[K comparable](mu *sync.Mutex, into, from map[K]int64) {
	mu.Lock()
	defer mu.Unlock()
	for k, n := range from {
		if _, ok := into[k]; ok || len(into) < maxKeys {
			into[k] += n
		}
	}
}
