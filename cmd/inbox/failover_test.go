package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/pgcluster"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// failoverLoad delivers new sids to addr from 16 workers, each sid twice at
// once (Twilio's retries, racing replicas), until stop, and keeps the
// score.
type failoverLoad struct {
	mu       sync.Mutex
	answered map[string]bool // sids with a 200
	ok, unav atomic.Int64    // answers 200 and 503
	failed   atomic.Int64    // no answer
	// firstOK is when the first 200 came after after was set.
	after, firstOK atomic.Pointer[time.Time]
	stop           chan struct{}
	wg             sync.WaitGroup
}

func startFailoverLoad(addr string) *failoverLoad {
	l := &failoverLoad{answered: map[string]bool{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				sid := simulate.NewMessageSID(simulate.SMS)
				var pair sync.WaitGroup
				for range 2 {
					pair.Go(func() { l.deliver(client, addr, sid) })
				}
				pair.Wait()
			}
		})
	}
	return l
}

func (l *failoverLoad) deliver(client *http.Client, addr, sid string) {
	req, err := simulate.NewRequest(context.Background(), "http://"+addr+api.PathMessages, publicURL+api.PathMessages,
		testToken, simulate.InboundForm(simulate.SMS, sid, 1))
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		l.failed.Add(1)
		return
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		l.ok.Add(1)
		now := time.Now()
		if after := l.after.Load(); after != nil && now.After(*after) {
			l.firstOK.CompareAndSwap(nil, &now)
		}
		l.mu.Lock()
		l.answered[sid] = true
		l.mu.Unlock()
	case http.StatusServiceUnavailable:
		l.unav.Add(1)
	}
}

func (l *failoverLoad) sids() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answered)
}

func (l *failoverLoad) end() []string {
	close(l.stop)
	l.wg.Wait()
	return slices.Collect(maps.Keys(l.answered))
}

// TestPrimaryFailoverLosesNothingAcknowledged: serve, with forwarding, on
// a multi-host DATABASE_URL over a primary and its standby, under load;
// kill -9 the primary's postmaster mid-load and promote the standby. With
// synchronous replication, every sid answered 200 is on the new primary,
// with exactly one job, and every stored message is forwarded; serve finds
// the new primary by itself (its writers, River's leader and the accounts
// listener), without a restart. With asynchronous replication the same is
// measured and what it lost is reported.
func TestPrimaryFailoverLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers and the real binary")
	}
	if why := pgcluster.Available(); why != "" {
		if os.Getenv("INBOX_REQUIRE_CLUSTER") != "" {
			t.Fatal(why)
		}
		t.Skip("\n\n*** NO POSTGRESQL BINARIES for the failover test: " + why + " ***\n")
	}
	t.Parallel()
	bin := buildInbox(t)
	for _, sync := range []bool{true, false} {
		name := map[bool]string{true: "synchronous", false: "asynchronous"}[sync]
		t.Run(name, func(t *testing.T) { failover(t, bin, sync) })
	}
}

func failover(t *testing.T, bin string, synchronous bool) {
	primary := pgcluster.NewPrimary(t)
	primary.Exec("postgres", `CREATE DATABASE inbox`)
	migrate := exec.Command(bin, "migrate", "up")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+primary.URL("inbox"), "LOG_FORMAT=json")
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	standby := primary.Standby()
	want := "streaming async"
	if synchronous {
		primary.RequireSync()
		want = "streaming sync"
	}
	poll.Until(t, "the standby to stream ("+want+")", func() bool { return primary.ReplicationState() == want })
	databaseURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/inbox?sslmode=disable&target_session_attrs=read-write",
		primary.Port, standby.Port)

	key := newKeyB64()
	acct, acctToken := newAccount()
	mustAccounts(t, primary.URL("inbox"), key, acctToken, "add", acct)
	app := teamapp.New(t, teamapp.Options{})
	env := app.Env()
	env["FORWARD_TIMEOUT"] = "1s"
	env["ENCRYPTION_KEY"] = key
	s := startServeProcess(t, bin, databaseURL, env)
	if st, _ := deliverAs(t, s.addr, acct, acctToken); st != http.StatusOK {
		t.Fatalf("a delivery for the table's account before the failover: %d", st)
	}

	load := startFailoverLoad(s.addr)
	poll.Until(t, "load under way, with forwards", func() bool { return load.sids() >= 300 && app.Total() >= 100 })
	before := load.sids()
	killed := time.Now()
	primary.Kill()
	standby.Promote()
	promoted := time.Now()
	load.after.Store(&promoted)
	poll.Within(t, 30*time.Second, "300 more sids answered 200 after the promotion", func() bool { return load.sids() >= before+300 })
	answered := load.end()

	pool := dbtest.Connect(t, standby.URL("inbox"), 4)
	ctx := t.Context()
	var storedAnswered, rows, jobs, doubled int
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM messages WHERE metadata->>'message_sid' = ANY($1)),
		(SELECT count(*) FROM messages),
		(SELECT count(*) FROM `+dbtest.EnqueuedJobs+`),
		(SELECT count(*) FROM (SELECT 1 FROM `+dbtest.EnqueuedJobs+` GROUP BY sid HAVING count(*) > 1) d)`,
		answered).Scan(&storedAnswered, &rows, &jobs, &doubled); err != nil {
		t.Fatal(err)
	}
	lost := len(answered) - storedAnswered
	recovered := load.firstOK.Load()
	if recovered == nil {
		t.Fatal("no 200 after the promotion")
	}
	t.Logf("%s replication: %d deliveries answered 200, %d answered 503, %d unanswered; %d sids answered 200, %d of them lost; "+
		"%d rows, %d jobs; first 200 %.2f s after the promotion (%.2f s after the kill)",
		map[bool]string{true: "synchronous", false: "asynchronous"}[synchronous], load.ok.Load(), load.unav.Load(), load.failed.Load(),
		len(answered), lost, rows, jobs, recovered.Sub(promoted).Seconds(), recovered.Sub(killed).Seconds())
	if rows != jobs || doubled != 0 {
		t.Fatalf("%d rows but %d jobs, %d sids with two jobs: a row and its job must commit together", rows, jobs, doubled)
	}
	if synchronous && lost != 0 {
		t.Fatalf("%d sids answered 200 are not on the new primary: synchronous replication must keep every acknowledged commit", lost)
	}

	// Each stored message by its sid: with asynchronous replication, the
	// app also has messages forwarded from the old primary and lost with
	// it, so counts alone would match too soon.
	var unforwarded int
	var countErr error
	poll.Within(t, 60*time.Second, "every stored message forwarded from the new primary", func() bool {
		countErr = pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE NOT (metadata->>'message_sid' = ANY($1))`,
			slices.Collect(maps.Keys(app.Accepted()))).Scan(&unforwarded)
		return countErr == nil && unforwarded == 0
	})

	// River's leader holds on the new primary: its term was renewed
	// after the promotion (a term lasts 15 s from its last renewal).
	poll.Within(t, 30*time.Second, "River's leader on the new primary", func() bool {
		var renewed bool
		err := pool.QueryRow(ctx, `SELECT coalesce(bool_or(expires_at > $1), false) FROM river_leader`, promoted.Add(15*time.Second)).Scan(&renewed)
		return err == nil && renewed
	})
	// The accounts listener is back: a change on the new primary reaches
	// serve by notification (a cached account is read again only then, or
	// after five minutes).
	mustAccounts(t, standby.URL("inbox"), key, "", "disable", acct)
	poll.Within(t, 30*time.Second, "the disabled account refused, by notification from the new primary", func() bool {
		st, _ := deliverAs(t, s.addr, acct, acctToken)
		return st == http.StatusForbidden
	})
}
