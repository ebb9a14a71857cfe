package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"inbox/destination"
	"inbox/job"
	"inbox/message"
	"inbox/queue"
	"inbox/store"
)

// RetryQueue is where the bulk retries run: apart from the forwards, so that
// one runs while forwarding is paused.
const RetryQueue = "inbox_control"

// The bounds of a bulk retry.
const (
	// MaxRetryRun bounds the messages one bulk retry gives new jobs; a
	// larger backlog takes another press of Retry all failed.
	MaxRetryRun = 100_000
	// retryPage is how many messages a bulk retry reads, and replays in
	// one statement, at a time.
	retryPage = 1000
	// retryAttempts is the attempts of a bulk retry's own job.
	retryAttempts = 5
	// retryTimeout bounds one run of a bulk retry: a hundred pages of a
	// thousand, not one forward, so not the forwards' job timeout.
	retryTimeout = 10 * time.Minute
)

// retryStates are what a bulk retry covers: the forwards that will not
// run again by themselves.
func retryStates() []string { return []string{destination.ForwardFailed, destination.ForwardCancelled} }

// retryFilter is a message filter as a bulk retry records it (in
// forward_retries and its job's arguments): the wire format of a filter,
// kept here, where it is written and read.
type retryFilter struct {
	Direction   string    `json:"direction,omitempty"`
	Status      string    `json:"status,omitempty"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	Number      string    `json:"number,omitempty"`
	AccountSID  string    `json:"account_sid,omitempty"`
	Source      string    `json:"source,omitempty"`
	Forward     []string  `json:"forward,omitempty"`
	Destination string    `json:"destination,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Until       time.Time `json:"until,omitzero"`
}

func encodeFilter(f message.Filter) ([]byte, error) {
	return json.Marshal(retryFilter{Direction: f.Direction, Status: f.Status, From: f.From, To: f.To, Number: f.Number,
		AccountSID: f.AccountSID, Source: f.Source, Forward: f.Forward, Destination: f.Destination, Since: f.Since, Until: f.Until})
}

func decodeFilter(b []byte) (message.Filter, error) {
	var r retryFilter
	if err := json.Unmarshal(b, &r); err != nil {
		return message.Filter{}, err
	}
	return message.Filter{Direction: r.Direction, Status: r.Status, From: r.From, To: r.To, Number: r.Number,
		AccountSID: r.AccountSID, Source: r.Source, Forward: r.Forward, Destination: r.Destination, Since: r.Since, Until: r.Until}, nil
}

// RetryFailed starts a bulk retry: every delivery (to f's Destination, if
// set) of an inbound message that matches f (its Forward, if set, narrowed
// to failed and cancelled) that failed or was cancelled gets a new forward
// job, with the same webhook-id, in the background, for at most
// MaxRetryRun messages. One runs at a time: while one is under way, it is
// returned, with created false, and nothing new starts, however many are
// asked for at once.
func (s *Service) RetryFailed(ctx context.Context, f message.Filter) (run store.RetryRun, created bool, err error) {
	if err := s.routed(ctx, f.Destination); err != nil {
		return store.RetryRun{}, false, err
	}
	if f.Direction == string(message.DirectionOutbound) {
		return store.RetryRun{}, false, fmt.Errorf("%w: only inbound messages are forwarded", ErrBadControl)
	}
	forward := retryStates()
	if len(f.Forward) > 0 {
		forward = slices.DeleteFunc(slices.Clone(f.Forward), func(s string) bool { return !slices.Contains(retryStates(), s) })
		if len(forward) == 0 {
			return store.RetryRun{}, false, fmt.Errorf("%w: a bulk retry covers failed and cancelled forwards only", ErrBadControl)
		}
	}
	f.Forward, f.After, f.Limit = forward, nil, 0
	filter, err := encodeFilter(f)
	if err != nil {
		return store.RetryRun{}, false, fmt.Errorf("bulk retry: %w", err)
	}
	under, started, err := queue.StartOnce(ctx, s.queue, RetryQueue, retryAttempts, false, func(tx *queue.Tx) (job.RetryFailed, error) {
		var err error
		run, err = tx.Store.StartForwardRetry(ctx, filter)
		return job.RetryFailed{RunID: run.ID, Filter: filter, MaxAttempts: s.attempts}, err
	})
	if err != nil {
		return store.RetryRun{}, false, err
	}
	if !started {
		run, err = s.RetryRun(ctx, under.RunID)
		return run, false, err
	}
	s.logger.InfoContext(ctx, "bulk retry of failed forwards started", "run", run.ID, "filter", string(filter))
	return run, true, nil
}

// RetryRun returns the bulk retry id; ErrNotFound when there is none.
func (s *Service) RetryRun(ctx context.Context, id int64) (store.RetryRun, error) {
	run, err := s.store.ForwardRetry(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return run, fmt.Errorf("%w: no bulk retry %d", ErrNotFound, id)
	}
	return run, err
}

// RetryRuns returns the latest n bulk retries, newest first.
func (s *Service) RetryRuns(ctx context.Context, n int32) ([]store.RetryRun, error) {
	return s.store.ForwardRetries(ctx, n)
}

// Register registers the bulk retries' worker.
func (s *Service) Register(ws *queue.Workers) {
	queue.Handle(ws, s.retry, queue.WithTimeout(retryTimeout))
}

// retry runs job.RetryFailed: it pages through the failed forwards the
// filter matches and inserts a new forward job for each, as a replay does:
// one whose replay is already waiting keeps it. Run again after a crash,
// it starts over, and what it already retried is no longer failed, so
// nothing is retried twice.
func (s *Service) retry(ctx context.Context, j *queue.Job[job.RetryFailed]) error {
	err := s.retryPages(ctx, j)
	if err != nil && j.Attempt >= j.MaxAttempts {
		// Its last attempt: say so where the console looks.
		if ferr := s.store.FinishForwardRetry(context.WithoutCancel(ctx), j.Args.RunID, err.Error()); ferr != nil {
			s.logger.ErrorContext(ctx, "cannot record that a bulk retry failed", "run", j.Args.RunID, "err", ferr)
		}
	}
	return err
}

func (s *Service) retryPages(ctx context.Context, j *queue.Job[job.RetryFailed]) error {
	f, err := decodeFilter(j.Args.Filter)
	if err != nil {
		return destination.Permanent(fmt.Errorf("bulk retry %d: filter: %w", j.Args.RunID, err))
	}
	matched, retried := 0, 0
	for matched < MaxRetryRun {
		f.Limit = int32(min(retryPage, MaxRetryRun-matched))
		page, err := s.store.ListMessages(ctx, f)
		if err != nil {
			return fmt.Errorf("bulk retry %d: %w", j.Args.RunID, err)
		}
		n, err := s.replayPage(ctx, page, f, j.Args.MaxAttempts)
		if err != nil {
			return fmt.Errorf("bulk retry %d: %w", j.Args.RunID, err)
		}
		if err := s.store.AddForwardRetryProgress(ctx, j.Args.RunID, int32(len(page)), int32(n)); err != nil {
			return err
		}
		s.metrics.RetriesQueued(n)
		matched, retried = matched+len(page), retried+n
		if len(page) < int(f.Limit) {
			break
		}
		last := page[len(page)-1]
		f.After = &message.Cursor{ReceivedAt: last.ReceivedAt, ID: last.ID}
	}
	short := ""
	if matched >= MaxRetryRun {
		short = fmt.Sprintf("stopped at %d forwards, the most one bulk retry takes: press Retry all failed again for the rest", MaxRetryRun)
	}
	// The run is finished in the transaction that completes its job, so a
	// press of Retry all failed that sees it finished can start the next.
	err = s.queue.Transact(ctx, func(tx *queue.Tx) error {
		if err := tx.Store.FinishForwardRetry(ctx, j.Args.RunID, short); err != nil {
			return err
		}
		return tx.Complete(ctx, j)
	})
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "bulk retry of failed forwards done", "run", j.Args.RunID, "matched", matched, "retried", retried)
	return nil
}

// replayPage gives each failed or cancelled delivery of page's messages
// (to f's Destination, if set) a new forward job, in one statement, and
// says how many it gave one.
func (s *Service) replayPage(ctx context.Context, page []message.Message, f message.Filter, attempts int16) (int, error) {
	if len(page) == 0 {
		return 0, nil
	}
	ids := make([]int64, len(page))
	for i, m := range page {
		ids[i] = m.ID
	}
	n, err := s.queue.RetryDeliveries(ctx, queue.Retry{MessageIDs: ids, States: f.Forward, Destination: f.Destination,
		DefaultAttempts: attempts, RouteAttempts: s.routeAttempts})
	return int(n), err
}

// routed returns ErrProcessingOff when nothing is forwarded to dest (""
// for any destination), and ErrNotFound when dest is a name no destination
// has.
func (s *Service) routed(ctx context.Context, dest string) error {
	switch dest {
	case store.DefaultDestination:
		if !s.Processing() {
			return ErrProcessingOff
		}
		return nil
	case "":
		if s.Processing() {
			return nil
		}
		ds, err := s.store.Destinations(ctx)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return ErrProcessingOff
		}
		return nil
	}
	if _, err := s.store.Destination(ctx, dest); errors.Is(err, store.ErrNoDestination) {
		return fmt.Errorf("%w: no destination %s", ErrNotFound, dest)
	} else if err != nil {
		return err
	}
	return nil
}
