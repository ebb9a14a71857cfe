package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/message"
)

// sms is the fixture message, numbered n in its body.
func sms(n int) message.Inbound {
	m := fixture.Inbound(fixture.SID())
	m.Body = fmt.Sprintf("message %d", n)
	return m
}

type outcome struct {
	id       int64
	inserted bool
	err      error
}

// groupHarness has one writer, and a way to hold it: while the messages
// table is locked the writer's batch waits, and what arrives meanwhile
// queues up and is sent together as the next batch.
type groupHarness struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *Store
	lock  func() (release func())
}

func setupGroup(t *testing.T, timeout time.Duration) *groupHarness {
	t.Helper()
	url := dbtest.URL(t)
	pool := dbtest.Connect(t, url, 4)
	s := NewWith(pool, Options{Writers: 1, MaxBatch: 64, BatchTimeout: timeout, JobAttempts: 3})
	t.Cleanup(s.Close)
	locker := dbtest.Connect(t, url, 1)
	h := &groupHarness{t: t, pool: pool, store: s}
	h.lock = func() func() {
		tx, err := locker.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		return func() { tx.Rollback(context.Background()) }
	}
	return h
}

// batch holds the writer with a first insert, queues ms, releases the
// writer, and returns the outcome of each of ms, which went as one batch.
func (h *groupHarness) batch(ctxs []context.Context, ms []message.Inbound) []outcome {
	h.t.Helper()
	release := h.lock()
	defer release()
	first := make(chan outcome, 1)
	go func() {
		id, ins, err := h.store.InsertInboundMessage(context.Background(), sms(-1))
		first <- outcome{id, ins, err}
	}()
	poll.Until(h.t, "the writer to hold the first insert", func() bool { return len(h.store.group.pending) == 0 && h.waiting() == 1 })
	out := make([]outcome, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			id, ins, err := h.store.InsertInboundMessage(ctxs[i], m)
			out[i] = outcome{id, ins, err}
		})
	}
	poll.Until(h.t, "the inserts to queue", func() bool { return len(h.store.group.pending) == len(ms) })
	release()
	if r := <-first; r.err != nil {
		h.t.Fatalf("the first insert: %v", r.err)
	}
	wg.Wait()
	return out
}

// waiting counts this database's sessions waiting on a lock.
func (h *groupHarness) waiting() int {
	var n int
	h.pool.QueryRow(h.t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
	return n
}

func (h *groupHarness) count(table, sid string) int {
	h.t.Helper()
	q := `SELECT count(*) FROM messages WHERE metadata->>'message_sid' = $1`
	if table == "river_job" {
		q = `SELECT count(*) FROM ` + dbtest.EnqueuedJobs + ` WHERE sid = $1`
	}
	var n int
	if err := h.pool.QueryRow(h.t.Context(), q, sid).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func background(n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = context.Background()
	}
	return ctxs
}

// TestGroupWithADuplicateInside: the same sid twice in one batch is stored
// once, its second delivery learns it is a duplicate, and the others of the
// batch are stored.
func TestGroupWithADuplicateInside(t *testing.T) {
	t.Parallel()
	h := setupGroup(t, 5*time.Second)
	a, b := sms(1), sms(2)
	out := h.batch(background(3), []message.Inbound{a, b, a})
	// The two deliveries of a queue in either order: one stores it.
	if out[0].err != nil || out[2].err != nil || out[0].inserted == out[2].inserted || out[1].err != nil || !out[1].inserted {
		t.Fatalf("outcomes %+v: want b new, and one delivery of a new and the other a duplicate", out)
	}
	for _, m := range []message.Inbound{a, b} {
		if rows, jobs := h.count("messages", m.Metadata.MessageSID), h.count("river_job", m.Metadata.MessageSID); rows != 1 || jobs != 1 {
			t.Fatalf("%s: %d rows, %d jobs; want 1 and 1", m.Metadata.MessageSID, rows, jobs)
		}
	}
}

// TestGroupWithOnePoisonedRow: a row the database refuses (here a negative
// NumMedia, which the form checks would never let through) fails the whole
// batch's transaction; the batch is retried row by row, so only that
// delivery fails, with ErrInvalid, and the others are stored.
func TestGroupWithOnePoisonedRow(t *testing.T) {
	t.Parallel()
	h := setupGroup(t, 5*time.Second)
	good1, bad, good2 := sms(1), sms(2), sms(3)
	bad.NumMedia = -1
	out := h.batch(background(3), []message.Inbound{good1, bad, good2})
	if !errors.Is(out[1].err, ErrInvalid) {
		t.Fatalf("poisoned row: %v, want ErrInvalid", out[1].err)
	}
	for i, m := range []message.Inbound{good1, good2} {
		o := out[i*2]
		if o.err != nil || !o.inserted || h.count("messages", m.Metadata.MessageSID) != 1 {
			t.Fatalf("good row %d: %+v, want stored", i, o)
		}
	}
	if h.count("messages", bad.Metadata.MessageSID) != 0 || h.count("river_job", bad.Metadata.MessageSID) != 0 {
		t.Fatal("the poisoned row or its job was stored")
	}
}

// TestGroupWhoseTransactionFails: the batch cannot finish in its time
// (the table stays locked past the batch timeout), and neither can the
// inserts alone: every delivery gets an error and nothing is stored.
func TestGroupWhoseTransactionFails(t *testing.T) {
	t.Parallel()
	h := setupGroup(t, 300*time.Millisecond)
	ms := []message.Inbound{sms(1), sms(2), sms(3)}
	release := h.lock()
	out := make([]outcome, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			id, ins, err := h.store.InsertInboundMessage(context.Background(), m)
			out[i] = outcome{id, ins, err}
		})
	}
	wg.Wait()
	release()
	for i, o := range out {
		if o.err == nil || errors.Is(o.err, ErrInvalid) {
			t.Fatalf("delivery %d: %+v, want an unavailable-database error", i, o)
		}
		if h.count("messages", ms[i].Metadata.MessageSID) != 0 {
			t.Fatalf("delivery %d was stored", i)
		}
	}
}

// TestGroupDeliveryCancelledInFlight: a delivery whose deadline passes
// while its batch is in flight returns at once with its context's error;
// the batch still commits its row, exactly as sent, and the delivery's
// retry finds it: a duplicate.
func TestGroupDeliveryCancelledInFlight(t *testing.T) {
	t.Parallel()
	h := setupGroup(t, 5*time.Second)
	release := h.lock()
	m := sms(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan outcome, 1)
	go func() {
		id, ins, err := h.store.InsertInboundMessage(ctx, m)
		done <- outcome{id, ins, err}
	}()
	poll.Until(t, "the batch to be in flight", func() bool { return h.waiting() == 1 })
	cancel()
	if o := <-done; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled delivery: %+v, want context.Canceled", o)
	}
	release()
	poll.Until(t, "the batch to commit", func() bool { return h.count("messages", m.Metadata.MessageSID) == 1 })
	got, err := h.store.GetMessageBySID(t.Context(), m.Metadata.MessageSID)
	if err != nil || got.Body != m.Body || got.Metadata.MessageSID != m.Metadata.MessageSID || got.From != m.From {
		t.Fatalf("stored %+v (%v), want what the delivery sent", got, err)
	}
	_, inserted, err := h.store.InsertInboundMessage(t.Context(), m)
	if err != nil || inserted {
		t.Fatalf("retry: inserted=%v err=%v, want a duplicate", inserted, err)
	}
	if h.count("river_job", m.Metadata.MessageSID) != 1 {
		t.Fatal("want exactly one job")
	}
}

// TestGroupsSharingSIDsDoNotDeadlock: with two writers, batches in flight
// at once often hold the same sids (retries arriving together). Sent in
// arrival order they could wait on each other until PostgreSQL's deadlock
// check broke the cycle, a second later; sent in sid order they cannot.
func TestGroupsSharingSIDsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	pool := dbtest.Connect(t, url, 4)
	s := NewWith(pool, Options{Writers: 2, MaxBatch: 64, BatchTimeout: 5 * time.Second})
	t.Cleanup(s.Close)
	// As Twilio's retries arrive: 64 senders, and 30% of deliveries repeat
	// one of the 64 latest messages, often still in flight in another
	// batch. Sent in arrival order, two batches holding the same new sids
	// in opposite orders deadlocked (scripts/bench's repeat30 mix showed a
	// p99 of a second).
	var (
		mu     sync.Mutex
		recent []message.Inbound
		next   int
		wg     sync.WaitGroup
	)
	pick := func(rng *rand.Rand) message.Inbound {
		mu.Lock()
		defer mu.Unlock()
		if len(recent) > 0 && rng.IntN(10) < 3 {
			return recent[rng.IntN(len(recent))]
		}
		next++
		m := sms(next)
		recent = append(recent, m)
		if len(recent) > 64 {
			recent = recent[1:]
		}
		return m
	}
	for g := range 64 {
		rng := rand.New(rand.NewPCG(uint64(g), 2))
		wg.Go(func() {
			for range 100 {
				if _, _, err := s.InsertInboundMessage(context.Background(), pick(rng)); err != nil {
					t.Errorf("insert: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := next
	if n := s.group.retried.Load(); n != 0 {
		t.Fatalf("%d batches failed (deadlocked) and were retried row by row", n)
	}
	var rows int
	pool.QueryRow(t.Context(), `SELECT count(*) FROM messages`).Scan(&rows)
	if rows != total {
		t.Fatalf("%d rows for %d sids", rows, total)
	}
}

// TestGroupWithAStormInside: twenty deliveries of one sid in one batch,
// with another message: one of the twenty stores it, nineteen are its
// duplicates, the other is stored, and there is one row and one job each.
// One of the twenty carries content the database refuses: a repeat is a
// duplicate whatever it carries, so it fails only if it is sent, which is
// only if it came first.
func TestGroupWithAStormInside(t *testing.T) {
	t.Parallel()
	h := setupGroup(t, 5*time.Second)
	a, b := sms(1), sms(2)
	ms := []message.Inbound{b}
	for range 20 {
		ms = append(ms, a)
	}
	poisoned := a
	poisoned.NumMedia = -1
	ms[7] = poisoned
	out := h.batch(background(len(ms)), ms)
	inserted, duplicates, failed := 0, 0, 0
	for _, o := range out[1:] {
		switch {
		case o.err != nil:
			failed++
		case o.inserted:
			inserted++
		default:
			duplicates++
		}
	}
	if out[0].err != nil || !out[0].inserted || inserted != 1 || duplicates+failed != 19 || failed > 1 {
		t.Fatalf("b %+v; of a: %d inserted, %d duplicates, %d failed; want b new, 1 new, 19 duplicates (the poisoned one may fail if it led)",
			out[0], inserted, duplicates, failed)
	}
	for _, m := range []message.Inbound{a, b} {
		if rows, jobs := h.count("messages", m.Metadata.MessageSID), h.count("river_job", m.Metadata.MessageSID); rows != 1 || jobs != 1 {
			t.Fatalf("%s: %d rows, %d jobs; want 1 and 1", m.Metadata.MessageSID, rows, jobs)
		}
	}
}
