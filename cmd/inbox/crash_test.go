package main

import (
	"context"
	"fmt"
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

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
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
	cmd     *exec.Cmd
	addr    string
	stderr  *logtest.Buffer
	exited  chan struct{} // closed once the process ended; waitErr says how
	waitErr error
}

// startServeProcess runs the binary's serve, on a port the kernel picks,
// and waits until it says where it listens. kill stops it at once.
func startServeProcess(t *testing.T, bin, databaseURL string, extra map[string]string) *serveProcess {
	t.Helper()
	p := &serveProcess{stderr: &logtest.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(os.Environ(),
		"DATABASE_URL="+databaseURL, "TWILIO_AUTH_TOKEN="+testToken, "PUBLIC_BASE_URL="+publicURL,
		"LISTEN_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "ADMIN_ADDR=off", "RECONCILE_INTERVAL=off",
		"TWILIO_API_URL=http://127.0.0.1:1") // as startServe's
	for k, v := range extra {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	p.addr = listening(t, p.stderr, "listening", func() error {
		select {
		case <-p.exited:
			return fmt.Errorf("serve exited: %v", p.waitErr)
		default:
			return nil
		}
	})
	return p
}

// kill sends SIGKILL, no shutdown at all, and waits for the process to end.
func (p *serveProcess) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// TestKillMidLoadLosesNoProcessing: `kill -9` the service while deliveries
// and forwards are in flight, and start it again on the same database.
// Every delivery that was answered 200 is forwarded, every stored message
// is forwarded (including those whose answer the kill swallowed), and no
// sid ever has two jobs: for FORWARD_URL's app and for a destination of
// the table matching every message, each on its own.
func TestKillMidLoadLosesNoProcessing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for River's rescuer (about a minute)")
	}
	t.Parallel()
	bin := buildInbox(t)
	databaseURL := dbtest.URL(t)
	a := teamapp.New(t, teamapp.Options{Delay: 100 * time.Millisecond}) // a real app takes a while, so forwards are in flight at the kill
	key := newKeyB64()
	b := routedApp(t, databaseURL, key, "copy", teamapp.Options{Delay: 100 * time.Millisecond})
	env := a.Env()
	env["ENCRYPTION_KEY"] = key
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
				var pair sync.WaitGroup
				for range 2 {
					pair.Go(func() {
						req, err := simulate.NewRequest(context.Background(), "http://"+first.addr+api.PathMessages, publicURL+api.PathMessages,
							testToken, simulate.InboundForm(simulate.SMS, sid, 1))
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
		return n >= 300 && a.Total() >= 50
	})
	first.kill()
	close(stop)
	wg.Wait()

	pool := dbtest.Connect(t, databaseURL, 2)
	var stored, jobs, doubled, running, owed int
	if err := pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM messages),
		(SELECT count(*) FROM `+dbtest.EnqueuedJobs+`),
		(SELECT count(*) FROM (SELECT 1 FROM `+dbtest.EnqueuedJobs+` GROUP BY sid, destination HAVING count(*) > 1) d),
		(SELECT count(*) FROM river_job WHERE state = 'running'),
		(SELECT count(*) FROM deliveries)`).Scan(&stored, &jobs, &doubled, &running, &owed); err != nil {
		t.Fatal(err)
	}
	if owed != 2*stored {
		t.Fatalf("%d rows but %d deliveries for two destinations: a row and its deliveries must commit together", stored, owed)
	}
	t.Logf("at the kill: %d deliveries sent, %d sids answered 200, %d rows, %d jobs (%d running), %d forwarded",
		sent.Load(), len(answered), stored, jobs, running, a.Total())
	if jobs != 2*stored || doubled != 0 {
		t.Fatalf("%d rows but %d jobs for two destinations, %d sids with two jobs to one: a row and its jobs must commit together", stored, jobs, doubled)
	}
	if running == 0 {
		t.Fatal("no job was running at the kill: the test would not exercise River's rescue")
	}

	startServeProcess(t, bin, databaseURL, env)
	// Jobs that were running at the kill wait for River's rescuer: up to
	// 12 s after they started, plus its 30 s period, plus a leader election.
	poll.Within(t, 90*time.Second, "every stored message to be forwarded after the restart", func() bool {
		var done int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM `+dbtest.EnqueuedJobs+` WHERE state = 'completed'`).Scan(&done)
		return done == 2*stored
	})
	for name, app := range map[string]*teamapp.App{"FORWARD_URL's app": a, "the destination copy": b} {
		if app.Distinct() != stored {
			t.Fatalf("%s: %d distinct webhook-ids received, %d messages stored", name, app.Distinct(), stored)
		}
		for sid := range answered {
			if app.Deliveries(sid) == 0 {
				t.Fatalf("%s: %s was answered 200 and never forwarded", name, sid)
			}
		}
	}
	// Each delivery records where it ended, a delivery under way at the
	// kill included (its job ran again).
	var forwarded int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries d WHERE delivery_state(d) = 'forwarded'`).Scan(&forwarded); err != nil || forwarded != 2*stored {
		t.Fatalf("%d of %d deliveries recorded forwarded (%v)", forwarded, 2*stored, err)
	}
	var rows int
	pool.QueryRow(t.Context(), `SELECT count(*) FROM messages WHERE metadata->>'message_sid' = ANY($1)`, slices.Collect(maps.Keys(answered))).Scan(&rows)
	if rows != len(answered) {
		t.Fatalf("%d of %d sids answered 200 are stored", rows, len(answered))
	}
	t.Logf("after the restart: %d forwarded, %d redelivered (at least once, deduped by webhook-id)", a.Distinct(), a.Total()-a.Distinct())
}
