// Command run is the benchmark harness behind scripts/bench: for each mix and
// concurrency it creates a fresh database, starts the real `inbox serve` as
// its own process, drives it with package bench, checks that the rows stored
// equal the distinct sids sent, and runs pgbench on the very statement sqlc
// generated for InsertInboundMessage at the same concurrency, against the
// same server, in the same run. It also measures the service's peak RSS under
// 256 connections and a storm of 1000 identical requests, then prints a
// table and writes it, with a chart, to -out.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/bench"
	"inbox/db"
	"inbox/job"
	"inbox/message"
	"inbox/simulate"
	"inbox/store"
)

const token = "bench-token"

type config struct {
	adminURL  string
	inbox     string
	pgbench   string
	levels    []int
	duration  time.Duration
	stormSize int
	rssConns  int
	out       string
	serverLog string
	dbParams  string
	pprofAddr string
	rounds    int
	procLevel map[int]bool
	// destinations is how many destinations beside FORWARD_URL a
	// processing level also runs with.
	destinations int
	// jetstream adds, at the processing levels, a run whose one
	// destination is a JetStream subject of a private nats-server.
	jetstream bool
	// failing makes the first of those destinations fail every delivery.
	failing   bool
	reconcile int
	// mediaLevel is the concurrency of the media runs (0: none).
	mediaLevel int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var levels string
	flag.StringVar(&cfg.adminURL, "admin-url", "", "superuser URL of the PostgreSQL server to create benchmark databases on")
	flag.StringVar(&cfg.inbox, "inbox", ".bin/inbox", "the inbox binary to benchmark")
	flag.StringVar(&cfg.pgbench, "pgbench", "pgbench", "the pgbench binary")
	flag.StringVar(&levels, "concurrency", "1,8,32,128", "concurrency levels")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long each run sends for")
	flag.IntVar(&cfg.stormSize, "storm", 1000, "size of the large storm of identical requests")
	flag.IntVar(&cfg.rssConns, "rss-conns", 256, "connections for the peak-RSS run")
	flag.StringVar(&cfg.out, "out", "bench/results", "folder for results.md and chart.svg")
	flag.StringVar(&cfg.serverLog, "server-log", os.DevNull, "where the service's log goes")
	flag.StringVar(&cfg.dbParams, "db-params", "", "extra DATABASE_URL parameters for the service, e.g. pool_max_conns=8")
	flag.IntVar(&cfg.rounds, "rounds", 3, "pgbench and all-new runs alternate this many times per level; the medians are reported")
	flag.StringVar(&cfg.pprofAddr, "pprof-addr", "", "have the service serve its admin listener, with pprof, here (ADMIN_ADDR)")
	flag.IntVar(&cfg.reconcile, "reconcile", 100_000, "messages the reconciliation sweep lists (1% of them not stored); 0: no sweep")
	var procLevels string
	flag.IntVar(&cfg.destinations, "destinations", 0, "at the processing levels, also run with this many destinations beside FORWARD_URL, each matching every message (0: none)")
	flag.BoolVar(&cfg.jetstream, "jetstream", false, "at the processing levels, also run with one JetStream destination instead of FORWARD_URL (starts a private nats-server)")
	flag.BoolVar(&cfg.failing, "failing", false, "with -destinations, the first extra destination answers 500 to everything (its breaker off): FORWARD_URL's lag is then measured beside a failing neighbour")
	flag.StringVar(&procLevels, "processing", "8,32", "levels at which the all-new mix also runs with processing on (forwarding to an app that answers at once); empty for none")
	flag.IntVar(&cfg.mediaLevel, "media", 32, "concurrency at which SMS-only and MMS runs (one 200 KB medium each, fetched from a stand-in for Twilio) alternate, then the peak RSS of ten 16 MB media fetched and served at once; 0: none")
	flag.Parse()
	if cfg.adminURL == "" {
		return errors.New("-admin-url is required")
	}
	for _, s := range strings.Split(levels, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue // -concurrency "": only the other runs
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad concurrency %q", s)
		}
		cfg.levels = append(cfg.levels, n)
	}
	cfg.procLevel = map[int]bool{}
	for _, s := range strings.Split(procLevels, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("bad processing level %q", s)
		}
		cfg.procLevel[n] = true
	}
	stmt, err := generatedInsert()
	if err != nil {
		return err
	}
	// Ctrl-C ends the runs under way; each drops its database on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stmts, err := newStatements(ctx, cfg.adminURL)
	if err != nil {
		return err
	}
	h := &harness{cfg: cfg, stmt: stmt, stmts: stmts}
	if cfg.jetstream {
		if h.nats, err = startNATS(ctx); err != nil {
			return err
		}
		defer h.nats.stop()
	}

	var rows []row
	var procRows []procRow
	for _, c := range cfg.levels {
		// pgbench and the all-new mix (with processing on, where asked)
		// alternate, so that all see the same drift of a shared machine;
		// the medians go in the table.
		var pgs, pipes []pgResult
		var news []svcRun
		var procs, fans, jss []lagResult
		for range max(1, cfg.rounds) {
			if cfg.procLevel[c] {
				p, err := h.processing(ctx, c, 0)
				if err != nil {
					return err
				}
				procs = append(procs, p)
				if cfg.destinations > 0 {
					p, err := h.processing(ctx, c, cfg.destinations)
					if err != nil {
						return err
					}
					fans = append(fans, p)
				}
				if cfg.jetstream {
					p, err := h.jetstream(ctx, c)
					if err != nil {
						return err
					}
					jss = append(jss, p)
				}
			}
			pg, err := h.pgbench(ctx, c, 1)
			if err != nil {
				return err
			}
			pipe, err := h.pgbench(ctx, c, pipelined)
			if err != nil {
				return err
			}
			res, st, err := h.service(ctx, bench.Load{Mix: bench.AllNew, Concurrency: c, Duration: cfg.duration})
			if err != nil {
				return err
			}
			pgs, pipes, news = append(pgs, pg), append(pipes, pipe), append(news, svcRun{res, st})
			fmt.Fprintf(os.Stderr, "level %d: pgbench %.0f messages/s (%.0f pipelined), service %.0f req/s\n", c, pg.tps, pipe.tps, res.RPS())
		}
		byRate := func(a, b pgResult) int { return cmp.Compare(a.tps, b.tps) }
		pg := slices.SortedFunc(slices.Values(pgs), byRate)[len(pgs)/2]
		pipe := slices.SortedFunc(slices.Values(pipes), byRate)[len(pipes)/2]
		med := slices.SortedFunc(slices.Values(news), func(a, b svcRun) int { return cmp.Compare(a.res.RPS(), b.res.RPS()) })[len(news)/2]
		rows = append(rows, row{res: med.res, st: med.st, pg: pg, pipe: pipe})
		if len(procs) > 0 {
			byRPS := func(a, b lagResult) int { return cmp.Compare(a.res.RPS(), b.res.RPS()) }
			p := slices.SortedFunc(slices.Values(procs), byRPS)[len(procs)/2]
			pr := procRow{off: med.res, offStmts: med.st.stmts, on: p, pg: pg}
			if len(fans) > 0 {
				f := slices.SortedFunc(slices.Values(fans), byRPS)[len(fans)/2]
				pr.fan = &f
			}
			if len(jss) > 0 {
				j := slices.SortedFunc(slices.Values(jss), byRPS)[len(jss)/2]
				pr.js = &j
			}
			procRows = append(procRows, pr)
		}
		for _, mix := range []bench.Mix{bench.Repeat30, bench.Storm, bench.Events10} {
			res, st, err := h.service(ctx, bench.Load{Mix: mix, Concurrency: c, Duration: cfg.duration})
			if err != nil {
				return err
			}
			rows = append(rows, row{res: res, st: st, pg: pg})
		}
		for _, r := range rows[len(rows)-4:] {
			fmt.Fprintln(os.Stderr, r.line())
		}
	}
	storm, _, err := h.service(ctx, bench.Load{Mix: bench.Storm, Concurrency: cfg.stormSize, Storms: 5})
	if err != nil {
		return err
	}
	rss, rssStats, err := h.service(ctx, bench.Load{Mix: bench.AllNew, Concurrency: cfg.rssConns, Duration: cfg.duration})
	if err != nil {
		return err
	}
	var recon *reconResult
	if cfg.reconcile > 0 {
		r, err := h.reconciliation(ctx, cfg.reconcile, 100)
		if err != nil {
			return err
		}
		recon = &r
	}
	var mediaRep *mediaReport
	if cfg.mediaLevel > 0 {
		r, err := h.mediaRuns(ctx, cfg.mediaLevel)
		if err != nil {
			return err
		}
		mediaRep = &r
	}
	report := render(cfg, rows, procRows, row{res: storm}, row{res: rss}, rssStats.rssMB, recon) + mediaRep.render()
	fmt.Print(report)
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.md"), []byte(report), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.out, "chart.svg"), []byte(chart(rows)), 0o644)
}

// pipelined is how many messages pgbench's ceiling anchor sends in one
// pipelined transaction.
const pipelined = 16

// svcRun is one run of the service and what it cost.
type svcRun struct {
	res bench.Result
	st  stats
}

type harness struct {
	cfg        config
	stmts      *statements
	stmt       string
	n          int
	postmaster int         // pid, found on first use
	nats       *natsServer // with -jetstream
}

// database creates a fresh, migrated database and returns its URL and a
// function that drops it.
func (h *harness) database(ctx context.Context) (string, func(), error) {
	h.n++
	name := fmt.Sprintf("inbox_bench_%d_%d", os.Getpid(), h.n)
	admin, err := pgx.Connect(ctx, h.cfg.adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to server: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(h.cfg.adminURL)
	u.Path = "/" + name
	// Not ctx: after Ctrl-C, the databases are dropped all the same.
	drop := func() {
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(dropCtx, h.cfg.adminURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: database %s left behind: %v\n", name, err)
			return
		}
		defer c.Close(dropCtx)
		if _, err := c.Exec(dropCtx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: database %s left behind: %v\n", name, err)
		}
	}
	cmd := exec.CommandContext(ctx, h.cfg.inbox, "migrate", "up", "-log-format", "json")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+u.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		drop()
		return "", nil, fmt.Errorf("migrate: %w\n%s", err, out)
	}
	return u.String(), drop, nil
}

// stats is what a run cost: the service's peak RSS in MiB, and the CPU the
// service and PostgreSQL used during the load.
type stats struct {
	rssMB                 float64
	serviceCPU, serverCPU time.Duration
	stmts                 []stmtCost // each statement's cost during the load, when measured
}

// perMessage returns d spread over n messages, in µs.
func perMessage(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(n)
}

// service runs one load against a freshly started service on a fresh
// database, checks the rows, and returns the result and what it cost.
func (h *harness) service(ctx context.Context, l bench.Load) (bench.Result, stats, error) {
	return h.serviceWith(ctx, l, nil, nil, nil)
}

// serviceWith is service with extra environment for `inbox serve`, and
// after, when not nil, run once the load and the row check are done, with
// the service still up.
// runCost reads, for an after func, what the run has cost since its load
// began.
type runCost struct {
	db         string
	pid        int    // the service's
	base       string // where it listens (PUBLIC_BASE_URL)
	sinceStart func(ctx context.Context) (service, server time.Duration, err error)
}

func (h *harness) serviceWith(ctx context.Context, l bench.Load, env []string, before func(dbURL string) error,
	after func(ctx context.Context, pool *pgxpool.Pool, res bench.Result, run runCost) error) (bench.Result, stats, error) {
	var st stats
	dbURL, drop, err := h.database(ctx)
	if err != nil {
		return bench.Result{}, st, err
	}
	defer drop()
	if before != nil {
		if err := before(dbURL); err != nil {
			return bench.Result{}, st, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return bench.Result{}, st, err
	}
	logf, err := os.OpenFile(h.cfg.serverLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return bench.Result{}, st, err
	}
	defer logf.Close()
	serveURL := dbURL
	if h.cfg.dbParams != "" {
		sep := "?"
		if strings.Contains(serveURL, "?") {
			sep = "&"
		}
		serveURL += sep + h.cfg.dbParams
	}
	cmd := exec.Command(h.cfg.inbox, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+serveURL, "TWILIO_AUTH_TOKEN="+token,
		"PUBLIC_BASE_URL=http://"+addr, "LISTEN_ADDR="+addr, "LOG_FORMAT=json", "ADMIN_ADDR="+cmp.Or(h.cfg.pprofAddr, "off"),
		// The load's MMS name media on api.twilio.com: never fetched from
		// another API host (media/), so the run stays on this machine.
		"TWILIO_API_URL=http://127.0.0.1:1")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return bench.Result{}, st, fmt.Errorf("start inbox serve: %w", err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	if err := waitHealthy(addr); err != nil {
		return bench.Result{}, st, err
	}

	l.BaseURL, l.Token = "http://"+addr, token
	serveBefore, selfBefore := procCPU(cmd.Process.Pid), selfCPU()
	pgBefore, err := h.postgresCPU(ctx)
	if err != nil {
		return bench.Result{}, st, err
	}
	if err := h.stmts.reset(ctx); err != nil {
		return bench.Result{}, st, err
	}
	res, err := bench.Run(ctx, l)
	if err != nil {
		return res, st, err
	}
	pgAfter, err := h.postgresCPU(ctx)
	if err != nil {
		return res, st, err
	}
	st.serviceCPU, st.serverCPU = procCPU(cmd.Process.Pid)-serveBefore, pgAfter-pgBefore
	fmt.Fprintf(os.Stderr, "  %s at %d: per request, service %.0f µs CPU, PostgreSQL %.0f µs; the load generator used %.2f CPU-seconds per second\n",
		l.Mix, l.Concurrency, perMessage(st.serviceCPU, res.Requests), perMessage(st.serverCPU, res.Requests),
		(selfCPU()-selfBefore).Seconds()/res.Elapsed.Seconds())
	st.rssMB = peakRSS(cmd.Process.Pid)
	u, _ := url.Parse(dbURL)
	if st.stmts, err = h.stmts.read(ctx, strings.TrimPrefix(u.Path, "/")); err != nil {
		return res, st, err
	}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return res, st, err
	}
	defer pool.Close()
	stored, err := store.New(pool).CountMessagesBySIDs(ctx, res.SIDs)
	if err != nil {
		return res, st, err
	}
	if stored != int64(len(res.SIDs)) {
		return res, st, fmt.Errorf("%s at %d: %d rows stored for %d distinct sids sent", l.Mix, l.Concurrency, stored, len(res.SIDs))
	}
	if !res.OK() {
		return res, st, fmt.Errorf("%s at %d: not every request answered 200: %v, %d failures (%v)", l.Mix, l.Concurrency, res.Statuses, res.Failures, res.FirstError)
	}
	if after != nil {
		return res, st, after(ctx, pool, res, runCost{db: strings.TrimPrefix(u.Path, "/"), pid: cmd.Process.Pid, base: "http://" + addr,
			sinceStart: func(ctx context.Context) (time.Duration, time.Duration, error) {
				pg, err := h.postgresCPU(ctx)
				return procCPU(cmd.Process.Pid) - serveBefore, pg - pgBefore, err
			}})
	}
	return res, st, nil
}

type pgResult struct {
	perTx     int     // messages per pgbench transaction
	tps       float64 // messages per second
	p50, p99  time.Duration
	clientCPU time.Duration // pgbench's own CPU
	serverCPU time.Duration // PostgreSQL's
	messages  int
}

// pgbench drives the generated InsertInboundMessage statement with fresh
// sids at concurrency c, prepared, on a fresh database: one message per
// transaction when perTx is 1, else perTx messages per transaction, sent as
// one pipeline (one round trip, one commit): the ceiling group commit can
// approach.
func (h *harness) pgbench(ctx context.Context, c, perTx int) (pgResult, error) {
	dbURL, drop, err := h.database(ctx)
	if err != nil {
		return pgResult{}, err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "pgbench")
	if err != nil {
		return pgResult{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "insert.sql")
	text := h.stmt + ";\n"
	if perTx > 1 {
		text = "\\startpipeline\nBEGIN;\n" + strings.Repeat(h.stmt+";\n", perTx) + "COMMIT;\n\\endpipeline\n"
	}
	if err := os.WriteFile(script, []byte(text), 0o644); err != nil {
		return pgResult{}, err
	}
	u, _ := url.Parse(dbURL)
	args := []string{
		"-n", "-M", "prepared", "-f", script, "-c", strconv.Itoa(c), "-j", strconv.Itoa(min(c, runtime.NumCPU())),
		"-T", strconv.Itoa(int(h.cfg.duration.Seconds())), "-l", "--log-prefix", filepath.Join(dir, "log"),
		"-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(), strings.TrimPrefix(u.Path, "/"),
	}
	pgBefore, err := h.postgresCPU(ctx)
	if err != nil {
		return pgResult{}, err
	}
	cmd := exec.CommandContext(ctx, h.cfg.pgbench, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return pgResult{}, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	pgAfter, err := h.postgresCPU(ctx)
	if err != nil {
		return pgResult{}, err
	}
	m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		return pgResult{}, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	lat, err := pgbenchLatencies(dir)
	if err != nil {
		return pgResult{}, err
	}
	p50, p99, _ := bench.Percentiles(lat)
	return pgResult{
		perTx: perTx, tps: tps * float64(perTx), p50: p50, p99: p99,
		clientCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), serverCPU: pgAfter - pgBefore,
		messages: len(lat) * perTx,
	}, nil
}

// generatedInsert returns the pgbench command for one message: the
// statement sqlc generated for InsertInboundMessage, as db's code sends it
// (recorded, not run: see recorder), with its parameters as the service sends them for a simulated SMS with
// processing off (the same metadata, about 700 bytes, of the same shape;
// max_attempts 0, so no job) and the sid made in SQL, fresh each time, so
// that it is one statement and one round trip, as in the service. pgbench
// variables are numeric only, so the values are SQL literals; the sid
// replaces a placeholder in the metadata.
func generatedInsert() (string, error) {
	var rec recorder
	db.New(&rec).InsertInboundMessage(context.Background(), []db.InsertInboundMessageParams{{}}).Close()
	if rec.sql == "" {
		return "", errors.New("db's InsertInboundMessage sent no statement")
	}
	const placeholder = "SM00000000000000000000000000000000"
	form := simulate.InboundForm(simulate.SMS, placeholder, 1)
	p := message.Params{}
	for k := range form {
		p[k] = form.Get(k)
	}
	meta, err := message.Metadata{MessageSID: placeholder, IdempotencyToken: "9f4b2c1d-0000-4000-8000-1234567890ab", Params: p}.MarshalJSON()
	if err != nil {
		return "", err
	}
	media, _ := message.MediaList{}.MarshalJSON()
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	values := map[string]string{
		"$1": quote(form.Get("AccountSid")), "$2": "NULL", "$3": quote(form.Get("From")), "$4": quote(form.Get("To")),
		"$5": quote(form.Get("Body")), "$6": "0", "$7": "1", "$8": quote(string(media)) + "::jsonb",
		"$9": "replace(" + quote(string(meta)) + ", '" + placeholder + "', 'SM' || md5(random()::text || clock_timestamp()::text))::jsonb",
		// max_attempts and route_attempts 0, as the service's group commit
		// sends each row: its jobs are one statement per batch after them.
		"$10": quote(job.KindMessage), "$11": "0", "$12": "0",
	}
	stmt := regexp.MustCompile(`\$[0-9]+`).ReplaceAllStringFunc(rec.sql, func(v string) string { return values[v] })
	// pgbench wants one command per line.
	var lines []string
	for _, l := range strings.Split(stmt, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
			lines = append(lines, t)
		}
	}
	return strings.Join(lines, " "), nil
}

// recorder is a connection that records the statement of the first batch
// sent through it and runs nothing.
type recorder struct{ sql string }

var errRecorded = errors.New("recorded, not run")

func (r *recorder) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errRecorded
}
func (r *recorder) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, errRecorded }
func (r *recorder) QueryRow(context.Context, string, ...any) pgx.Row        { return errRow{} }
func (r *recorder) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	if r.sql == "" && len(b.QueuedQueries) > 0 {
		r.sql = b.QueuedQueries[0].SQL
	}
	return errBatch{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

type errBatch struct{}

func (errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, errRecorded }
func (errBatch) Query() (pgx.Rows, error)         { return nil, errRecorded }
func (errBatch) QueryRow() pgx.Row                { return errRow{} }
func (errBatch) Close() error                     { return nil }
func (errBatch) Tx() pgx.Tx                       { return nil }

func pgbenchLatencies(dir string) ([]time.Duration, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	var lat []time.Duration
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 3 {
				us, err := strconv.Atoi(fields[2])
				if err == nil {
					lat = append(lat, time.Duration(us)*time.Microsecond)
				}
			}
		}
		fh.Close()
	}
	if len(lat) == 0 {
		return nil, errors.New("pgbench wrote no transaction log")
	}
	return lat, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("inbox serve on %s not ready after 15 s", addr)
}

// peakRSS returns the process's peak resident set (VmHWM) in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// procCPU returns the user and system CPU time a process has used.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// selfCPU returns the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
