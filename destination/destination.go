// Package destination is where stored messages go: the event each one is
// handed on as, the Sender a kind of destination implements (httpdest
// posts it to an app), the errors a Sender says what a retry can do with,
// and the states of a message's forward. It depends on nothing of the
// service's: the workers (package dispatch) give each Sender its events.
//
// A Sender is given each event at least once: a worker that dies after the
// send succeeded and before the queue recorded it sends again. Event.ID is
// the same every time, so a receiver can drop repeats.
package destination

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Event is what a Sender is given.
type Event struct {
	// ID is stable across every attempt: the message sid for a new
	// message, sid.status for a status change.
	ID string
	// Type is message.TypeReceived or message.TypeStatus.
	Type string
	// Payload is the event as JSON, exactly what httpdest posts
	// (docs/processing.md, "The forward"); json.Unmarshal it into a
	// message.Payload for typed access. The message in it is as stored
	// when the attempt runs: for a status change its status may already be
	// a later one.
	Payload []byte
	// Attempt counts the attempts, from 1.
	Attempt int
}

// Sender hands events to one destination. An error retries the event
// with backoff; one that Permanent wraps ends it for good (cancelled); one
// RetryAfter made waits at least that long.
type Sender interface {
	Send(ctx context.Context, ev Event) error
}

// Permanent marks an error that a retry cannot fix: the event is
// cancelled rather than retried.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// IsPermanent reports whether err, or one it wraps, is Permanent's.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RetryAfter marks an error after which the receiver asked to be left
// alone for d (a 429 or 503 with Retry-After): the next attempt is no
// earlier than d from now (at most a day), nor earlier than the backoff's.
// It spends an attempt like any error, so a receiver that always asks for
// more time still ends the event after its attempts.
func RetryAfter(err error, d time.Duration) error { return &retryAfterError{err: err, d: d} }

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.d }

// A message's forward state over its deliveries, one per destination
// (the SQL function message_delivery_state says it once for every query):
// the state an operator must act on first, forwarded when every delivery
// was.
const (
	ForwardNone      = "none"      // no delivery: no destination matched (unrouted), or processing was off
	ForwardPending   = "pending"   // waiting, or on its first attempt
	ForwardRetrying  = "retrying"  // an attempt failed; it will run again
	ForwardForwarded = "forwarded" // the app took it
	ForwardFailed    = "failed"    // every attempt failed (River: discarded)
	ForwardCancelled = "cancelled" // refused for good, or cancelled by hand
)

// ForwardStates lists the forward states, in the order a message moves
// through them.
func ForwardStates() []string {
	return []string{ForwardNone, ForwardPending, ForwardRetrying, ForwardForwarded, ForwardFailed, ForwardCancelled}
}

// IsForwardState reports whether s is one of ForwardStates.
func IsForwardState(s string) bool { return slices.Contains(ForwardStates(), s) }

// The kinds of destination: an app over HTTP (httpdest), a NATS JetStream
// subject (natsdest), a RabbitMQ exchange (amqpdest).
const (
	KindHTTP = "http"
	KindNATS = "nats"
	KindAMQP = "amqp"
)

// Target is where one destination's events go, opened (its URL, secret
// and credentials unsealed): what its kind's Sender is built from. Never
// logged.
type Target struct {
	Name   string // the destination's, for the broker's view of the connection
	Kind   string
	URL    string // http(s)://, nats://, tls://, amqp:// or amqps://, credentials included
	Secret string // whsec_…: every kind signs as Standard Webhooks says
	// Subject is a nats destination's JetStream subject, and Creds the
	// NATS credentials file's content, if any.
	Subject string
	Creds   []byte
	// Exchange and RoutingKey are an amqp destination's.
	Exchange   string
	RoutingKey string
}

// Misconfigured marks an error that says the destination itself is set
// up wrong, not the event: no stream captures the subject, the exchange
// does not exist, the credentials are refused. The event is retried as
// any error is, and the destination is paused at once by its breaker,
// with the error as the reason shown, so its deliveries wait for an
// operator to fix it and resume rather than retrying without end.
func Misconfigured(err error) error { return &misconfiguredError{err} }

type misconfiguredError struct{ err error }

func (e *misconfiguredError) Error() string { return e.err.Error() }
func (e *misconfiguredError) Unwrap() error { return e.err }

// IsMisconfigured reports whether err, or one it wraps, is Misconfigured's.
func IsMisconfigured(err error) bool {
	var m *misconfiguredError
	return errors.As(err, &m)
}
