package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/api"
	"inbox/internal/brokertest"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/routing"
	"inbox/simulate"
	"inbox/webhook"
)

// verified counts the events that verify with secret, by id; an event
// that does not verify fails the test.
type verified struct {
	t   *testing.T
	key []byte
	ids map[string]int
}

func newVerified(t *testing.T, secret string) *verified {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &verified{t: t, key: key, ids: map[string]int{}}
}

// add checks one event as a consumer does: its Standard Webhooks headers
// (from NATS or AMQP, any case) sign body with the destination's secret,
// and its broker id is its webhook-id.
func (v *verified) add(brokerID string, headers map[string]string, body []byte) {
	h := http.Header{}
	for k, val := range headers {
		h.Set(k, val)
	}
	if err := webhook.Verify(v.key, h, body, time.Now()); err != nil {
		v.t.Errorf("%s does not verify: %v", brokerID, err)
	}
	if h.Get(webhook.HeaderID) != brokerID {
		v.t.Errorf("broker id %q, webhook-id %q: want the same", brokerID, h.Get(webhook.HeaderID))
	}
	v.ids[brokerID]++
}

// fromBrokers reads what the stream INBOX and the queue sms hold.
func fromBrokers(t *testing.T, n *brokertest.NATS, r *brokertest.RabbitMQ, natsSecret, amqpSecret string) (stream, queue *verified) {
	stream, queue = newVerified(t, natsSecret), newVerified(t, amqpSecret)
	for _, m := range n.Messages("INBOX") {
		h := map[string]string{}
		for k := range m.Header {
			h[k] = m.Header.Get(k)
		}
		stream.add(m.Header.Get("Nats-Msg-Id"), h, m.Data)
	}
	for _, d := range r.Drain("sms") {
		h := map[string]string{}
		for k, v := range d.Headers {
			h[k] = fmt.Sprint(v)
		}
		queue.add(d.MessageId, h, d.Body)
	}
	return stream, queue
}

// brokerDestinations starts a JetStream server with the stream INBOX
// (inbox.>) and a RabbitMQ node with the exchange inbox and the queue sms,
// and adds the destinations bus and rabbit to them, checked as `add`
// checks; it returns their secrets.
func brokerDestinations(t *testing.T, databaseURL, key string) (n *brokertest.NATS, r *brokertest.RabbitMQ, natsSecret, amqpSecret string) {
	t.Helper()
	n, r = brokertest.StartNATS(t), brokertest.StartRabbitMQ(t)
	n.CreateStream("INBOX", "inbox.>")
	r.Declare("inbox", "sms", "sms")
	natsSecret, amqpSecret = routing.GenerateSecret(), routing.GenerateSecret()
	for _, add := range []struct {
		secret string
		args   []string
	}{
		{natsSecret, []string{"add", "bus", "-url", n.URL(), "-subject", "inbox.messages"}},
		{amqpSecret, []string{"add", "rabbit", "-url", r.URL(), "-exchange", "inbox", "-routing-key", "sms"}},
	} {
		if out, err := destinationsCLI(t, databaseURL, key, add.secret, add.args...); err != nil {
			t.Fatalf("inbox destinations %v: %v\n%s", add.args, err, out)
		}
	}
	return n, r, natsSecret, amqpSecret
}

// forwardedAll reports whether every delivery of the stored messages is
// forwarded, and how many messages are stored.
func forwardedAll(t *testing.T, pool *pgxpool.Pool, destinations int) (bool, int) {
	t.Helper()
	var stored, forwarded int
	if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM messages),
		(SELECT count(*) FROM deliveries d WHERE delivery_state(d) = 'forwarded')`).Scan(&stored, &forwarded); err != nil {
		t.Fatal(err)
	}
	return forwarded == destinations*stored, stored
}

// deliverEach delivers each sid's message, three times at once (Twilio's
// retries and racing replicas), 16 sids at a time, to addr; it returns the
// sids answered 200, stopping early when stop closes.
func deliverEach(addr string, sids []string, stop <-chan struct{}) map[string]bool {
	var (
		mu       sync.Mutex
		answered = map[string]bool{}
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 16 {
		wg.Go(func() {
			for i := range next {
				var three sync.WaitGroup
				for range 3 {
					three.Go(func() {
						req, err := simulate.NewRequest(context.Background(), "http://"+addr+api.PathMessages, publicURL+api.PathMessages,
							testToken, simulate.InboundForm(simulate.SMS, sids[i], i))
						if err != nil {
							return
						}
						resp, err := client.Do(req)
						if err != nil {
							return // the kill
						}
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							mu.Lock()
							answered[sids[i]] = true
							mu.Unlock()
						}
					})
				}
				three.Wait()
			}
		})
	}
feed:
	for i := range sids {
		select {
		case next <- i:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	return answered
}

// TestBrokerDestinationsThroughAKill: 300 messages, each delivered three
// times at once, to a JetStream destination and a RabbitMQ destination;
// `kill -9` of the server mid-load, then a new one given every message
// again. The stream holds each message exactly once; the queue holds each
// at least once; every one verifies with its destination's secret.
func TestBrokerDestinationsThroughAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, starts two brokers and waits for River's rescuer")
	}
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	n, r, natsSecret, amqpSecret := brokerDestinations(t, databaseURL, key)
	bin := buildInbox(t)
	env := map[string]string{"ENCRYPTION_KEY": key, "FORWARD_TIMEOUT": "1s"} // jobs of the dead process are rescued soon
	sids := make([]string, 300)
	for i := range sids {
		sids[i] = simulate.NewMessageSID(simulate.SMS)
	}

	first := startServeProcess(t, bin, databaseURL, env)
	stop := make(chan struct{})
	done := make(chan map[string]bool)
	go func() { done <- deliverEach(first.addr, sids, stop) }()
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "load under way, published to both brokers", func() bool {
		var stored int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM messages`).Scan(&stored)
		return stored >= 100 && n.Count("INBOX") >= 50
	})
	first.kill()
	close(stop)
	answered := <-done
	t.Logf("at the kill: %d sids answered 200, %d in the stream", len(answered), n.Count("INBOX"))

	second := startServeProcess(t, bin, databaseURL, env)
	deliverEach(second.addr, sids, nil)
	poll.Within(t, 90*time.Second, "every delivery forwarded after the restart", func() bool {
		all, _ := forwardedAll(t, pool, 2)
		return all
	})
	if _, stored := forwardedAll(t, pool, 2); stored != len(sids) {
		t.Fatalf("%d messages stored, want %d", stored, len(sids))
	}
	stream, queue := fromBrokers(t, n, r, natsSecret, amqpSecret)
	for _, sid := range sids {
		if stream.ids[sid] != 1 {
			t.Errorf("the stream holds %s %d times, want once", sid, stream.ids[sid])
		}
		if queue.ids[sid] < 1 {
			t.Errorf("the queue lacks %s", sid)
		}
	}
	if len(stream.ids) != len(sids) || len(queue.ids) != len(sids) {
		t.Errorf("the stream holds %d distinct ids, the queue %d; want %d", len(stream.ids), len(queue.ids), len(sids))
	}
	repeated := 0
	for _, c := range queue.ids {
		repeated += c - 1
	}
	t.Logf("the queue holds %d repeats (a confirm the kill swallowed; consumers drop them by message_id)", repeated)
}

// TestMisconfiguredBrokersSayWhyAndPauseAlone: a subject no stream
// captures, an exchange that does not exist, credentials the broker
// refuses. `add` refuses each, saying what is wrong; added anyway
// (-no-check), each pauses at once with that reason, names itself in the
// log, and the service goes on serving and delivering to the others.
func TestMisconfiguredBrokersSayWhyAndPauseAlone(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	n, r := brokertest.StartNATS(t), brokertest.StartRabbitMQ(t)
	n.CreateStream("INBOX", "inbox.>")
	r.Declare("inbox", "sms", "sms")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no-stream", []string{"-url", n.URL(), "-subject", "nowhere.messages"}, `no stream captures subject "nowhere.messages"`},
		{"no-exchange", []string{"-url", r.URL(), "-exchange", "missing"}, `exchange "missing" does not exist`},
		{"bad-password", []string{"-url", strings.Replace(r.URL(), "guest:guest", "guest:not-the-password", 1), "-exchange", "inbox"}, "refuses the credentials"},
	}
	for _, c := range cases {
		args := append([]string{"add", c.name}, c.args...)
		out, err := destinationsCLI(t, databaseURL, key, routing.GenerateSecret(), args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error()+out, "not-the-password") {
			t.Fatalf("add %s: %v %s; want a refusal saying %q, without the password", c.name, err, out, c.want)
		}
		if out, err := destinationsCLI(t, databaseURL, key, routing.GenerateSecret(), append(args, "-no-check")...); err != nil {
			t.Fatalf("add %s -no-check: %v\n%s", c.name, err, out)
		}
	}
	desk := routedApp(t, databaseURL, key, "desk", teamapp.Options{})
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	for i := range 5 {
		deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), i), 1)
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "the three paused, the desk given every message", func() bool {
		var paused int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM destinations WHERE paused_reason = 'breaker'`).Scan(&paused)
		return paused == len(cases) && desk.Distinct() == 5
	})
	for _, c := range cases {
		var detail string
		if err := pool.QueryRow(t.Context(), `SELECT paused_detail FROM destinations WHERE name = $1`, c.name).Scan(&detail); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(detail, c.want) || strings.Contains(detail, "not-the-password") {
			t.Errorf("%s paused with %q; want it to say %q, without the password", c.name, detail, c.want)
		}
		if !strings.Contains(s.stderr.String(), `"destination":"`+c.name+`"`) {
			t.Errorf("no log line names the destination %s", c.name)
		}
	}
	if strings.Contains(s.stderr.String(), "not-the-password") {
		t.Error("the log shows the broker's password")
	}
	// Still serving, still delivering to the others.
	deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 9), 1)
	poll.Until(t, "the desk given the sixth message", func() bool { return desk.Distinct() == 6 })
}

// TestBrokersRestartedMidLoad: both brokers killed with SIGKILL while 300
// messages arrive, and started again; what failed meanwhile is retried
// (and, where the breaker paused a destination, resumed as an operator
// does). Nothing is lost in either; nothing JetStream acknowledged is
// stored twice.
func TestBrokersRestartedMidLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two brokers and waits for retries")
	}
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	n, r, natsSecret, amqpSecret := brokerDestinations(t, databaseURL, key)
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	sids := make([]string, 300)
	for i := range sids {
		sids[i] = simulate.NewMessageSID(simulate.SMS)
	}
	done := make(chan map[string]bool)
	go func() { done <- deliverEach(s.addr, sids, nil) }()
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "load under way, published to both brokers", func() bool {
		return n.Count("INBOX") >= 50
	})
	n.Stop()
	r.Stop()
	poll.Until(t, "deliveries failing while the brokers are down", func() bool {
		var failing int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE state = 'retrying'`).Scan(&failing)
		return failing > 0
	})
	n.Start()
	r.Start()
	t.Cleanup(func() {
		if t.Failed() {
			logDeliveries(t, pool)
		}
	})
	if answered := <-done; len(answered) != len(sids) {
		t.Fatalf("%d of %d messages answered 200 while the brokers were down: ingest must not wait for them", len(answered), len(sids))
	}
	poll.Within(t, 2*time.Minute, "every delivery forwarded after the brokers came back", func() bool {
		// The breaker may have paused a destination in the outage (or as
		// its connection came back): the operator resumes it.
		rows, err := pool.Query(t.Context(), `SELECT name FROM destinations WHERE paused_reason IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		paused, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range paused {
			if out, err := destinationsCLI(t, databaseURL, key, "", "resume", name); err != nil {
				t.Fatalf("resume %s: %v\n%s", name, err, out)
			}
		}
		all, _ := forwardedAll(t, pool, 2)
		return all
	})
	stream, queue := fromBrokers(t, n, r, natsSecret, amqpSecret)
	for _, sid := range sids {
		if stream.ids[sid] != 1 {
			t.Errorf("the stream holds %s %d times, want once", sid, stream.ids[sid])
		}
		if queue.ids[sid] < 1 {
			t.Errorf("the queue lacks %s", sid)
		}
	}
}

// logDeliveries logs where the deliveries and their jobs stand: what a
// failed test needs to say why.
func logDeliveries(t *testing.T, pool *pgxpool.Pool) {
	rows, err := pool.Query(context.Background(), `SELECT d.destination, delivery_state(d), j.state::text, j.attempt, count(*),
		min(j.scheduled_at - now())::text, max(j.errors[array_length(j.errors, 1)]->>'error')
		FROM deliveries d LEFT JOIN river_job j ON j.id = d.job_id GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var dest, state string
		var jobState, due, lastErr *string
		var attempt *int
		var n int
		if err := rows.Scan(&dest, &state, &jobState, &attempt, &n, &due, &lastErr); err != nil {
			t.Log(err)
			return
		}
		t.Logf("%s %s: job %v attempt %v: %d, next due in %v, last error %v", dest, state, deref(jobState), derefInt(attempt), n, deref(due), deref(lastErr))
	}
	var paused []string
	prow, _ := pool.Query(context.Background(), `SELECT name || ': ' || coalesce(paused_reason, 'running') || ' ' || coalesce(paused_detail, '') FROM destinations`)
	paused, _ = pgx.CollectRows(prow, pgx.RowTo[string])
	t.Logf("destinations: %q", paused)
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func derefInt(i *int) int {
	if i == nil {
		return 0
	}
	return *i
}

// TestServeStartsWhileABrokerIsDown: serve starts and answers webhooks
// while a destination's NATS server is down; the delivery waits, its error
// shown, and is published once the server is up.
func TestServeStartsWhileABrokerIsDown(t *testing.T) {
	t.Parallel()
	databaseURL, key := dbtest.URL(t), newKeyB64()
	n := brokertest.StartNATS(t)
	n.CreateStream("INBOX", "inbox.>")
	n.Stop()
	if out, err := destinationsCLI(t, databaseURL, key, routing.GenerateSecret(), "add", "bus", "-url", n.URL(), "-subject", "inbox.messages"); err == nil {
		t.Fatalf("add with the server down and no -no-check: %s; want a refusal", out)
	}
	if out, err := destinationsCLI(t, databaseURL, key, routing.GenerateSecret(), "add", "bus", "-url", n.URL(), "-subject", "inbox.messages", "-no-check"); err != nil {
		t.Fatalf("add -no-check: %v\n%s", err, out)
	}
	// A shorter publish timeout only makes the first failure come sooner.
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key, "FORWARD_TIMEOUT": "2s"})
	sid := simulate.NewMessageSID(simulate.SMS)
	deliverForm(t, []string{s.addr}, api.PathMessages, simulate.InboundForm(simulate.SMS, sid, 1), 3)
	pool := dbtest.Connect(t, databaseURL, 2)
	t.Cleanup(func() {
		if t.Failed() {
			logDeliveries(t, pool)
		}
	})
	poll.Until(t, "the delivery waiting with its error shown", func() bool {
		var state, errText string
		pool.QueryRow(t.Context(), `SELECT state, coalesce(error, '') FROM deliveries WHERE destination = 'bus'`).Scan(&state, &errText)
		return state == "retrying" && strings.Contains(errText, "not connected to NATS")
	})
	n.Start()
	poll.Within(t, time.Minute, "the delivery published once the server is up", func() bool {
		all, _ := forwardedAll(t, pool, 1)
		return all
	})
	if got := n.Count("INBOX"); got != 1 {
		t.Fatalf("the stream holds %d messages, want 1", got)
	}
}
