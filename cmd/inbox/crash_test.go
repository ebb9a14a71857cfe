package main

import (
	"context"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/simulate"
)

// buildInbox builds the real binary once for the test.
func buildInbox(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "inbox")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveProcess is `inbox serve` running as a process of its own.
type serveProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *logtest.Buffer
}

func startServeProcess(t *testing.T, bin, databaseURL string, extra map[string]string) *serveProcess {
	t.Helper()
	addr := freeAddr(t)
	p := &serveProcess{addr: addr, stderr: &logtest.Buffer{}}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(os.Environ(),
		"DATABASE_URL="+databaseURL, "TWILIO_AUTH_TOKEN="+testToken, "PUBLIC_BASE_URL=http://"+addr,
		"LISTEN_ADDR="+addr, "LOG_FORMAT=json", "LOG_LEVEL=warn", "ADMIN_ADDR=off")
	for k, v := range extra {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	poll.Until(t, "serve to answer /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// TestKillMidLoadLosesNoProcessing: `kill -9` the service while deliveries
// and forwards are in flight, and start it again on the same database.
// Every delivery that was answered 200 is forwarded, every stored message
// is forwarded (including those whose answer the kill swallowed), and no
// sid ever has two jobs.
func TestKillMidLoadLosesNoProcessing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for River's rescuer (about a minute)")
	}
	t.Parallel()
	bin := buildInbox(t)
	databaseURL := dbtest.URL(t)
	a := newApp(t)
	a.delay = 100 * time.Millisecond // a real app takes a while, so forwards are in flight at the kill
	env := forwarding(a)
	env["FORWARD_TIMEOUT"] = "1s" // jobs of the dead process are rescued 12 s after they started
	first := startServeProcess(t, bin, databaseURL, env)

	// Load: 16 workers each deliver new sids, every one twice at once, as
	// Twilio's retries and racing replicas do, until the kill.
	var (
		mu       sync.Mutex
		answered = map[string]bool{} // sids with a 200
		sent     atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sid := simulate.NewMessageSID(simulate.SMS)
				target := "http://" + first.addr + "/twilio/messages"
				var pair sync.WaitGroup
				for range 2 {
					pair.Go(func() {
						req, err := simulate.NewRequest(context.Background(), target, target, testToken, simulate.InboundForm(simulate.SMS, sid, 1))
						if err != nil {
							return
						}
						sent.Add(1)
						resp, err := client.Do(req)
						if err != nil {
							return // the kill
						}
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							mu.Lock()
							answered[sid] = true
							mu.Unlock()
						}
					})
				}
				pair.Wait()
			}
		})
	}
	poll.Until(t, "load to be under way, with forwards in flight", func() bool {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		return n >= 300 && a.total() >= 50
	})
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	first.cmd.Wait()
	close(stop)
	wg.Wait()

	pool := dbtest.Connect(t, databaseURL, 2)
	var stored, jobs, doubled, running int
	if err := pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM messages),
		(SELECT count(*) FROM river_job WHERE kind = 'inbox_message'),
		(SELECT count(*) FROM (SELECT 1 FROM river_job GROUP BY args->>'sid' HAVING count(*) > 1) d),
		(SELECT count(*) FROM river_job WHERE state = 'running')`).Scan(&stored, &jobs, &doubled, &running); err != nil {
		t.Fatal(err)
	}
	t.Logf("at the kill: %d deliveries sent, %d sids answered 200, %d rows, %d jobs (%d running), %d forwarded",
		sent.Load(), len(answered), stored, jobs, running, a.total())
	if jobs != stored || doubled != 0 {
		t.Fatalf("%d rows but %d jobs, %d sids with two jobs: a row and its job must commit together", stored, jobs, doubled)
	}
	if running == 0 {
		t.Fatal("no job was running at the kill: the test would not exercise River's rescue")
	}

	startServeProcess(t, bin, databaseURL, env)
	// Jobs that were running at the kill wait for River's rescuer: up to
	// 12 s after they started, plus its 30 s period, plus a leader election.
	poll.Within(t, 90*time.Second, "every stored message to be forwarded after the restart", func() bool {
		var done int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&done)
		return done == stored
	})
	if a.distinct() != stored {
		t.Fatalf("%d distinct webhook-ids received, %d messages stored", a.distinct(), stored)
	}
	for sid := range answered {
		if a.deliveries(sid) == 0 {
			t.Fatalf("%s was answered 200 and never forwarded", sid)
		}
	}
	var rows int
	pool.QueryRow(t.Context(), `SELECT count(*) FROM messages WHERE metadata->>'message_sid' = ANY($1)`, slices.Collect(maps.Keys(answered))).Scan(&rows)
	if rows != len(answered) {
		t.Fatalf("%d of %d sids answered 200 are stored", rows, len(answered))
	}
	t.Logf("after the restart: %d forwarded, %d redelivered (at least once, deduped by webhook-id)", a.distinct(), a.total()-a.distinct())
}
