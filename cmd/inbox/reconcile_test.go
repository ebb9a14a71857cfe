package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/internal/twiliotest"
	"inbox/simulate"
)

// standIn is a stand-in for Twilio's API holding n inbound messages of
// simulate's account sent over the last n seconds, every mediaEvery-th
// (0: none) an MMS with one medium, and the settings that point a server
// at it.
func standIn(t *testing.T, n, mediaEvery int) (*twiliotest.Server, []string, map[string]string) {
	t.Helper()
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	tw.AddAccount(simulate.AccountSID, testToken)
	now := time.Now()
	sids := make([]string, n)
	ms := make([]twiliotest.Message, n)
	for i := range ms {
		kind := simulate.SMS
		if mediaEvery > 0 && i%mediaEvery == 0 {
			kind = simulate.MMS
		}
		sids[i] = simulate.NewMessageSID(kind)
		ms[i] = twiliotest.Message{SID: sids[i], AccountSID: simulate.AccountSID, From: fmt.Sprintf("+1555%07d", i), To: "+15550009999",
			Body: fmt.Sprintf("sent while the service was down, %d", i), Direction: "inbound", Status: "received", Sent: now.Add(-time.Duration(i) * time.Second)}
		if kind == simulate.MMS {
			ms[i].Media = []twiliotest.Medium{{SID: fmt.Sprintf("ME%032x", i), ContentType: "image/png"}}
		}
	}
	tw.Add(ms...)
	return tw, sids, map[string]string{
		"TWILIO_API_URL": tw.URL, "TWILIO_ACCOUNT_SID": simulate.AccountSID, "RECONCILE_INTERVAL": "1s",
	}
}

// TestOutageIsFoundAndForwarded: the service was not running while Twilio
// took 300 inbound messages (30 with media) for the account; serve starts,
// and its sweeps store each once, with its media and its job, forward each
// once, count them found, and the admin API shows the account's watermark.
func TestOutageIsFoundAndForwarded(t *testing.T) {
	t.Parallel()
	_, sids, vars := standIn(t, 300, 10)
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	maps.Copy(vars, app.Env())
	started := time.Now()
	s, base := startAdmin(t, databaseURL, vars)
	pool := dbtest.Connect(t, databaseURL, 2)
	rows := func() int {
		var n int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM messages WHERE metadata->>'source' = 'reconcile'`).Scan(&n)
		return n
	}
	poll.Until(t, "the sweep to store the 300 messages", func() bool { return rows() == 300 })
	t.Logf("300 messages stored %s after serve started", time.Since(started).Round(time.Millisecond))
	poll.Until(t, "every found message to be forwarded", func() bool { return app.Distinct() == 300 })
	var jobs, withMedia int
	pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM `+dbtest.EnqueuedJobs+`),
		(SELECT count(*) FROM messages WHERE num_media = 1 AND jsonb_array_length(media) = 1)`).Scan(&jobs, &withMedia)
	if jobs != 300 || withMedia != 30 || app.Total() != 300 {
		t.Fatalf("%d jobs, %d messages with their medium, %d forwards; want 300, 30, 300", jobs, withMedia, app.Total())
	}
	for _, sid := range sids[:5] {
		if p := app.Payloads(sid); len(p) != 1 || p[0].Message.Source != "reconcile" || p[0].Message.Params["Body"] == "" {
			t.Fatalf("forward of %s: %+v, want one, of source reconcile, with its parameters", sid, p)
		}
	}
	if v, ok := value(scrape(t, base), "inbox_reconcile_found_total", map[string]string{"kind": "message"}); !ok || v != 300 {
		t.Fatalf("inbox_reconcile_found_total{kind=message} = %v (%v), want 300", v, ok)
	}
	var accounts struct {
		Accounts []struct {
			AccountSID string `json:"account_sid"`
			Reconcile  *struct {
				Watermark *time.Time `json:"watermark"`
				Found     int64      `json:"found"`
			} `json:"reconcile"`
		} `json:"accounts"`
	}
	poll.Until(t, "the admin API to show a watermark", func() bool {
		_, _, body := adminDo(t, "GET", base+"/api/accounts", "Bearer "+adminToken)
		if err := json.Unmarshal(body, &accounts); err != nil {
			t.Fatalf("/api/accounts: %v: %s", err, body)
		}
		return len(accounts.Accounts) == 1 && accounts.Accounts[0].Reconcile != nil && accounts.Accounts[0].Reconcile.Watermark != nil
	})
	if a := accounts.Accounts[0]; a.AccountSID != simulate.AccountSID || a.Reconcile.Watermark.Before(started) {
		t.Fatalf("account %+v: want its watermark after serve started", a)
	}
	if !strings.Contains(s.stderr.String(), "message found by reconciliation") {
		t.Fatal("found messages are not logged")
	}
}

// TestSweepSurvivesThrottlingAndAKill: the stand-in answers every third
// request 429, and the real binary is kill -9ed while a sweep waits for
// its second page; restarted, it resumes: every message stored once, a job
// each, and no page listed more than twice.
func TestSweepSurvivesThrottlingAndAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for River's leader after a kill")
	}
	t.Parallel()
	tw, sids, vars := standIn(t, 2500, 0)
	tw.ThrottleEvery(3, "0")
	// The second page's request waits in the stand-in until the kill.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tw.Fault(func(r *http.Request) (int, string, bool) {
		if r.URL.Query().Get("PageToken") != "" {
			once.Do(func() { close(entered); <-release })
		}
		return 0, "", false
	})
	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	maps.Copy(vars, app.Env())
	vars["WORKERS"] = "0" // jobs are inserted with the rows; no forward is in flight at the kill
	bin := buildInbox(t)
	first := startServeProcess(t, bin, databaseURL, vars)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatalf("the sweep never asked for its second page:\n%s", first.stderr)
	}
	first.kill()
	close(release)

	pool := dbtest.Connect(t, databaseURL, 2)
	var before int
	pool.QueryRow(t.Context(), `SELECT count(*) FROM messages`).Scan(&before)
	startServeProcess(t, bin, databaseURL, vars)
	// A new leader is elected once the dead one's lease lapses.
	// The listings are read the moment the sweep is seen done: the next
	// sweep (RECONCILE_INTERVAL is 1 s) lists the first page again, and a
	// busy machine could let it start before a later read.
	var c twiliotest.Counts
	poll.Within(t, 60*time.Second, "the resumed sweep to finish", func() bool {
		var done bool
		c = tw.Counts()
		pool.QueryRow(t.Context(), `SELECT watermark IS NOT NULL FROM reconcile_sweeps WHERE account_sid = $1`, simulate.AccountSID).Scan(&done)
		return done
	})
	var rows, distinct, jobs, doubled int
	pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT metadata->>'message_sid'),
		(SELECT count(*) FROM `+dbtest.EnqueuedJobs+`),
		(SELECT count(*) FROM (SELECT 1 FROM `+dbtest.EnqueuedJobs+` GROUP BY sid HAVING count(*) > 1) d)
		FROM messages WHERE metadata->>'message_sid' = ANY($1)`, sids).Scan(&rows, &distinct, &jobs, &doubled)
	if rows != 2500 || distinct != 2500 || jobs != 2500 || doubled != 0 {
		t.Fatalf("%d rows (%d sids), %d jobs, %d sids with two; want 2500 of each and none twice", rows, distinct, jobs, doubled)
	}
	for token, n := range c.Listings {
		if n > 2 {
			t.Fatalf("page %q listed %d times", token, n)
		}
	}
	if c.Throttled == 0 || before == 0 || before == 2500 {
		t.Fatalf("throttled %d, %d stored at the kill: the test would not exercise a throttled sweep cut midway", c.Throttled, before)
	}
	t.Logf("%d stored at the kill; %d requests, %d throttled; listings by page %v", before, c.Requests, c.Throttled, c.Listings)
}

// TestReconcileCommand: `inbox reconcile -since 2h` stores what no webhook
// delivered and says so; with a token Twilio refuses it fails, naming the
// account.
func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	_, sids, vars := standIn(t, 40, 4)
	databaseURL := dbtest.URL(t)
	s := startServe(t, databaseURL, nil)
	for _, sid := range sids[:10] { // ten came by webhook
		if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
			t.Fatalf("delivery: %d", st)
		}
	}
	vars["DATABASE_URL"], vars["TWILIO_AUTH_TOKEN"], vars["LOG_FORMAT"] = databaseURL, testToken, "json"
	var stdout strings.Builder
	if err := run(t.Context(), []string{"reconcile", "-since", "2h"}, env(vars), nil, &stdout, io.Discard); err != nil {
		t.Fatalf("reconcile: %v\n%s", err, stdout.String())
	}
	want := simulate.AccountSID + ": 1 pages, 40 listed, 10 already stored, 30 stored now, 7 media lists fetched"
	if !strings.Contains(stdout.String(), want) {
		t.Fatalf("reconcile said:\n%s\nwant %q", stdout.String(), want)
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	var rows int
	pool.QueryRow(t.Context(), `SELECT count(*) FROM messages WHERE metadata->>'message_sid' = ANY($1)`, sids).Scan(&rows)
	if rows != 40 {
		t.Fatalf("%d rows, want 40", rows)
	}
	vars["TWILIO_AUTH_TOKEN"] = "not-the-token"
	stdout.Reset()
	err := run(t.Context(), []string{"reconcile", "-since", "2h"}, env(vars), nil, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), simulate.AccountSID) || !strings.Contains(err.Error(), "20003") {
		t.Fatalf("reconcile with a wrong token: %v, want a failure naming the account and Twilio's 20003", err)
	}
	if err := run(t.Context(), []string{"reconcile"}, env(vars), nil, &stdout, io.Discard); err == nil || !strings.Contains(err.Error(), "-since is required") {
		t.Fatalf("reconcile without -since: %v", err)
	}
}
