// Package pgcluster starts PostgreSQL servers from the machine's own
// binaries, for tests of what only a cluster can show: a primary with a
// streaming standby, synchronous or not, that a test kills (kill -9 of the
// postmaster) and promotes (pg_ctl promote), as a failover does. Each
// server lives in a directory of its own, on a port the kernel had free,
// and is stopped and removed when the test ends.
//
// initdb and postgres refuse to run as root: as root, the servers run as the
// postgres user (Debian's package makes it), from a directory it owns.
package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one PostgreSQL server of a test.
type Server struct {
	t      testing.TB
	Port   int
	dir    string // data directory
	base   string // the test's directory: sockets, logs
	name   string
	bindir string
	owner  string // the OS user it runs as; "" for the current one
	// settings are -c settings of its own, after the common ones.
	settings []string
}

// Available reports why no cluster can be started here, or "" when one can.
func Available() string {
	if _, err := bindir(); err != nil {
		return err.Error()
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return "running as root without a postgres user to run PostgreSQL as"
		}
	}
	return ""
}

// bindir returns the newest PostgreSQL server binaries' directory.
func bindir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): install the postgresql package")
}

// run runs a PostgreSQL program as the server's owner and fails the test
// if it fails.
func (s *Server) run(program string, args ...string) string {
	s.t.Helper()
	path := filepath.Join(s.bindir, program)
	cmd := exec.Command(path, args...)
	if s.owner != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.owner, "--", path}, args...)...)
	}
	cmd.Dir = "/" // the test's working directory may be out of the owner's reach
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// newBase makes the test's directory, owned by the servers' owner.
func newBase(t testing.TB) (base, owner string) {
	t.Helper()
	base, err := os.MkdirTemp("", "inbox-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		owner = "postgres"
		u, err := user.Lookup(owner)
		if err != nil {
			t.Fatalf("look up the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return base, owner
}

// NewPrimary initialises and starts a primary that standbys can stream
// from (wal_level replica), with trust authentication on 127.0.0.1.
func NewPrimary(t testing.TB) *Server {
	t.Helper()
	bin, err := bindir()
	if err != nil {
		t.Fatal(err)
	}
	base, owner := newBase(t)
	s := &Server{t: t, base: base, name: "primary", dir: filepath.Join(base, "primary"), bindir: bin, owner: owner}
	s.run("initdb", "-D", s.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	s.start()
	return s
}

// Standby makes a streaming standby of s with pg_basebackup -R (the
// connection to s in its configuration) and starts it, with settings
// ("name=value") of its own: hot_standby=off makes one that refuses every
// connection while it recovers (SQLSTATE 57P03), as a server does while it
// starts up or replays WAL.
func (s *Server) Standby(settings ...string) *Server {
	s.t.Helper()
	n := &Server{t: s.t, base: s.base, name: "standby", dir: filepath.Join(s.base, "standby"), bindir: s.bindir, owner: s.owner,
		settings: settings}
	s.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres", "-D", n.dir, "-R", "-X", "stream", "--no-sync",
		// An immediate checkpoint: the default spreads it over minutes.
		"--checkpoint=fast")
	n.start()
	return n
}

// start starts the server on a free port. A port the kernel just had free
// can be taken before the server binds it: then it tries another.
func (s *Server) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		s.Port = freePort(s.t)
		logFile := filepath.Join(s.base, s.name+".log")
		os.Remove(logFile)
		args := []string{"-D", s.dir, "-l", logFile, "-w", "-t", "60", "-o", strings.Join([]string{
			"-c port=" + strconv.Itoa(s.Port), "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=" + s.base,
			"-c wal_level=replica", "-c max_wal_senders=5", "-c hot_standby=on", "-c max_connections=200",
			// A standby whose primary is gone retries the stream this
			// often, and notices a promotion only between tries (5 s by
			// default): an orchestrator's promotion is then that much
			// slower than the service's recovery.
			"-c wal_retrieve_retry_interval=200ms",
			// Thrown away after the test: the kill -9 this package is for
			// is of the postmaster, not of the machine, so the OS keeps
			// what was written.
			"-c fsync=off", "-c full_page_writes=off",
		}, " ") + own(s.settings), "start"}
		cmd := exec.Command(filepath.Join(s.bindir, "pg_ctl"), args...)
		if s.owner != "" {
			cmd = exec.Command("runuser", append([]string{"-u", s.owner, "--", filepath.Join(s.bindir, "pg_ctl")}, args...)...)
		}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		log, _ := os.ReadFile(logFile)
		if !bytes.Contains(log, []byte("Address already in use")) || attempt >= 10 {
			s.t.Fatalf("start %s: %v\n%s\n%s", s.name, err, out, log)
		}
	}
	s.t.Cleanup(s.stop)
}

// own is settings as postgres options, each after a space.
func own(settings []string) string {
	var b strings.Builder
	for _, kv := range settings {
		b.WriteString(" -c " + kv)
	}
	return b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// stop stops the server at once, if it still runs.
func (s *Server) stop() {
	if _, err := os.Stat(filepath.Join(s.dir, "postmaster.pid")); err != nil {
		return
	}
	args := []string{"-D", s.dir, "-m", "immediate", "-w", "stop"}
	cmd := exec.Command(filepath.Join(s.bindir, "pg_ctl"), args...)
	if s.owner != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.owner, "--", filepath.Join(s.bindir, "pg_ctl")}, args...)...)
	}
	cmd.Dir = "/"
	cmd.Run()
}

// URL is a superuser URL of database db on s.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Exec runs sql on database db of s.
func (s *Server) Exec(db, sql string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		s.t.Fatalf("connect to %s: %v", s.name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		s.t.Fatalf("%s on %s: %v", sql, s.name, err)
	}
}

// ReplicationState returns how s's standby replicates ("" without one):
// pg_stat_replication's state and sync_state, e.g. "streaming sync".
func (s *Server) ReplicationState() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var state string
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(state || ' ' || sync_state), '') FROM pg_stat_replication`).Scan(&state); err != nil {
		return ""
	}
	return state
}

// RequireSync makes every commit on s wait until the standby has it
// (synchronous_standby_names = '*', synchronous_commit on). Set it only
// once the standby streams: until one does, every commit waits.
func (s *Server) RequireSync() {
	s.t.Helper()
	s.Exec("postgres", `ALTER SYSTEM SET synchronous_standby_names = '*'`)
	s.Exec("postgres", `ALTER SYSTEM SET synchronous_commit = 'on'`)
	s.Exec("postgres", `SELECT pg_reload_conf()`)
}

// Kill kills s's postmaster with SIGKILL, as a crash of the primary does:
// no shutdown, no checkpoint; its backends exit when they see it gone.
func (s *Server) Kill() {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "postmaster.pid"))
	if err != nil {
		s.t.Fatalf("read %s's postmaster.pid: %v", s.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		s.t.Fatalf("%s's postmaster.pid: %v", s.name, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill -9 %s (%d): %v", s.name, pid, err)
	}
}

// Promote promotes a standby to primary and returns once it accepts
// writes (pg_ctl promote -w).
func (s *Server) Promote() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir, "-w", "-t", "60", "promote")
}
