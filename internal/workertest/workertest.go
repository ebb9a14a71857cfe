// Package workertest runs, in a test, the job side of one process of a
// deployment: the queue with the forwards' workers (package dispatch), the
// operator's controls and their retry jobs, against a real database and a
// real receiving app, stopped when the test ends.
package workertest

import (
	"cmp"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/control"
	"inbox/destination"
	"inbox/destination/httpdest"
	"inbox/dispatch"
	"inbox/internal/fixture"
	"inbox/internal/logtest"
	"inbox/internal/teamapp"
	"inbox/message"
	"inbox/queue"
	"inbox/store"
)

// Attempts is what a replayed or retried forward's job is given.
const Attempts = 5

// Options are a process's settings; zero values take the defaults.
type Options struct {
	// URL is the app forwards go to, signed with teamapp.Secret.
	URL string
	// Sender, when set, replaces the forwarder (given to it, to wrap).
	Sender func(*httpdest.Forwarder) destination.Sender
	// Workers defaults to 4.
	Workers        int
	BreakAfter     int
	ControlRefresh time.Duration
	// FetchPollInterval defaults to 100 ms.
	FetchPollInterval time.Duration
	// Logs, when set, gets the process's log as JSON lines.
	Logs *logtest.Buffer
	// Attempts is the controls' (default Attempts).
	Attempts int16
}

// Process is one running process's jobs.
type Process struct {
	Queue    *queue.Queue
	Controls *control.Service
}

// Start starts a process that forwards to opts.URL. A failed attempt is
// retried after 20 ms, so a test sees several in a second.
func Start(t *testing.T, pool *pgxpool.Pool, opts Options) *Process {
	t.Helper()
	fwd, err := httpdest.NewForwarder(opts.URL, teamapp.Secret, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var sender destination.Sender = fwd
	if opts.Sender != nil {
		sender = opts.Sender(fwd)
	}
	logger := logger(opts.Logs)
	st := store.New(pool)
	workers := cmp.Or(opts.Workers, 4)
	p := &Process{}
	q, err := queue.New(pool, queue.Config{
		Logger: logger, Store: st,
		Queues:            map[string]int{queue.Default: workers, control.RetryQueue: 1},
		Backoff:           func(int) time.Duration { return 20 * time.Millisecond },
		FetchPollInterval: cmp.Or(opts.FetchPollInterval, 100*time.Millisecond),
		JobTimeout:        10 * time.Second,
		Register: func(q *queue.Queue, ws *queue.Workers) []queue.Periodic {
			p.Controls = control.New(st, q, cmp.Or(opts.Attempts, Attempts), cmp.Or(opts.Attempts, Attempts), logger, nil)
			dispatch.New(dispatch.Config{Store: st, Queue: q, Sender: sender, Pauser: p.Controls, Logger: logger,
				Workers: workers, BreakAfter: opts.BreakAfter, ControlRefresh: opts.ControlRefresh}).Register(ws)
			p.Controls.Register(ws)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Queue = q
	if err := p.Controls.EnsurePaused(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	Run(t, q.Run)
	return p
}

// Controls returns the operator's controls over a queue that runs
// nothing, as the admin listener of a process without workers has them.
func Controls(t *testing.T, pool *pgxpool.Pool, attempts int16) (*control.Service, *queue.Queue) {
	t.Helper()
	st := store.New(pool)
	q, err := queue.New(pool, queue.Config{Logger: logger(nil), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return control.New(st, q, attempts, attempts, logger(nil), nil), q
}

// Run runs a part of a process (internal/lifecycle) until the test ends,
// failing the test unless it starts, and unless it stops cleanly.
func Run(t *testing.T, run func(ctx context.Context, ready func()) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

func logger(logs *logtest.Buffer) *slog.Logger {
	if logs == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewJSONHandler(logs, nil))
}

// InsertMany stores n new messages (with their jobs) in one batch and
// returns their sids; build, when set, makes each from its sid.
func InsertMany(t *testing.T, st *store.Store, n int, build func(sid string) message.Inbound) []string {
	t.Helper()
	sids := make([]string, n)
	ms := make([]message.Inbound, n)
	for i := range ms {
		sids[i] = fixture.SID()
		ms[i] = fixture.Inbound(sids[i])
		if build != nil {
			ms[i] = build(sids[i])
		}
	}
	if _, err := st.InsertInboundMessages(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	return sids
}
