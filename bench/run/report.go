package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"inbox/bench"
)

// row is one line of the table: a service run and pgbench at the same
// concurrency.
type row struct {
	res  bench.Result
	st   stats
	pg   pgResult
	pipe pgResult // only on the all-new rows
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func (r row) ratio() float64 {
	if r.pg.tps == 0 {
		return 0
	}
	return r.res.RPS() / r.pg.tps
}

func (r row) non200() int { return r.res.Requests - r.res.Statuses[200] }

func (r row) line() string {
	ratio := "-"
	if r.pg.tps > 0 {
		ratio = fmt.Sprintf("%.2f", r.ratio())
	}
	pg, pgp99 := "-", "-"
	if r.pg.tps > 0 && r.res.Mix == bench.AllNew {
		pg, pgp99 = fmt.Sprintf("%.0f", r.pg.tps), ms(r.pg.p99)
	}
	return fmt.Sprintf("| %s | %d | %d | %.0f | %s | %s | %s | %d | %d = %d | %.0f | %.0f | %s | %s | %s |",
		r.res.Mix, r.res.Concurrency, r.res.Requests, r.res.RPS(), ms(r.res.P50), ms(r.res.P99), ms(r.res.Max),
		r.non200(), len(r.res.SIDs), len(r.res.SIDs), perMessage(r.st.serviceCPU, r.res.Requests), perMessage(r.st.serverCPU, r.res.Requests),
		pg, pgp99, ratio)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s; load generator, service and PostgreSQL on the same machine", runtime.NumCPU(), model, runtime.Version())
}

// procRow compares, at one level, the all-new mix with processing off and
// on (medians of the same rounds).
type procRow struct {
	off      bench.Result
	offStmts []stmtCost
	on       lagResult
	// fan, when run, is on with cfg.destinations destinations beside
	// FORWARD_URL, each matching every message.
	fan *lagResult
	// js, when run, is on with one JetStream destination instead.
	js *lagResult
	pg pgResult
}

func render(cfg config, rows []row, procRows []procRow, storm, rss row, rssMB float64, recon *reconResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s. Each run: %s on a fresh database. At each level pgbench and the all-new mix alternate %d times (the medians are shown); the ratio column divides each row's rate by that median pgbench rate.\n\n", machine(), cfg.duration, max(1, cfg.rounds))
	b.WriteString("| mix | conc | requests | req/s | p50 ms | p99 ms | max ms | non-200 | rows = distinct sids | service CPU µs/req | PostgreSQL CPU µs/req | pgbench tps | pgbench p99 ms | service / pgbench |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r.line() + "\n")
	}
	fmt.Fprintf(&b, "\nevents10: each request is a signed Event Streams batch of %d new inbound messages to /twilio/events, answered once all are committed: messages/s is %d × req/s, and the CPU columns are per batch. Twilio waits 5 s for a sink's answer: compare the max column.\n", bench.EventsPerBatch, bench.EventsPerBatch)
	fmt.Fprintf(&b, "\npgbench beside it, the same statement with the same metadata, fresh sids, at the same concurrency (medians of the same rounds): one message per transaction, and %d per pipelined transaction (one round trip, one commit: the ceiling group commit can approach). CPU per message: PostgreSQL's (the postmaster and all its children), and pgbench's own.\n\n", pipelined)
	b.WriteString("| conc | pgbench msg/s | p50 ms | p99 ms | PostgreSQL CPU µs/msg | pgbench CPU µs/msg | pipelined msg/s | pipelined PostgreSQL CPU µs/msg | service / pgbench | service / pipelined |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.pipe.tps == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %d | %.0f | %s | %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f |\n", r.res.Concurrency, r.pg.tps, ms(r.pg.p50), ms(r.pg.p99),
			perMessage(r.pg.serverCPU, r.pg.messages), perMessage(r.pg.clientCPU, r.pg.messages), r.pipe.tps,
			perMessage(r.pipe.serverCPU, r.pipe.messages), r.res.RPS()/r.pg.tps, r.res.RPS()/r.pipe.tps)
	}
	if len(procRows) > 0 {
		b.WriteString("\nProcessing on: the all-new mix with `FORWARD_URL` set, every message forwarded (signed) to an app on the same machine that answers 204 at once. Lag is from the message's `received_at` (its transaction's start) to its arrival at the app.\n\n")
		b.WriteString("| conc | off req/s | on req/s | on / off | on / pgbench | on p50 ms | on p99 ms | lag p50 ms | lag p99 ms | lag max ms | forwarded by the end of the load | rest forwarded within | service CPU µs/msg | PostgreSQL CPU µs/msg |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range procRows {
			on := p.on.res
			fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f | %.2f | %s | %s | %s | %s | %s | %d of %d | %s | %.0f | %.0f |\n",
				on.Concurrency, p.off.RPS(), on.RPS(), on.RPS()/p.off.RPS(), on.RPS()/p.pg.tps, ms(on.P50), ms(on.P99),
				ms(p.on.lagP50), ms(p.on.lagP99), ms(p.on.lagMax), p.on.byEnd, len(on.SIDs), p.on.drain.Round(10*time.Millisecond),
				perMessage(p.on.serviceCPU, len(on.SIDs)), perMessage(p.on.serverCPU, len(on.SIDs)))
		}
		b.WriteString("\nCPU per message here runs from the load's start to the last forward (the drain included), so every forward is paid for.\n")
		fanTable(&b, cfg, procRows)
		jetstreamTable(&b, procRows)
		for _, p := range procRows {
			if len(p.on.stmts) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\nWhat each statement cost PostgreSQL per message at concurrency %d (`pg_stat_statements`; the median rounds): processing off, over the load, and on, from the load's start to the last forward.\n", p.on.res.Concurrency)
			stmtTable(&b, "processing off", p.offStmts, len(p.off.SIDs))
			stmtTable(&b, "processing on", p.on.stmts, len(p.on.res.SIDs))
			if p.fan != nil && len(p.fan.stmts) > 0 {
				stmtTable(&b, fmt.Sprintf("%d destinations", cfg.destinations+1), p.fan.stmts, len(p.fan.res.SIDs))
			}
		}
	}
	s := storm.res
	fmt.Fprintf(&b, "\nStorm of %d identical requests at once, %d storms: %d requests, %d answered 200, %d rows for %d sids, p50 %s ms, p99 %s ms, max %s ms.\n",
		s.Concurrency, len(s.SIDs), s.Requests, s.Statuses[200], len(s.SIDs), len(s.SIDs), ms(s.P50), ms(s.P99), ms(s.Max))
	fmt.Fprintf(&b, "\nPeak RSS (VmHWM) of `inbox serve` under %d connections (all-new mix, %s): %.1f MiB; %.0f req/s, p99 %s ms.\n",
		rss.res.Concurrency, cfg.duration, rssMB, rss.res.RPS(), ms(rss.res.P99))
	b.WriteString("\npgbench runs the statement sqlc generated for InsertInboundMessage (`-M prepared`) with the metadata the service stores for a simulated SMS (about 700 bytes, same shape) and the sid made in SQL: one statement and one round trip per message, as in the service.\n")
	if recon != nil {
		r := *recon
		fmt.Fprintf(&b, "\nReconciliation: `inbox reconcile -since 48h` over %d messages the stand-in for Twilio's API lists (pages of 1000), %d of them not stored; processing on, so each found message gets its job.\n\n", r.listed, r.missing)
		b.WriteString("| listed | pages | stored now | seconds | listed/s | inbox CPU µs/listed | PostgreSQL CPU µs/listed | stand-in CPU µs/listed | database transactions | per page |\n|---|---|---|---|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %d | %d | %d | %.1f | %.0f | %.1f | %.1f | %.1f | %d | %.1f |\n", r.listed, r.pages, r.found, r.elapsed.Seconds(),
			float64(r.listed)/r.elapsed.Seconds(), perMessage(r.serviceCPU, r.listed), perMessage(r.serverCPU, r.listed), perMessage(r.stdCPU, r.listed),
			r.transactions, float64(r.transactions)/float64(max(r.pages, 1)))
	}
	return b.String()
}

// chart draws throughput and p99 against concurrency, for the service's
// mixes and pgbench, as a dependency-free SVG.
func chart(rows []row) string {
	type series struct {
		name  string
		color string
		rps   map[int]float64
		p99   map[int]float64
	}
	mk := func(name, color string) *series {
		return &series{name: name, color: color, rps: map[int]float64{}, p99: map[int]float64{}}
	}
	all := []*series{mk("service, all new", "#1f77b4"), mk("service, 30% repeats", "#2ca02c"), mk("service, storms", "#9467bd"), mk("pgbench, same statement", "#d62728")}
	var levels []int
	for _, r := range rows {
		i := map[bench.Mix]int{bench.AllNew: 0, bench.Repeat30: 1, bench.Storm: 2}[r.res.Mix]
		all[i].rps[r.res.Concurrency] = r.res.RPS()
		all[i].p99[r.res.Concurrency] = float64(r.res.P99) / 1e6
		if r.res.Mix == bench.AllNew {
			levels = append(levels, r.res.Concurrency)
			all[3].rps[r.res.Concurrency] = r.pg.tps
			all[3].p99[r.res.Concurrency] = float64(r.pg.p99) / 1e6
		}
	}
	const w, h, pad = 460, 300, 55
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", 2*w, h+60)
	panel := func(x0 int, title string, get func(*series) map[int]float64) {
		maxY := 0.0
		for _, s := range all {
			for _, v := range get(s) {
				maxY = math.Max(maxY, v)
			}
		}
		maxY *= 1.1
		if maxY == 0 {
			maxY = 1
		}
		px := func(i int) float64 {
			return float64(x0+pad) + float64(i)*float64(w-2*pad)/float64(max(1, len(levels)-1))
		}
		py := func(v float64) float64 { return float64(h-pad) - v/maxY*float64(h-2*pad) + 20 }
		fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`+"\n", x0+pad, title)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#333"/>`+"\n", x0+pad, py(0), x0+w-pad, py(0))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#333"/>`+"\n", x0+pad, py(0), x0+pad, py(maxY))
		for k := 0; k <= 4; k++ {
			v := maxY * float64(k) / 4
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.0f</text><line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#eee"/>`+"\n",
				x0+pad-4, py(v)+4, v, x0+pad, py(v), x0+w-pad, py(v))
		}
		for i, c := range levels {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%d</text>`+"\n", px(i), py(0)+14, c)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="middle">concurrency</text>`+"\n", x0+w/2, py(0)+28)
		for _, s := range all {
			var pts []string
			for i, c := range levels {
				if v, ok := get(s)[c]; ok {
					pts = append(pts, fmt.Sprintf("%.0f,%.0f", px(i), py(v)))
				}
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		}
	}
	panel(0, "throughput (requests or transactions / s)", func(s *series) map[int]float64 { return s.rps })
	panel(w, "p99 latency (ms)", func(s *series) map[int]float64 { return s.p99 })
	for i, s := range all {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", pad+i*210, h+42, s.color, pad+i*210+16, h+46, s.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// stmtTable writes what each statement cost per message over n messages.
func stmtTable(b *strings.Builder, what string, stmts []stmtCost, n int) {
	fmt.Fprintf(b, "\n%s, %d messages:\n\n", what, n)
	b.WriteString("| statement | calls | rows a call | execution µs/msg | buffers/msg | WAL bytes/msg |\n|---|---|---|---|---|---|\n")
	var total float64
	for _, sc := range stmts {
		total += sc.execMS
		fmt.Fprintf(b, "| %s | %d | %.1f | %.1f | %.1f | %.0f |\n", sc.name, sc.calls, sc.rowsPerRun, sc.execMS*1000/float64(n),
			float64(sc.buffers)/float64(n), sc.walBytes/float64(n))
	}
	fmt.Fprintf(b, "| all %d above | | | %.1f | | |\n", len(stmts), total*1000/float64(n))
}

// fanTable compares, at each processing level, one destination
// (FORWARD_URL's) with FORWARD_URL's and cfg.destinations more, each
// matching every message, in the same rounds.
func fanTable(b *strings.Builder, cfg config, procRows []procRow) {
	if cfg.destinations == 0 {
		return
	}
	n := cfg.destinations + 1
	fmt.Fprintf(b, "\nFan-out: the same load with %d destinations (FORWARD_URL and %d of the table, each matching every message, each to its own path of the same app), alternating with the one-destination runs above. Deliveries per message: %d. PostgreSQL CPU per stored message from the load's start to the last delivery.\n", n, cfg.destinations, n)
	if cfg.failing {
		b.WriteString("One of the table's destinations answers 500 to every delivery for the whole run (its breaker off, so it keeps failing and retrying): the lag columns are FORWARD_URL's, beside that failing neighbour, and the run ends when every message reached the healthy ones.\n")
	}
	b.WriteString("\n")
	b.WriteString("| conc | 1 dest req/s | " + strconv.Itoa(n) + " dests req/s | ratio | 1 dest lag p99 ms | " + strconv.Itoa(n) + " dests lag p99 ms | 1 dest PostgreSQL CPU µs/msg | " + strconv.Itoa(n) + " dests PostgreSQL CPU µs/msg | CPU ratio | service CPU µs/msg, 1 / " + strconv.Itoa(n) + " |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range procRows {
		if p.fan == nil {
			continue
		}
		on, fan := p.on, *p.fan
		one, many := perMessage(on.serverCPU, len(on.res.SIDs)), perMessage(fan.serverCPU, len(fan.res.SIDs))
		fmt.Fprintf(b, "| %d | %.0f | %.0f | %.2f | %s | %s | %.0f | %.0f | %.2f | %.0f / %.0f |\n", on.res.Concurrency, on.res.RPS(), fan.res.RPS(),
			fan.res.RPS()/on.res.RPS(), ms(on.lagP99), ms(fan.lagP99), one, many, many/one,
			perMessage(on.serviceCPU, len(on.res.SIDs)), perMessage(fan.serviceCPU, len(fan.res.SIDs)))
	}
}

// jetstreamTable compares, at each processing level, FORWARD_URL's app
// with one JetStream destination, in the same rounds.
func jetstreamTable(b *strings.Builder, procRows []procRow) {
	var rows []procRow
	for _, p := range procRows {
		if p.js != nil {
			rows = append(rows, p)
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("\nJetStream: the same load with one destination, a JetStream subject of a private nats-server (file storage, a 2-minute duplicate window; each publish waits for its PubAck), instead of FORWARD_URL's app, alternating with the runs above. Lag is from the message's commit to its arrival at a subscriber of the subject; publishes/s from the load's start to the last.\n\n")
	b.WriteString("| conc | HTTP req/s | JetStream req/s | JetStream publishes/s | HTTP lag p99 ms | JetStream lag p50 ms | JetStream lag p99 ms | PostgreSQL CPU µs/msg, HTTP / JetStream | service CPU µs/msg, HTTP / JetStream |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range rows {
		on, js := p.on, *p.js
		fmt.Fprintf(b, "| %d | %.0f | %.0f | %.0f | %s | %s | %s | %.0f / %.0f | %.0f / %.0f |\n", on.res.Concurrency, on.res.RPS(), js.res.RPS(), js.publishRate(),
			ms(on.lagP99), ms(js.lagP50), ms(js.lagP99), perMessage(on.serverCPU, len(on.res.SIDs)), perMessage(js.serverCPU, len(js.res.SIDs)),
			perMessage(on.serviceCPU, len(on.res.SIDs)), perMessage(js.serviceCPU, len(js.res.SIDs)))
	}
}
