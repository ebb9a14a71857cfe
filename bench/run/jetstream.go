package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"inbox/bench"
)

// natsServer is a private nats-server -js the JetStream runs publish to.
type natsServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startNATS starts a private nats-server with JetStream on a free port,
// its data in a temporary directory; stop kills it and removes that.
func startNATS(ctx context.Context) (*natsServer, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			return nil, errors.New("-jetstream needs nats-server (Debian's nats-server package)")
		}
		bin = "/usr/sbin/nats-server"
	}
	dir, err := os.MkdirTemp("", "inbox-bench-nats-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd", filepath.Join(dir, "js"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nats-server: %w", err)
	}
	s := &natsServer{url: "nats://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); os.RemoveAll(dir); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("nats-server did not listen on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *natsServer) stop() {
	s.cmd.Process.Kill()
	<-s.done
}

// jetstream runs the all-new mix at concurrency c with one destination, a
// JetStream subject (no FORWARD_URL), and measures the lag from each
// message's commit to its first arrival at a subscriber of the subject,
// and how fast the publishes went: the run ends when every stored message
// arrived.
func (h *harness) jetstream(ctx context.Context, c int) (lagResult, error) {
	stream := fmt.Sprintf("BENCH%d", h.n)
	subject := "bench." + strconv.Itoa(h.n) + ".messages"
	nc, err := nats.Connect(h.nats.url)
	if err != nil {
		return lagResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return lagResult{}, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute}); err != nil {
		return lagResult{}, fmt.Errorf("create stream: %w", err)
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), stream)
	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{}
	)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		now := time.Now()
		id := m.Header.Get("Nats-Msg-Id")
		mu.Lock()
		if _, ok := arrived[id]; !ok {
			arrived[id] = now
		}
		mu.Unlock()
	})
	if err != nil {
		return lagResult{}, err
	}
	defer sub.Unsubscribe()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(arrived) }

	addDestination := func(dbURL string) error {
		cmd := exec.CommandContext(ctx, h.cfg.inbox, "destinations", "add", "bench-js", "-url", h.nats.url, "-subject", subject, "-allow-plaintext-secrets")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_FORMAT=json")
		cmd.Stdin = strings.NewReader(benchSecret)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("add the JetStream destination: %w: %s", err, out)
		}
		return nil
	}
	var out lagResult
	res, _, err := h.serviceWith(ctx, bench.Load{Mix: bench.AllNew, Concurrency: c, Duration: h.cfg.duration}, nil, addDestination,
		func(ctx context.Context, pool *pgxpool.Pool, res bench.Result, run runCost) error {
			if err := h.drain(ctx, &out, run, fmt.Sprintf("jetstream at %d", c), count, len(res.SIDs)); err != nil {
				return err
			}
			lags, err := lagsSince(ctx, pool, func(sid string) time.Time { mu.Lock(); defer mu.Unlock(); return arrived[sid] })
			if err != nil {
				return err
			}
			out.lagP50, out.lagP99, out.lagMax = bench.Percentiles(lags)
			return nil
		})
	out.res = res
	if err == nil {
		fmt.Fprintf(os.Stderr, "level %d, JetStream destination: %.0f req/s, %.0f publishes/s, lag p50 %s p99 %s\n",
			c, res.RPS(), out.publishRate(), out.lagP50, out.lagP99)
	}
	return out, err
}

// publishRate is the deliveries a second from the load's start to the
// last one.
func (l lagResult) publishRate() float64 {
	return float64(len(l.res.SIDs)) / (l.res.Elapsed + l.drain).Seconds()
}

// lagsSince returns, for every stored message, how long after its commit
// (received_at) it arrived, by arrivedAt.
func lagsSince(ctx context.Context, pool *pgxpool.Pool, arrivedAt func(sid string) time.Time) ([]time.Duration, error) {
	rows, err := pool.Query(ctx, `SELECT metadata->>'message_sid', received_at FROM messages`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lags []time.Duration
	for rows.Next() {
		var sid string
		var at time.Time
		if err := rows.Scan(&sid, &at); err != nil {
			return nil, err
		}
		lags = append(lags, arrivedAt(sid).Sub(at))
	}
	return lags, rows.Err()
}
