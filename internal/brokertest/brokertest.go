// Package brokertest starts private message brokers for tests, from the
// machine's binaries: a NATS server with JetStream (nats-server -js) and a
// RabbitMQ node, each on its own port, with its own data directory, killed
// and removed when the test ends, and restartable mid-test (kill -9, then
// the same data). Where a binary is missing the test skips, saying which
// package to install, unless INBOX_REQUIRE_BROKERS is set (scripts/test
// sets it once it has installed them): then it fails.
package brokertest

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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"inbox/internal/poll"
)

// startTimeout bounds a broker's start; a RabbitMQ node takes seconds.
const startTimeout = 60 * time.Second

// find returns the first of paths (or of names on PATH) that exists, or
// skips (fails, where brokers are required) naming the package.
func find(t testing.TB, pkg string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if filepath.IsAbs(p) {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		} else if found, err := exec.LookPath(p); err == nil {
			return found
		}
	}
	msg := fmt.Sprintf("%s is not installed (Debian's %s package; scripts/test installs it as root): this test needs a real broker", paths[0], pkg)
	if os.Getenv("INBOX_REQUIRE_BROKERS") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// freePort returns a port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until addr accepts connections; a broker that
// exits first fails the test with its log.
func waitListening(t testing.TB, addr string, exited <-chan struct{}, logPath string) {
	t.Helper()
	var gone bool
	poll.Within(t, startTimeout, "the broker listening on "+addr, func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if gone {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("the broker exited before listening on %s:\n%s", addr, tail(string(log), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// process is a started broker process and the channel closed when it
// exits.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func start(t testing.TB, logPath string, env []string, name string, args ...string) *process {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	// Its own process group: a kill reaches what its scripts started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return p
}

// kill kills the process group with SIGKILL, as a crash would, and waits
// for its leader to exit.
func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// NATS is a private nats-server with JetStream.
type NATS struct {
	t    testing.TB
	port int
	dir  string
	args []string
	opts []nats.Option // the tests' own connections'
	proc *process
}

// StartNATS starts a private nats-server -js, stopped when t ends.
func StartNATS(t testing.TB) *NATS { return StartNATSWithUser(t, "", "") }

// StartNATSWithUser is StartNATS with the server accepting only user and
// password (none when user is "").
func StartNATSWithUser(t testing.TB, user, password string) *NATS {
	var args []string
	var opts []nats.Option
	if user != "" {
		args, opts = []string{"--user", user, "--pass", password}, []nats.Option{nats.UserInfo(user, password)}
	}
	t.Helper()
	find(t, "nats-server", "nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
	n := &NATS{t: t, port: freePort(t), dir: t.TempDir(), args: args, opts: opts}
	n.start()
	t.Cleanup(func() { n.proc.kill() })
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	bin := find(n.t, "nats-server", "nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
	logPath := filepath.Join(n.dir, "nats.log")
	args := append([]string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-sd", filepath.Join(n.dir, "js")}, n.args...)
	n.proc = start(n.t, logPath, os.Environ(), bin, args...)
	waitListening(n.t, n.Addr(), n.proc.exited, logPath)
}

// Addr is host:port.
func (n *NATS) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// URL is its nats:// URL.
func (n *NATS) URL() string { return "nats://" + n.Addr() }

// Stop kills the server with SIGKILL, as a crash would.
func (n *NATS) Stop() { n.proc.kill() }

// Start starts the stopped server again on the same port and data: what
// JetStream stored (and its duplicate window's ids) survives the crash.
func (n *NATS) Start() {
	n.t.Helper()
	n.start()
}

// RabbitMQ is a private RabbitMQ node, with the default user guest/guest.
type RabbitMQ struct {
	t        testing.TB
	bin, dir string
	port     int
	env      []string
	proc     *process
}

// StartRabbitMQ starts a private RabbitMQ node (several seconds), stopped
// when t ends.
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	// The node's own script, not /usr/sbin's wrapper, which as root would
	// run it as the rabbitmq user, who cannot write the test's directory.
	bin := find(t, "rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, dist := freePort(t), freePort(t)
	node := fmt.Sprintf("inbox-test-%d-%d@localhost", os.Getpid(), port)
	env := append(filteredEnv(), "HOME="+dir,
		"RABBITMQ_NODENAME="+node, "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1", "RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist), "RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"), "RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"), "RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "none"))
	r := &RabbitMQ{t: t, bin: bin, dir: dir, port: port, env: env}
	r.start()
	t.Cleanup(func() { r.kill() })
	return r
}

// filteredEnv is the environment without RABBITMQ_ settings of the
// machine's own node.
func filteredEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") {
			out = append(out, kv)
		}
	}
	return out
}

func (r *RabbitMQ) start() {
	r.t.Helper()
	logPath := filepath.Join(r.dir, "start.log")
	r.proc = start(r.t, logPath, r.env, r.bin)
	waitListening(r.t, "127.0.0.1:"+strconv.Itoa(r.port), r.proc.exited, logPath)
}

// kill kills the node with SIGKILL: the Erlang VM (from its pid file) and
// the script that started it.
func (r *RabbitMQ) kill() {
	if raw, err := os.ReadFile(filepath.Join(r.dir, "pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				r.t.Logf("kill the RabbitMQ node %d: %v", pid, err)
			}
		}
	}
	r.proc.kill()
}

// URL is its amqp:// URL, as guest.
func (r *RabbitMQ) URL() string { return "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(r.port) + "/" }

// Stop kills the node with SIGKILL, as a crash would.
func (r *RabbitMQ) Stop() { r.kill() }

// Start starts the stopped node again on the same port and data: durable
// queues and their persistent messages survive the crash.
func (r *RabbitMQ) Start() {
	r.t.Helper()
	r.start()
}

// Broker is a broker that can crash and come back.
type Broker interface {
	Stop()
	Start()
}

// PublishThroughOutage publishes events with fresh ids from 8 goroutines
// at once, each retried until send succeeds as the workers retry it, while
// b crashes (after 100 are published) and comes back (once a publish has
// failed meanwhile), until 100 more are published. It returns the ids
// send acknowledged: every id it began, as none is given up.
func PublishThroughOutage(t testing.TB, b Broker, send func(ctx context.Context, id string) error) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu        sync.Mutex
		acked     []string
		failures  atomic.Int64
		stop      atomic.Bool
		next      atomic.Int64
		wg        sync.WaitGroup
		published = func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				id := fmt.Sprintf("SM%032d", next.Add(1))
				for send(ctx, id) != nil {
					failures.Add(1)
					select {
					case <-ctx.Done():
						return
					case <-time.After(50 * time.Millisecond): // the workers' backoff, shortened
					}
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	defer func() { stop.Store(true); cancel(); wg.Wait() }()
	poll.Until(t, "100 published before the crash", func() bool { return published() >= 100 })
	b.Stop()
	poll.Until(t, "a publish failing while the broker is down", func() bool { return failures.Load() > 0 })
	before := published()
	b.Start()
	poll.Until(t, "100 published after the broker came back", func() bool { return published() >= before+100 })
	stop.Store(true)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("publishing did not finish within 2 minutes")
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string{}, acked...)
}
