// Package control is the operator's controls of forwarding, written once
// for every edge that offers them (the console, the JSON API, the CLI's
// settings, the circuit breaker): pause and resume, the delivery rate, a
// replay of one message, the bulk retry of failed forwards, and the state
// of the forwards' queue. Every process shares them through the database;
// a pause commits with River's queue pause in one unit of work (the queue
// adapter's), so the two never disagree.
package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"inbox/internal/text"
	"inbox/job"
	"inbox/message"
	"inbox/metrics"
	"inbox/queue"
	"inbox/store"
)

// The bounds of the operator's controls.
const (
	// finishedCap bounds each count of the last hour's outcomes.
	finishedCap = 100_000
)

// The errors of the operator's controls, for each edge to answer with.
var (
	// ErrProcessingOff: FORWARD_URL is not set, so there is nothing to
	// retry, replay or throttle.
	ErrProcessingOff = errors.New("processing is off (FORWARD_URL is not set): there is nothing to forward to")
	// ErrBadControl: the control asked for is out of range.
	ErrBadControl = errors.New("invalid control")
	// ErrNotFound: no such message, or bulk retry.
	ErrNotFound = errors.New("not found")
	// ErrOutbound: the message is outbound, and only inbound messages are
	// forwarded again.
	ErrOutbound = errors.New("only inbound messages are forwarded")
)

// Store is what the controls read and write outside a unit of work.
type Store interface {
	ForwardingControl(ctx context.Context) (store.Control, error)
	SetForwardRate(ctx context.Context, perSecond *float64) error
	GetMessageBySID(ctx context.Context, sid string) (message.Message, error)
	ListMessages(ctx context.Context, f message.Filter) ([]message.Message, error)
	Destination(ctx context.Context, name string) (store.Destination, error)
	Destinations(ctx context.Context) ([]store.Destination, error)
	AddForwardRetryProgress(ctx context.Context, id int64, matched, retried int32) error
	FinishForwardRetry(ctx context.Context, id int64, errText string) error
	ForwardRetry(ctx context.Context, id int64) (store.RetryRun, error)
	ForwardRetries(ctx context.Context, limit int32) ([]store.RetryRun, error)
}

// Queue is what the controls need of the queue adapter.
type Queue interface {
	Transact(ctx context.Context, fn func(*queue.Tx) error) error
	Replay(ctx context.Context, sid, dest string, maxAttempts int16) (job.Info, bool, error)
	RetryDeliveries(ctx context.Context, r queue.Retry) (int64, error)
	ReleaseHeld(ctx context.Context, queue string) (int64, error)
	ForwardStats(ctx context.Context, queueName string, since time.Time, capAt int32) (queue.ForwardStats, error)
}

// Service is the operator's controls.
type Service struct {
	store    Store
	queue    Queue
	logger   *slog.Logger
	metrics  *metrics.Metrics
	attempts int16
	// routeAttempts are the attempts of a destination's delivery.
	routeAttempts int16
}

// New returns the controls; attempts is a replayed or retried forward's
// job's attempts, 0 when processing is off.
// attempts are FORWARD_URL's forwards' (0: it is not set), routeAttempts
// the destinations' deliveries'.
func New(st Store, q Queue, attempts, routeAttempts int16, logger *slog.Logger, m *metrics.Metrics) *Service {
	return &Service{store: st, queue: q, logger: logger, metrics: m, attempts: attempts, routeAttempts: routeAttempts}
}

// On returns the same controls over st and q: the admin edge's, on
// connections of its own.
func (s *Service) On(st Store, q Queue) *Service {
	c := *s
	c.store, c.queue = st, q
	return &c
}

// Processing reports whether forwarding is on in this process.
func (s *Service) Processing() bool { return s.attempts > 0 }

// Pause pauses forwarding, recording reason (store.PausedByOperator or
// PausedByBreaker) and detail: every worker of every process stops taking
// forwards; messages are still stored with their jobs, which wait. changed
// is false when it was already paused (and the earlier reason stands).
func (s *Service) Pause(ctx context.Context, reason, detail string) (changed bool, err error) {
	if err := checkNote(detail); err != nil {
		return false, err
	}
	err = s.queue.Transact(ctx, func(tx *queue.Tx) error {
		if changed, err = tx.Store.PauseForwarding(ctx, reason, detail); err != nil {
			return err
		}
		return tx.PauseQueue(ctx, queue.Default)
	})
	if err == nil && changed && reason == store.PausedByOperator {
		s.logger.WarnContext(ctx, "forwarding paused by an operator; stored messages wait until it is resumed", "detail", detail)
	}
	return changed, err
}

// MaxNote is the longest note a pause may carry, in bytes.
const MaxNote = 200

// checkNote refuses a pause's note that is longer than MaxNote or holds
// anything but printable text: it is shown on the console and in logs,
// where a control character or a bidirectional override could disguise
// what it says.
func checkNote(note string) error {
	if len(note) > MaxNote {
		return fmt.Errorf("%w: the note must be at most %d bytes of printable text", ErrBadControl, MaxNote)
	}
	if err := text.Printable(note); err != nil {
		return fmt.Errorf("%w: the note must be at most %d bytes of printable text; %w", ErrBadControl, MaxNote, err)
	}
	return nil
}

// Resume resumes forwarding, whoever paused it; the jobs that waited are
// sent. changed is false when it was not paused.
func (s *Service) Resume(ctx context.Context) (changed bool, err error) {
	err = s.queue.Transact(ctx, func(tx *queue.Tx) error {
		if changed, err = tx.Store.ResumeForwarding(ctx); err != nil {
			return err
		}
		return tx.ResumeQueue(ctx, queue.Default)
	})
	if err == nil && changed {
		s.logger.InfoContext(ctx, "forwarding resumed by an operator")
	}
	return changed, err
}

// ValidRate returns ErrBadControl, naming the range, unless perSecond is
// nil (unlimited) or a rate this service keeps to.
func ValidRate(perSecond *float64) error {
	if perSecond == nil {
		return nil
	}
	if err := store.CheckRate(*perSecond); err != nil {
		return fmt.Errorf("%w: %w", ErrBadControl, err)
	}
	return nil
}

// SetRate sets the delivery rate, forwards a second across every worker of
// every process (bursts are held, not dropped); nil lifts it.
func (s *Service) SetRate(ctx context.Context, perSecond *float64) error {
	if err := ValidRate(perSecond); err != nil {
		return err
	}
	if err := s.store.SetForwardRate(ctx, perSecond); err != nil {
		return err
	}
	// What the old rate held waits no longer than the new one says.
	released, err := s.queue.ReleaseHeld(ctx, queue.Default)
	if err != nil {
		return err
	}
	if perSecond == nil {
		s.logger.InfoContext(ctx, "forwarding rate lifted: forwards go as fast as the workers take them", "released", released)
	} else {
		s.logger.InfoContext(ctx, "forwarding rate set", "per_second", *perSecond, "released", released)
	}
	return nil
}

// EnsurePaused pauses River's queue again when forwarding is recorded
// paused: River forgets a queue no worker has polled for a day, and its
// pause with it, so a process that starts workers calls it first. The
// gate holds whatever is taken meanwhile.
func (s *Service) EnsurePaused(ctx context.Context, q interface {
	EnsurePaused(ctx context.Context, name string) error
}) error {
	ctl, err := s.store.ForwardingControl(ctx)
	if err != nil || !ctl.Paused() {
		return err
	}
	if err := q.EnsurePaused(ctx, queue.Default); err != nil {
		return err
	}
	s.logger.WarnContext(ctx, "forwarding is paused; stored messages wait until it is resumed",
		"reason", ctl.PausedReason, "since", ctl.PausedAt, "detail", ctl.PausedDetail)
	return nil
}

// State is the controls and the forwards' queue as they stand.
type State struct {
	// Processing is false when FORWARD_URL is not set in this process.
	Processing   bool
	Paused       bool
	PausedReason string
	PausedDetail string
	PausedAt     *time.Time
	// Rate is the delivery rate; nil: unlimited.
	Rate *float64
	// Unfinished counts the forwards not yet done, by River state.
	Unfinished map[string]int64
	// Lag is how long the longest-waiting due forward has waited.
	Lag time.Duration
	// LastHour counts the forwards that ended in the last hour, by River
	// state (completed, discarded, cancelled), each at most LastHourCap.
	LastHour    map[string]int64
	LastHourCap int
}

// State returns the controls and the queue's state as they stand.
func (s *Service) State(ctx context.Context) (State, error) {
	ctl, err := s.store.ForwardingControl(ctx)
	if err != nil {
		return State{}, err
	}
	stats, err := s.queue.ForwardStats(ctx, queue.Default, time.Now().Add(-time.Hour), finishedCap)
	if err != nil {
		return State{}, err
	}
	return State{
		Processing: s.Processing(), Paused: ctl.Paused(), PausedReason: ctl.PausedReason, PausedDetail: ctl.PausedDetail,
		PausedAt: ctl.PausedAt, Rate: ctl.Rate, Unfinished: stats.Unfinished, Lag: max(time.Since(stats.OldestDue), 0),
		LastHour: stats.Finished, LastHourCap: finishedCap,
	}, nil
}

// Control returns the controls alone, for the metrics.
func (s *Service) Control(ctx context.Context) (metrics.ForwardingControl, error) {
	ctl, err := s.store.ForwardingControl(ctx)
	if err != nil {
		return metrics.ForwardingControl{}, err
	}
	fc := metrics.ForwardingControl{PausedReason: ctl.PausedReason}
	if ctl.Rate != nil {
		fc.RatePerSecond = *ctl.Rate
	}
	return fc, nil
}

// Replay forwards the stored inbound message sid again to the destination
// dest ("" or "default": FORWARD_URL's), with the same webhook-id (its
// sid), so a receiver that already took it can tell: a new job, with
// created true. While an earlier replay of the sid to dest is still
// waiting or running, it returns that job instead, with created false, so
// replays asked for at once make one forward. ErrNotFound when no message
// has the sid or no destination is dest, ErrOutbound when the message is
// outbound, ErrProcessingOff when dest is FORWARD_URL's and it is not set.
func (s *Service) Replay(ctx context.Context, sid, dest string) (j job.Info, created bool, err error) {
	dest = cmp.Or(dest, store.DefaultDestination)
	if err := s.routed(ctx, dest); err != nil {
		return job.Info{}, false, err
	}
	attempts := s.routeAttempts
	if dest == store.DefaultDestination {
		attempts = s.attempts
	}
	j, created, err = s.queue.Replay(ctx, sid, dest, attempts)
	if errors.Is(err, store.ErrNotFound) {
		// No inbound message: say whether there is none or it is outbound;
		// only then is a second query worth it.
		m, err := s.store.GetMessageBySID(ctx, sid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return job.Info{}, false, fmt.Errorf("%w: no message with sid %s", ErrNotFound, sid)
		case err != nil:
			return job.Info{}, false, err
		case m.Direction != message.DirectionInbound:
			return job.Info{}, false, fmt.Errorf("%w: message %s is outbound", ErrOutbound, sid)
		}
		return job.Info{}, false, fmt.Errorf("%w: no inbound message with sid %s", ErrNotFound, sid)
	} else if err != nil {
		return job.Info{}, false, err
	}
	if created {
		s.logger.InfoContext(ctx, "forward requested again", "sid", sid, "destination", dest, "job", j.ID)
	} else {
		s.logger.InfoContext(ctx, "forward requested again; an earlier replay is still unfinished", "sid", sid, "destination", dest, "job", j.ID, "state", j.State)
	}
	return j, created, nil
}
