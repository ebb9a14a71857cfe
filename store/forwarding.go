package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"inbox/db"
	"inbox/internal/clip"
)

// The reasons forwarding is paused.
const (
	PausedByOperator = "operator"
	PausedByBreaker  = "breaker"
)

// Control is the operator's controls of forwarding (forwarding_control).
type Control struct {
	// Rate is forwards a second across every worker; nil: unlimited.
	Rate *float64
	// PausedReason is PausedByOperator, PausedByBreaker, or "" when
	// forwarding runs.
	PausedReason string
	PausedDetail string
	PausedAt     *time.Time
}

// Paused reports whether forwarding is paused.
func (c Control) Paused() bool { return c.PausedReason != "" }

// ForwardingControl returns the controls as they stand.
func (s *Store) ForwardingControl(ctx context.Context) (Control, error) {
	r, err := s.q.GetForwardingControl(ctx)
	if err != nil {
		return Control{}, fail("read forwarding control", err, ErrSchemaBehind)
	}
	return Control{Rate: r.Rate, PausedReason: deref(r.PausedReason), PausedDetail: deref(r.PausedDetail), PausedAt: r.PausedAt}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// orNil is deref's inverse: "" is NULL.
func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// PauseForwarding records that forwarding is paused, and why. A pause
// while paused keeps the first reason and detail; paused is true when this
// call paused it. River's queue pause must commit with it: the queue
// adapter runs both in one transaction (queue.Transact), on a Store made
// by InTx.
func (s *Store) PauseForwarding(ctx context.Context, reason, detail string) (paused bool, err error) {
	paused, err = s.q.SetForwardingPaused(ctx, db.SetForwardingPausedParams{Reason: reason, Detail: optionalString(detail)})
	if err != nil {
		return false, fail("pause forwarding", err, ErrSchemaBehind)
	}
	return paused, nil
}

// ResumeForwarding clears the pause; wasPaused is true when it was
// paused. River's queue resume must commit with it, as for
// PauseForwarding.
func (s *Store) ResumeForwarding(ctx context.Context) (wasPaused bool, err error) {
	wasPaused, err = s.q.ClearForwardingPaused(ctx)
	if err != nil {
		return false, fail("resume forwarding", err, ErrSchemaBehind)
	}
	return wasPaused, nil
}

// SetForwardRate sets the delivery rate, forwards a second across every
// worker of every process; nil lifts it.
func (s *Store) SetForwardRate(ctx context.Context, perSecond *float64) error {
	if err := s.q.SetForwardingRate(ctx, perSecond); err != nil {
		return fail("set forwarding rate", err, ErrSchemaBehind)
	}
	return nil
}

// The delivery rates FORWARD_URL's forwards or a destination may have,
// deliveries a second. Below one every 100 s, a backlog of a few thousand
// would be held for months (and 1e-300 overflowed PostgreSQL's
// timestamps); above 100 000, no rate is meant.
const (
	MinRate = 0.01
	MaxRate = 100_000
)

// CheckRate refuses a rate outside MinRate to MaxRate, naming the range.
func CheckRate(perSecond float64) error {
	if !(perSecond >= MinRate && perSecond <= MaxRate) {
		return fmt.Errorf("a rate of %g: want %g to %d deliveries a second (or none: unlimited)", perSecond, MinRate, MaxRate)
	}
	return nil
}

// ReserveForwardSlot takes the next slot of the delivery rate when it is
// at most maxAhead away: reserved, and the forward may go in wait. When the
// next free slot is further, nothing is taken: reserved is false and wait
// is how long until it frees. Without a rate, reserved with no wait.
func (s *Store) ReserveForwardSlot(ctx context.Context, maxAhead time.Duration) (reserved bool, wait time.Duration, err error) {
	r, err := s.q.ReserveForwardSlot(ctx, maxAhead.Seconds())
	if err != nil {
		return false, 0, fail("reserve a forwarding slot", err, ErrSchemaBehind)
	}
	return r.Reserved, time.Duration(r.WaitSeconds * float64(time.Second)), nil
}

// RetryRun is a bulk retry of failed forwards (forward_retries).
type RetryRun struct {
	ID int64
	// Filter is the message filter the run covers, as JSON, as the caller
	// gave it.
	Filter      json.RawMessage
	RequestedAt time.Time
	// Matched counts the failed forwards found; Retried those given a new
	// job (the rest already had an unfinished replay).
	Matched    int32
	Retried    int32
	FinishedAt *time.Time
	Error      string
}

func toRun(r db.GetForwardRetryRow) RetryRun {
	return RetryRun{ID: r.ID, Filter: r.Filter, RequestedAt: r.RequestedAt, Matched: r.Matched, Retried: r.Retried,
		FinishedAt: r.FinishedAt, Error: r.Error}
}

// StartForwardRetry records a new bulk retry over filter (JSON). Its
// job must commit with it (queue.Transact).
func (s *Store) StartForwardRetry(ctx context.Context, filter []byte) (RetryRun, error) {
	r, err := s.q.InsertForwardRetry(ctx, filter)
	if err != nil {
		return RetryRun{}, fail("start a bulk retry", err, ErrSchemaBehind)
	}
	return toRun(db.GetForwardRetryRow(r)), nil
}

// AddForwardRetryProgress adds a page's counts to the run id.
func (s *Store) AddForwardRetryProgress(ctx context.Context, id int64, matched, retried int32) error {
	if err := s.q.AddForwardRetryProgress(ctx, db.AddForwardRetryProgressParams{ID: id, Matched: matched, Retried: retried}); err != nil {
		return fail("record bulk retry "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return nil
}

// FinishForwardRetry records that the run id ended, with errText when it
// ended short of its filter. The completion of the run's job commits with
// it (queue.Transact), so no moment has the run finished and its job still
// holding the one-at-a-time slot.
func (s *Store) FinishForwardRetry(ctx context.Context, id int64, errText string) error {
	if err := s.q.FinishForwardRetry(ctx, db.FinishForwardRetryParams{ID: id, Error: optionalString(errText)}); err != nil {
		return fail("finish bulk retry "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return nil
}

// ForwardRetry returns the run id; ErrNotFound when there is none.
func (s *Store) ForwardRetry(ctx context.Context, id int64) (RetryRun, error) {
	r, err := s.q.GetForwardRetry(ctx, id)
	if err != nil {
		return RetryRun{}, fail("read bulk retry "+strconv.FormatInt(id, 10), err, ErrNotFound)
	}
	return toRun(r), nil
}

// ForwardRetries returns the latest limit runs, newest first.
func (s *Store) ForwardRetries(ctx context.Context, limit int32) ([]RetryRun, error) {
	rows, err := s.q.ListForwardRetries(ctx, limit)
	if err != nil {
		return nil, fail("list bulk retries", err, ErrNotFound)
	}
	runs := make([]RetryRun, len(rows))
	for i, r := range rows {
		runs[i] = toRun(db.GetForwardRetryRow(r))
	}
	return runs, nil
}

// ForwardStatesOf returns the forward state of each of sids (at most
// 1000), by sid.
func (s *Store) ForwardStatesOf(ctx context.Context, sids []string) (map[string]string, error) {
	rows, err := s.q.ForwardStates(ctx, sids)
	if err != nil {
		return nil, fail("read forward states", err, ErrNotFound)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.SID] = r.State
	}
	return out, nil
}

// DefaultDestination is the destination FORWARD_URL defines, in
// deliveries and River's queues (its default queue).
const DefaultDestination = "default"

// The states of a delivery (00015_deliveries.sql): destination's Forward
// states but none.
const (
	DeliveryPending   = "pending"
	DeliveryRetrying  = "retrying"
	DeliveryForwarded = "forwarded"
	DeliveryFailed    = "failed"
	DeliveryCancelled = "cancelled"
)

// Outcome is what an attempt of a delivery came to.
type Outcome struct {
	State   string // a Delivery state
	Attempt int    // the attempt's number, from 1
	Error   string // why it failed; "" when forwarded
}

// SettleDeliveries records o as the outcome of the deliveries of sids to
// the destination dest. A message without a delivery to dest (stored
// before deliveries were recorded) is left alone.
func (s *Store) SettleDeliveries(ctx context.Context, dest string, sids []string, o Outcome) error {
	if len(sids) == 0 {
		return nil
	}
	err := s.q.SettleDeliveries(ctx, db.SettleDeliveriesParams{State: o.State, Attempt: int16(min(o.Attempt, math.MaxInt16)),
		Error: optionalString(clip.To(o.Error, maxDeliveryError)), SIDs: sids, Destination: dest})
	if err != nil {
		return fail(fmt.Sprintf("record %d deliveries to %s as %s", len(sids), dest, o.State), err, ErrNotFound)
	}
	return nil
}

// maxDeliveryError bounds the error a delivery keeps (the job keeps every
// attempt's).
const maxDeliveryError = 500

// Delivery is a message's delivery to one destination.
type Delivery struct {
	Destination string
	State       string
	Attempts    int
	Error       string
	UpdatedAt   time.Time
}

// DeliveriesOf returns the deliveries of the message sid, by destination.
func (s *Store) DeliveriesOf(ctx context.Context, sid string) ([]Delivery, error) {
	rows, err := s.q.ListDeliveries(ctx, sid)
	if err != nil {
		return nil, fail("list the deliveries of "+sid, err, ErrNotFound)
	}
	out := make([]Delivery, len(rows))
	for i, r := range rows {
		out[i] = Delivery{Destination: r.Destination, State: r.State, Attempts: int(r.Attempts), Error: r.Error, UpdatedAt: r.UpdatedAt}
	}
	return out, nil
}

// DeliveryCounts counts dest's deliveries of the messages received since
// since, by state, reading at most capAt messages.
func (s *Store) DeliveryCounts(ctx context.Context, dest string, since time.Time, capAt int32) (map[string]int64, error) {
	rows, err := s.q.CountDeliveriesSince(ctx, db.CountDeliveriesSinceParams{Since: since, MaxCount: capAt, Destination: dest})
	if err != nil {
		return nil, fail("count the deliveries to "+dest, err, ErrNotFound)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.State] = r.Deliveries
	}
	return out, nil
}

// CountUnrouted counts the inbound messages received since since that
// have no delivery, reading at most capAt messages.
func (s *Store) CountUnrouted(ctx context.Context, since time.Time, capAt int32) (int64, error) {
	n, err := s.q.CountUnroutedSince(ctx, db.CountUnroutedSinceParams{Since: since, MaxCount: capAt})
	if err != nil {
		return 0, fail("count unrouted messages", err, ErrNotFound)
	}
	return n, nil
}
