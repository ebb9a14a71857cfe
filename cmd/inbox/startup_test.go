package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/internal/pgcluster"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestServeStartsInEveryStateOfItsDatabase: with the defaults
// (reconciliation on) and with FORWARD_URL set, serve started while its
// database is unreachable, or reachable but never migrated, keeps serving
// (/readyz 503, webhooks 503) rather than exit, as a rolling deploy needs;
// once the database is up and migrated, without a restart, webhooks are
// stored, its workers start and the message is forwarded.
func TestServeStartsInEveryStateOfItsDatabase(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"unreachable", "unmigrated"} {
		for _, setup := range []string{"defaults", "FORWARD_URL"} {
			t.Run(state+"/"+setup, func(t *testing.T) {
				t.Parallel()
				databaseURL := dbtest.EmptyURL(t)
				proxy, viaProxy := dbtest.NewProxy(t, databaseURL)
				if state == "unreachable" {
					proxy.SetDown(true)
				} else {
					proxy = nil
				}
				// The defaults: startServe's RECONCILE_INTERVAL=off undone.
				extra := map[string]string{"RECONCILE_INTERVAL": ""}
				var app *teamapp.App
				if setup == "FORWARD_URL" {
					app = teamapp.New(t, teamapp.Options{})
					for k, v := range app.Env() {
						extra[k] = v
					}
				}
				s := startServe(t, viaProxy, extra)
				if st := readyz(t, s.addr); st != http.StatusServiceUnavailable {
					t.Fatalf("/readyz while the database is %s: %d, want 503", state, st)
				}
				if proxy != nil {
					proxy.SetDown(false)
				}
				mustInbox(t, databaseURL, "migrate", "up")
				sid := simulate.NewMessageSID(simulate.SMS)
				poll.Until(t, "a webhook stored once the database is ready", func() bool {
					return deliverAt(t, []string{s.addr}, sid, 1)[0] == http.StatusOK
				})
				poll.Until(t, "the workers started", func() bool { return strings.Contains(s.stderr.String(), `"msg":"workers started"`) })
				if app != nil {
					poll.Until(t, "the message forwarded", func() bool { return app.Distinct() == 1 })
				}
				if strings.Contains(s.stderr.String(), `"level":"ERROR","msg":"stopped`) {
					t.Fatalf("serve stopped:\n%s", s.stderr)
				}
				s.stop(t)
			})
		}
	}
}

// readyz is the status /readyz answers at addr.
func readyz(t *testing.T, addr string) int {
	t.Helper()
	st, _ := readyzBody(t, addr)
	return st
}

// TestReadyzSaysWhatWebhooksGetWhenTheDiskIsFull: a database whose disk is
// full answers pings but refuses every insert (SQLSTATE 53100, raised here
// by a trigger, as PostgreSQL raises it when it cannot extend a file).
// /readyz must then answer 503 saying so, as the webhooks get 503, and 200
// again once a write succeeds.
func TestReadyzSaysWhatWebhooksGetWhenTheDiskIsFull(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	s := startServe(t, databaseURL, nil)
	if st := deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 1)[0]; st != http.StatusOK || readyz(t, s.addr) != http.StatusOK {
		t.Fatalf("before the disk filled: webhook %d, /readyz %d", st, readyz(t, s.addr))
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file "base/16384/16385": No space left on device' USING ERRCODE = '53100'; END $$;
		CREATE TRIGGER disk_full BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION disk_full()`)
	for _, st := range deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 8) {
		if st != http.StatusServiceUnavailable {
			t.Fatalf("a webhook while the disk is full: %d, want 503", st)
		}
	}
	st, body := readyzBody(t, s.addr)
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "refuses writes") || !strings.Contains(body, "No space left on device") {
		t.Fatalf("/readyz while webhooks get 503 for a full disk: %d %q, want 503 saying why", st, body)
	}
	exec(`DROP TRIGGER disk_full ON messages`)
	if st := deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 1)[0]; st != http.StatusOK {
		t.Fatalf("a webhook once the disk has room: %d", st)
	}
	if st, body := readyzBody(t, s.addr); st != http.StatusOK {
		t.Fatalf("/readyz once a write succeeded: %d %q", st, body)
	}
}

// TestAdminAnswers503WhileTheDatabaseRecovers: a server that is starting
// up or replaying WAL refuses connections with SQLSTATE 57P03 (here a
// standby with hot_standby off, a real one). Every admin API read answers
// 503 then, as the webhook does, never 500; the console's pages likewise.
func TestAdminAnswers503WhileTheDatabaseRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers")
	}
	if why := pgcluster.Available(); why != "" {
		if os.Getenv("INBOX_REQUIRE_CLUSTER") != "" {
			t.Fatal(why)
		}
		t.Skip("\n\n*** NO POSTGRESQL BINARIES for the recovery test: " + why + " ***\n")
	}
	t.Parallel()
	primary := pgcluster.NewPrimary(t)
	primary.Exec("postgres", `CREATE DATABASE inbox`)
	mustInbox(t, primary.URL("inbox"), "migrate", "up")
	recovering := primary.Standby("hot_standby=off")
	s, base := startAdmin(t, recovering.URL("inbox"), nil)
	if st := deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 1)[0]; st != http.StatusServiceUnavailable {
		t.Fatalf("a webhook while the database recovers: %d, want 503", st)
	}
	for _, path := range []string{"/api/messages", "/api/messages/SM00000000000000000000000000000001", "/api/accounts", "/api/destinations",
		"/api/forwarding", "/messages", "/forwarding", "/destinations", "/accounts"} {
		if st, _, body := adminDo(t, http.MethodGet, base+path, "Bearer "+adminToken); st != http.StatusServiceUnavailable {
			t.Errorf("GET %s while the database recovers: %d %s, want 503", path, st, body)
		}
	}
	if !strings.Contains(s.stderr.String(), "57P03") {
		t.Fatalf("the log does not show the server's refusal (57P03):\n%s", s.stderr)
	}
}

// readyzBody is /readyz's status and body at addr.
func readyzBody(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWebhooksNeverWaitForTheAdminEdge: 32 console API requests at once,
// each stuck behind a lock (as a slow query is), while webhooks arrive.
// The admin edge has a pool of its own with a statement timeout, so every
// webhook is answered 200 (before, the stuck requests held every pool
// connection and webhooks got 503), and the stuck requests end in 503 at
// ADMIN_STATEMENT_TIMEOUT rather than wait for ever.
func TestWebhooksNeverWaitForTheAdminEdge(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	s, base := startAdmin(t, databaseURL, map[string]string{"REQUEST_TIMEOUT": "2s", "ADMIN_STATEMENT_TIMEOUT": "3s"})
	sid := simulate.NewMessageSID(simulate.SMS)
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
		t.Fatalf("first delivery: %d", st)
	}
	// A message's story reads its status events: no webhook of a message
	// touches that table, every story request waits for the lock.
	lock, err := dbtest.Connect(t, databaseURL, 1).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.Background())
	if _, err := lock.Exec(t.Context(), `LOCK TABLE message_status_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var answered503 atomic.Int64
	stop := make(chan struct{})
	var admins sync.WaitGroup
	for range 32 {
		admins.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if st, _, _ := adminDo(t, http.MethodGet, base+"/api/messages/"+sid, "Bearer "+adminToken); st == http.StatusServiceUnavailable {
					answered503.Add(1)
				}
			}
		})
	}
	pool := dbtest.Connect(t, databaseURL, 1)
	poll.Until(t, "admin requests waiting for the lock", func() bool {
		var n int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%message_status_events%'`).Scan(&n)
		return err == nil && n > 0
	})
	var latencies []time.Duration
	for range 10 {
		start := time.Now()
		for i, st := range deliverAt(t, []string{s.addr}, simulate.NewMessageSID(simulate.SMS), 16) {
			if st != http.StatusOK {
				t.Fatalf("webhook %d while the admin edge is saturated: %d, want 200", i, st)
			}
		}
		latencies = append(latencies, time.Since(start))
	}
	poll.Until(t, "a stuck admin request ended by ADMIN_STATEMENT_TIMEOUT", func() bool { return answered503.Load() > 0 })
	close(stop)
	lock.Rollback(t.Context())
	admins.Wait()
	slices.Sort(latencies)
	t.Logf("16 webhooks at once while 32 admin requests wait: median round %s, slowest %s", latencies[len(latencies)/2], latencies[len(latencies)-1])
}
