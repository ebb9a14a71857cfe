// Package story tells a message's story, once for every edge that shows
// it (the console's message page, GET /api/messages/{sid}): the message as
// stored, the status callbacks stored for it, its processing jobs with
// each failed attempt, and its forward's state; and finds messages, a page
// at a time, each with its forward's state.
package story

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"inbox/job"
	"inbox/message"
	"inbox/store"
)

// MaxDetailRows bounds the status events and jobs a story shows.
const MaxDetailRows = 100

// ErrNotFound: no message has the sid asked for.
var ErrNotFound = errors.New("no such message")

// Store is what a story reads of the store.
type Store interface {
	GetMessageBySID(ctx context.Context, sid string) (message.Message, error)
	ListStatusEvents(ctx context.Context, sid string, limit int32) ([]message.StatusEvent, error)
	ForwardStatesOf(ctx context.Context, sids []string) (map[string]string, error)
	DeliveriesOf(ctx context.Context, sid string) ([]store.Delivery, error)
	MediaOf(ctx context.Context, sid string) ([]store.Medium, error)
	DuplicateDeliveries(ctx context.Context, id int64) ([]store.DuplicateDelivery, error)
	ListMessages(ctx context.Context, f message.Filter) ([]message.Message, error)
}

// Jobs is what a story reads of the queue: a message's jobs.
type Jobs interface {
	JobsOf(ctx context.Context, sid string, limit int32) ([]job.Info, error)
}

// Teller tells stories.
type Teller struct {
	store Store
	jobs  Jobs
}

// New returns a Teller.
func New(st Store, jobs Jobs) *Teller { return &Teller{store: st, jobs: jobs} }

// Story is a message and what happened to it.
type Story struct {
	Message message.Message
	// Forward is its forward's state over its deliveries (destination's
	// Forward states), and Deliveries each destination's.
	Forward    string
	Deliveries []store.Delivery
	Events     []message.StatusEvent
	Jobs       []job.Info
	// Media are its media as kept here (docs/media.md), by position.
	Media []store.Medium
	// Duplicates are the duplicate deliveries of it dropped, by source
	// (counted every few seconds: the last ones may not show yet).
	Duplicates []store.DuplicateDelivery
}

// DuplicatesDropped is how many duplicate deliveries of it were dropped.
func (s Story) DuplicatesDropped() int64 {
	var n int64
	for _, d := range s.Duplicates {
		n += d.N
	}
	return n
}

// Tell returns the story of the message sid; ErrNotFound when none has it.
func (t *Teller) Tell(ctx context.Context, sid string) (Story, error) {
	m, err := t.store.GetMessageBySID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return Story{}, fmt.Errorf("%w: no message with sid %s", ErrNotFound, sid)
	} else if err != nil {
		return Story{}, err
	}
	s := Story{Message: m}
	if s.Events, err = t.store.ListStatusEvents(ctx, sid, MaxDetailRows); err != nil {
		return Story{}, err
	}
	if s.Jobs, err = t.jobs.JobsOf(ctx, sid, MaxDetailRows); err != nil {
		return Story{}, err
	}
	if s.Deliveries, err = t.store.DeliveriesOf(ctx, sid); err != nil {
		return Story{}, err
	}
	if s.Media, err = t.store.MediaOf(ctx, sid); err != nil {
		return Story{}, err
	}
	if s.Duplicates, err = t.store.DuplicateDeliveries(ctx, m.ID); err != nil {
		return Story{}, err
	}
	states, err := t.store.ForwardStatesOf(ctx, []string{sid})
	if err != nil {
		return Story{}, err
	}
	s.Forward = states[sid]
	return s, nil
}

// Find returns a page of the messages f selects, newest first.
func (t *Teller) Find(ctx context.Context, f message.Filter) ([]message.Message, error) {
	return t.store.ListMessages(ctx, f)
}

// Row is a message of a list, with its forward's state.
type Row struct {
	message.Message
	Forward string
}

// List returns a page of the messages f selects, newest first, each with
// its forward's state.
func (t *Teller) List(ctx context.Context, f message.Filter) ([]Row, error) {
	ms, err := t.store.ListMessages(ctx, f)
	if err != nil {
		return nil, err
	}
	sids := make([]string, len(ms))
	for i, m := range ms {
		sids[i] = m.SID()
	}
	states, err := t.store.ForwardStatesOf(ctx, sids)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(ms))
	for i, m := range ms {
		rows[i] = Row{Message: m, Forward: states[m.SID()]}
	}
	return rows, nil
}

// StateCount is how many of something are in a state.
type StateCount struct {
	State string
	N     int
}

// StatusForwards says what became of the forwards of an outbound message's
// status callbacks (its inbox_status jobs, at most MaxDetailRows), in a
// delivery's words: forwarded, retrying, pending, failed, cancelled. An
// outbound message has no deliveries of its own: this is its forward
// state.
func (s Story) StatusForwards() []StateCount {
	words := map[string]string{"completed": "forwarded", "retryable": "retrying", "available": "pending", "scheduled": "pending",
		"running": "pending", "pending": "pending", "discarded": "failed", "cancelled": "cancelled"}
	by := map[string]int{}
	for _, j := range s.Jobs {
		if j.Kind == job.KindStatus {
			by[cmp.Or(words[j.State], j.State)]++
		}
	}
	var out []StateCount
	for _, st := range []string{"failed", "cancelled", "retrying", "pending", "forwarded"} {
		if by[st] > 0 {
			out = append(out, StateCount{st, by[st]})
		}
	}
	return out
}
