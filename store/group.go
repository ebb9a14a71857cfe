package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"inbox/db"
	"inbox/message"
	"inbox/metrics"
)

// groupCommit writes concurrent deliveries together: a writer takes the
// first pending insert, adds whatever else is waiting (up to maxBatch), and
// sends them as one pgx batch, which PostgreSQL runs as one implicit
// transaction with one commit, in one round trip. There is no timer: a
// writer sends as soon as it is free, so at low load a batch is one insert
// sent at once, and under load the next batch fills while the writers'
// batches are in flight.
type groupCommit struct {
	conn        db.DBTX
	jobAttempts jobAttempts
	maxBatch    int
	timeout     time.Duration
	pending     chan *pendingInsert
	stop        chan struct{}
	done        sync.WaitGroup
	closing     sync.Once
	// retried counts batches that failed and were retried row by row.
	retried atomic.Int64
	metrics *metrics.Metrics
	// lost is told of every failed batch, to drop the pool's connections
	// when the failure was the network's.
	lost func(error)
}

type pendingInsert struct {
	ctx    context.Context
	m      message.Inbound
	result chan insertResult // buffered: a writer never waits on a caller
}

func newGroupCommit(conn db.DBTX, opts Options, lost func(error)) *groupCommit {
	g := &groupCommit{
		conn: conn, jobAttempts: jobAttempts{opts.JobAttempts, opts.RouteAttempts}, maxBatch: max(1, opts.MaxBatch), timeout: opts.BatchTimeout,
		pending: make(chan *pendingInsert, 4096), stop: make(chan struct{}), metrics: opts.Metrics, lost: lost,
	}
	for range opts.Writers {
		g.done.Go(g.write)
	}
	return g
}

// insert hands m to a writer and waits for its outcome or for ctx. A
// delivery whose ctx ends first gets ctx's error although its batch may
// still commit: the outcome is unknown to it, and a retry is safe.
func (g *groupCommit) insert(ctx context.Context, m message.Inbound) insertResult {
	p := &pendingInsert{ctx: ctx, m: m, result: make(chan insertResult, 1)}
	select {
	case g.pending <- p:
	case <-ctx.Done():
		return insertResult{err: fmt.Errorf("wait for a writer: %w: %w", ErrUnavailable, ctx.Err())}
	}
	select {
	case r := <-p.result:
		return r
	case <-ctx.Done():
		return insertResult{err: fmt.Errorf("wait for the group commit: %w: %w", ErrUnavailable, ctx.Err())}
	}
}

func (g *groupCommit) close() {
	g.closing.Do(func() { close(g.stop) })
	g.done.Wait()
}

// write is one writer: one batch in flight at a time.
func (g *groupCommit) write() {
	batch := make([]*pendingInsert, 0, g.maxBatch)
	for {
		batch = batch[:0]
		select {
		case p := <-g.pending:
			batch = append(batch, p)
		case <-g.stop:
			return
		}
	fill:
		for len(batch) < g.maxBatch {
			select {
			case p := <-g.pending:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		g.flush(batch)
	}
}

// flush sends a batch and answers each of its deliveries. If the batch
// fails, nothing of it committed (one transaction), and each insert is
// tried alone, so one bad row fails only its own delivery.
func (g *groupCommit) flush(batch []*pendingInsert) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.result <- insertResult{err: fmt.Errorf("before the group commit: %w: %w", ErrUnavailable, err)}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	leaders, followers := bySID(live)
	// Not one caller's context: the batch carries the others too.
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	start := time.Now()
	results, err := g.send(ctx, leaders)
	g.metrics.Batch(len(live), time.Since(start))
	if err == nil {
		for i, p := range leaders {
			p.result <- results[i]
			for _, f := range followers[i] {
				f.result <- insertResult{inserted: false}
			}
		}
		return
	}
	g.lost(err)
	if len(live) == 1 {
		live[0].result <- insertResult{err: err}
		return
	}
	g.retried.Add(1)
	g.metrics.BatchRetried()
	g.oneByOne(ctx, leaders, followers)
}

// bySID puts live in sid order, as sendInserts sends every batch, so that
// the deliveries of one sid sit together (stable: in arrival order). A
// storm puts many deliveries of one sid in a batch. Only the first, its
// leader, is sent; once it has stored the message or found it stored, the
// others, its followers, are its duplicates, as they would be if each had
// been sent, without a conflicting insert apiece.
func bySID(live []*pendingInsert) (leaders []*pendingInsert, followers [][]*pendingInsert) {
	slices.SortStableFunc(live, func(a, b *pendingInsert) int {
		return strings.Compare(a.m.Metadata.MessageSID, b.m.Metadata.MessageSID)
	})
	for i, p := range live {
		if i > 0 && p.m.Metadata.MessageSID == live[i-1].m.Metadata.MessageSID {
			followers[len(followers)-1] = append(followers[len(followers)-1], p)
			continue
		}
		leaders = append(leaders, p)
		followers = append(followers, nil)
	}
	return leaders, followers
}

// oneByOne sends a failed batch's inserts one at a time; a follower is
// sent itself only if its leader failed, since its own content may be
// what the database accepts.
func (g *groupCommit) oneByOne(ctx context.Context, leaders []*pendingInsert, followers [][]*pendingInsert) {
	for i, p := range leaders {
		group := append([]*pendingInsert{p}, followers[i]...)
		for j, q := range group {
			one, err := g.send(ctx, []*pendingInsert{q})
			if err != nil {
				q.result <- insertResult{err: err}
				continue
			}
			q.result <- one[0]
			for _, f := range group[j+1:] {
				f.result <- insertResult{inserted: false}
			}
			break
		}
	}
}

// send runs one batch and returns each insert's outcome, or the error that
// failed the batch: then no insert of it committed.
func (g *groupCommit) send(ctx context.Context, batch []*pendingInsert) ([]insertResult, error) {
	ms := make([]message.Inbound, len(batch))
	for i, p := range batch {
		ms[i] = p.m
	}
	return sendInserts(ctx, g.conn, g.jobAttempts, ms)
}
