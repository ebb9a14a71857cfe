package amqpdest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"inbox/destination"
	"inbox/destination/amqpdest"
	"inbox/internal/brokertest"
	"inbox/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// drain takes every message of queue, counting them by message_id, and
// checks each as a consumer does: persistent, JSON, signed.
func drain(t *testing.T, r *brokertest.RabbitMQ, queue string) map[string]int {
	t.Helper()
	key, _ := webhook.ParseSecret(secret)
	seen := map[string]int{}
	for _, d := range r.Drain(queue) {
		h := http.Header{}
		for k, v := range d.Headers {
			h.Set(k, fmt.Sprint(v))
		}
		if err := webhook.Verify(key, h, d.Body, time.Now()); err != nil {
			t.Errorf("%s does not verify: %v", d.MessageId, err)
		}
		if d.DeliveryMode != amqp.Persistent || d.ContentType != "application/json" || h.Get(webhook.HeaderID) != d.MessageId {
			t.Errorf("%s: delivery mode %d, content type %q, webhook-id %q", d.MessageId, d.DeliveryMode, d.ContentType, h.Get(webhook.HeaderID))
		}
		seen[d.MessageId]++
	}
	return seen
}

func open(t *testing.T, url, exchange, key string) *amqpdest.Publisher {
	t.Helper()
	p, err := amqpdest.Open(destination.Target{Name: "bus", Kind: destination.KindAMQP, URL: url, Secret: secret, Exchange: exchange, RoutingKey: key}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func send(p *amqpdest.Publisher, ctx context.Context, id string) error {
	return p.Send(ctx, destination.Event{ID: id, Payload: []byte(`{"id":"` + id + `"}`), Attempt: 1})
}

// One node for every case: a RabbitMQ node takes seconds to start.
func TestRabbitMQ(t *testing.T) {
	r := brokertest.StartRabbitMQ(t)

	t.Run("each confirmed publish is in the queue, signed", func(t *testing.T) {
		r.Declare("inbox", "orders", "sms")
		p := open(t, r.URL(), "inbox", "sms")
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 100 {
			wg.Go(func() { errs <- send(p, t.Context(), fmt.Sprintf("SM%03d", i)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		seen := drain(t, r, "orders")
		if len(seen) != 100 {
			t.Fatalf("the queue holds %d distinct messages, want 100", len(seen))
		}
	})

	t.Run("an unroutable message is an error, retried, not dropped", func(t *testing.T) {
		r.Declare("nobody-listens", "", "")
		p := open(t, r.URL(), "nobody-listens", "sms")
		err := send(p, t.Context(), "SM-unroutable")
		if err == nil || !strings.Contains(err.Error(), "unroutable") || destination.IsMisconfigured(err) || destination.IsPermanent(err) {
			t.Fatalf("publish with no queue bound: %v, want an unroutable error that is retried", err)
		}
		// The channel stays good: the next publish, once a queue is bound,
		// is taken.
		r.Declare("nobody-listens", "late", "sms")
		if err := send(p, t.Context(), "SM-unroutable"); err != nil {
			t.Fatal(err)
		}
		if seen := drain(t, r, "late"); seen["SM-unroutable"] != 1 {
			t.Fatalf("after binding: %v", seen)
		}
	})

	t.Run("an exchange that does not exist is misconfigured", func(t *testing.T) {
		target := destination.Target{Name: "bus", Kind: destination.KindAMQP, URL: r.URL(), Secret: secret, Exchange: "no-such-exchange"}
		p := open(t, r.URL(), "no-such-exchange", "")
		err := send(p, t.Context(), "SM1")
		if !destination.IsMisconfigured(err) || !strings.Contains(err.Error(), "no-such-exchange") {
			t.Fatalf("publish to a missing exchange: %v, want Misconfigured naming it", err)
		}
		if err := amqpdest.Check(target, 5*time.Second); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("Check: %v, want does not exist", err)
		}
		target.Exchange = "inbox"
		if err := amqpdest.Check(target, 5*time.Second); err != nil {
			t.Fatalf("Check of an exchange that exists: %v", err)
		}
	})

	t.Run("refused credentials are misconfigured, and never shown", func(t *testing.T) {
		url := strings.Replace(r.URL(), "guest:guest", "guest:wrong-password", 1)
		err := send(open(t, url, "inbox", "sms"), t.Context(), "SM1")
		if !destination.IsMisconfigured(err) || strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("publish with wrong credentials: %v, want Misconfigured without the password", err)
		}
	})

	t.Run("a crashed node loses nothing confirmed", func(t *testing.T) {
		r.Declare("restart", "restart-q", "sms")
		p := open(t, r.URL(), "restart", "sms")
		acked := brokertest.PublishThroughOutage(t, r, func(ctx context.Context, id string) error { return send(p, ctx, id) })
		seen := drain(t, r, "restart-q")
		for _, id := range acked {
			if seen[id] < 1 {
				t.Errorf("%s was confirmed and is not in the queue", id)
			}
		}
		t.Logf("%d confirmed; the queue holds %d distinct, %d twice or more (a confirm lost to the crash: the consumer drops them by message_id)",
			len(acked), len(seen), repeats(seen))
	})
}

func repeats(seen map[string]int) int {
	n := 0
	for _, c := range seen {
		if c > 1 {
			n++
		}
	}
	return n
}
