package dispatch

import (
	"context"
	"sync"
	"time"
)

// A group commit's batch is owed to every matching destination, each by a
// job of its own queue, and those jobs commit together and are taken within
// milliseconds of each other. Each would build the same forwards in SQL
// (message_payload, about 12 µs a message): with three destinations, most
// of what the fan-out adds to PostgreSQL (docs/benchmarks.md). The batch's
// forwards are therefore built once per process and shared, for a short
// while, by every destination's workers; each destination still signs and
// sends its own.
const (
	// sharedPayloadTTL is how long a forward built for one destination
	// serves the others: long enough for the sibling jobs of a batch, short
	// enough that no later attempt sees an old message.
	sharedPayloadTTL = 10 * time.Second
	// sharedPayloads bounds the forwards kept (about 1.5 KB each).
	sharedPayloads = 4096
)

// SharePayloads returns st with its batch forwards (MessageReceivedPayloads)
// built once for every destination of this process, as above: give it to
// every Dispatcher. A message's forward is the same JSON for every
// destination (docs/destinations.md); a retry (a message's own job) reads
// its message afresh.
func SharePayloads(st Store) Store {
	return &sharedStore{Store: st, entries: map[string]*sharedPayload{}, ring: make([]ringSlot, sharedPayloads)}
}

type sharedStore struct {
	Store
	mu      sync.Mutex
	entries map[string]*sharedPayload
	// ring evicts the oldest entry when a new one needs its slot.
	ring []ringSlot
	next int
}

type ringSlot struct {
	sid string
	p   *sharedPayload
}

// sharedPayload is one message's forward, being read (done open) or read.
type sharedPayload struct {
	done    chan struct{}
	payload []byte // nil: no such message (deleted by retention)
	failed  bool   // the read failed: whoever waited reads it again
	at      time.Time
}

func (s *sharedStore) MessageReceivedPayloads(ctx context.Context, sids []string) (map[string][]byte, error) {
	mine, theirs := s.claim(sids)
	out := make(map[string][]byte, len(sids))
	if len(mine) > 0 {
		if err := s.build(ctx, mine, out); err != nil {
			return nil, err
		}
	}
	var again []string
	for sid, e := range theirs {
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		switch {
		case e.failed:
			again = append(again, sid)
		case e.payload != nil:
			out[sid] = e.payload
		}
	}
	if len(again) == 0 {
		return out, nil
	}
	got, err := s.Store.MessageReceivedPayloads(ctx, again)
	if err != nil {
		return nil, err
	}
	for sid, p := range got {
		out[sid] = p
	}
	return out, nil
}

// claim returns the entries of sids this call is to build (new, expired
// or failed ones, now marked as being built by it) and those another call
// built or is building.
func (s *sharedStore) claim(sids []string) (mine map[string]*sharedPayload, theirs map[string]*sharedPayload) {
	now := time.Now()
	mine, theirs = map[string]*sharedPayload{}, map[string]*sharedPayload{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sid := range sids {
		if _, ok := mine[sid]; ok {
			continue
		}
		if e, ok := s.entries[sid]; ok && !e.failed && now.Sub(e.at) < sharedPayloadTTL {
			theirs[sid] = e
			continue
		}
		e := &sharedPayload{done: make(chan struct{}), at: now}
		s.entries[sid] = e
		if old := s.ring[s.next]; old.p != nil && s.entries[old.sid] == old.p {
			delete(s.entries, old.sid)
		}
		s.ring[s.next] = ringSlot{sid: sid, p: e}
		s.next = (s.next + 1) % len(s.ring)
		mine[sid] = e
	}
	return mine, theirs
}

// build reads the forwards of the entries mine into out, and hands them
// (or the failure) to whoever waits for them.
func (s *sharedStore) build(ctx context.Context, mine map[string]*sharedPayload, out map[string][]byte) error {
	sids := make([]string, 0, len(mine))
	for sid := range mine {
		sids = append(sids, sid)
	}
	got, err := s.Store.MessageReceivedPayloads(ctx, sids)
	s.mu.Lock() // failed is read under it
	for sid, e := range mine {
		if err != nil {
			e.failed = true
		} else {
			e.payload = got[sid]
		}
		close(e.done)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for sid, p := range got {
		out[sid] = p
	}
	return nil
}
