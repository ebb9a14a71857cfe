package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/internal/twiliotest"
	"inbox/message"
	"inbox/simulate"
)

// reconResult is what one reconciliation sweep cost.
type reconResult struct {
	listed, missing, found, pages int
	elapsed                       time.Duration
	serviceCPU, serverCPU, stdCPU time.Duration // inbox's, PostgreSQL's, the stand-in's
	transactions                  int64         // committed in the benchmark's database
}

// reconcileAccount and reconcileToken are the stand-in's account.
const (
	reconcileAccount = simulate.AccountSID
	reconcileToken   = "0123456789abcdef0123456789abcdef"
)

// reconciliation runs the real `inbox reconcile` once over n messages the
// stand-in lists (sent over the last n seconds, pages of 1000), of which
// one in missingEvery is not stored, on a fresh database: what the sweep of
// an account after an outage, or a backfill, costs.
func (h *harness) reconciliation(ctx context.Context, n, missingEvery int) (reconResult, error) {
	var r reconResult
	dbURL, drop, err := h.database(ctx)
	if err != nil {
		return r, err
	}
	defer drop()
	tw := twiliotest.New()
	defer tw.Close()
	tw.AddAccount(reconcileAccount, reconcileToken)
	now := time.Now()
	ms := make([]twiliotest.Message, n)
	var stored [][]any
	for i := range ms {
		sid := fmt.Sprintf("SM%032x", i+1)
		form := simulate.InboundForm(simulate.SMS, sid, 1)
		ms[i] = twiliotest.Message{SID: sid, AccountSID: reconcileAccount, From: form.Get("From"), To: form.Get("To"),
			Body: form.Get("Body"), Direction: "inbound", Status: "received", Sent: now.Add(-time.Duration(i) * time.Second)}
		if i%missingEvery == 0 {
			r.missing++
			continue
		}
		meta, _ := message.Metadata{MessageSID: sid, Source: message.SourceWebhook, Params: message.Params{"MessageSid": sid, "Body": ms[i].Body}}.MarshalJSON()
		stored = append(stored, []any{"inbound", reconcileAccount, ms[i].From, ms[i].To, ms[i].Body, 0, 1, "[]", "received", string(meta)})
	}
	tw.Add(ms...)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return r, err
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"messages"},
		[]string{"direction", "account_sid", "from_address", "to_address", "body", "num_media", "num_segments", "media", "status", "metadata"},
		pgx.CopyFromRows(stored))
	conn.Close(ctx)
	if err != nil {
		return r, fmt.Errorf("store the messages webhooks delivered: %w", err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return r, err
	}
	name := strings.TrimPrefix(u.Path, "/")
	txBefore, err := h.transactions(ctx, name)
	if err != nil {
		return r, err
	}
	pgBefore, err := h.postgresCPU(ctx)
	if err != nil {
		return r, err
	}
	selfBefore := selfCPU()
	cmd := exec.CommandContext(ctx, h.cfg.inbox, "reconcile", "-since", "48h", "-log-level", "warn", "-log-format", "json")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "TWILIO_API_URL="+tw.URL, "TWILIO_ACCOUNT_SID="+reconcileAccount,
		"TWILIO_AUTH_TOKEN="+reconcileToken,
		// As serve with processing on: each found message gets its job.
		"FORWARD_URL=http://127.0.0.1:9/unused", "FORWARD_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r.elapsed = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("inbox reconcile: %w\n%s", err, out)
	}
	pgAfter, err := h.postgresCPU(ctx)
	if err != nil {
		return r, err
	}
	r.stdCPU, r.serverCPU = selfCPU()-selfBefore, pgAfter-pgBefore
	r.serviceCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if _, err := fmt.Sscanf(string(out[strings.Index(string(out), ": ")+2:]), "%d pages, %d listed", &r.pages, &r.listed); err != nil {
		return r, fmt.Errorf("read the summary %q: %w", out, err)
	}
	fmt.Sscanf(string(out[strings.Index(string(out), "already stored, ")+len("already stored, "):]), "%d stored now", &r.found)
	txAfter, err := h.transactions(ctx, name)
	if err != nil {
		return r, err
	}
	r.transactions = txAfter - txBefore
	if r.listed != n || r.found != r.missing {
		return r, fmt.Errorf("reconcile listed %d of %d and stored %d of the %d missing:\n%s", r.listed, n, r.found, r.missing, out)
	}
	fmt.Fprintf(os.Stderr, "reconciliation: %d listed in %d pages in %s, %d stored; %d transactions in the database\n",
		r.listed, r.pages, r.elapsed.Round(time.Millisecond), r.found, r.transactions)
	return r, nil
}

// transactions returns the transactions committed in database name, once
// the backends that ran them have reported them: the count stops moving.
func (h *harness) transactions(ctx context.Context, name string) (int64, error) {
	c, err := pgx.Connect(ctx, h.cfg.adminURL) // another database: its own queries are not counted
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var last int64 = -1
	for stable := 0; stable < 3; {
		var n int64
		if err := c.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, name).Scan(&n); err != nil {
			return 0, err
		}
		if n == last {
			stable++
		} else {
			stable, last = 0, n
		}
		time.Sleep(400 * time.Millisecond) // statistics reach pg_stat_database within a second of a transaction
	}
	return last, nil
}
