package natsdest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"inbox/destination"
	"inbox/destination/natsdest"
	"inbox/internal/brokertest"
	"inbox/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func open(t *testing.T, target destination.Target) *natsdest.Publisher {
	t.Helper()
	target.Kind, target.Secret = destination.KindNATS, secret
	target.Name = "bus"
	p, err := natsdest.Open(target, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// verify checks m as a consumer does: the Standard Webhooks signature over
// its body, with the destination's secret, and its Nats-Msg-Id.
func verify(t *testing.T, m *jetstream.RawStreamMsg) string {
	t.Helper()
	h := http.Header{}
	for k, vs := range m.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	key, _ := webhook.ParseSecret(secret)
	if err := webhook.Verify(key, h, m.Data, time.Now()); err != nil {
		t.Errorf("message %d does not verify: %v", m.Sequence, err)
	}
	if id := m.Header.Get(natsdest.HeaderMsgID); id != m.Header.Get(webhook.HeaderID) || id == "" {
		t.Errorf("message %d: Nats-Msg-Id %q, webhook-id %q: want both the event's id", m.Sequence, id, m.Header.Get(webhook.HeaderID))
	}
	return m.Header.Get(natsdest.HeaderMsgID)
}

// An event published 50 times at once, and 20 others each 5 times: the
// stream holds each once, signed.
func TestTheStreamHoldsEachEventOnce(t *testing.T) {
	n := brokertest.StartNATS(t)
	n.CreateStream("INBOX", "inbox.>")
	p := open(t, destination.Target{URL: n.URL(), Subject: "inbox.messages"})

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 150 {
		id := "SM-same"
		if i >= 50 {
			id = fmt.Sprintf("SM-%02d", i%20)
		}
		wg.Go(func() {
			errs <- p.Send(t.Context(), destination.Event{ID: id, Payload: []byte(`{"id":"` + id + `"}`), Attempt: 1})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for _, m := range n.Messages("INBOX") {
		seen[verify(t, m)]++
		if m.Subject != "inbox.messages" {
			t.Errorf("subject %q", m.Subject)
		}
	}
	if len(seen) != 21 {
		t.Fatalf("the stream holds %d distinct events, want 21: %v", len(seen), seen)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s stored %d times", id, c)
		}
	}
}

// A subject no stream captures is a setting to fix, said plainly: Send's
// error is Misconfigured and names the subject, and Check refuses it.
func TestASubjectNoStreamCapturesIsMisconfigured(t *testing.T) {
	n := brokertest.StartNATS(t)
	n.CreateStream("INBOX", "inbox.>")
	target := destination.Target{Name: "bus", Kind: destination.KindNATS, URL: n.URL(), Subject: "orders.messages", Secret: secret}
	p := open(t, target)
	err := p.Send(t.Context(), destination.Event{ID: "SM1", Payload: []byte(`{}`), Attempt: 1})
	if !destination.IsMisconfigured(err) || !strings.Contains(err.Error(), "orders.messages") {
		t.Fatalf("Send to a subject no stream captures: %v, want a Misconfigured error naming it", err)
	}
	if err := natsdest.Check(t.Context(), target, 2*time.Second); err == nil || !strings.Contains(err.Error(), "no stream captures") {
		t.Fatalf("Check: %v, want no stream captures", err)
	}
	target.Subject = "inbox.messages"
	if err := natsdest.Check(t.Context(), target, 2*time.Second); err != nil {
		t.Fatalf("Check of a captured subject: %v", err)
	}
}

// Credentials the server refuses: Misconfigured, never a retry without
// end; and Open does not fail for a server that is down.
func TestRefusedCredentialsAreMisconfigured(t *testing.T) {
	n := brokertest.StartNATSWithUser(t, "inbox", "right-password")
	p := open(t, destination.Target{URL: "nats://inbox:wrong-password@" + n.Addr(), Subject: "inbox.messages"})
	var err error
	for range 3 { // the first may come before the refusal is recorded
		if err = p.Send(t.Context(), destination.Event{ID: "SM1", Payload: []byte(`{}`), Attempt: 1}); destination.IsMisconfigured(err) {
			break
		}
	}
	if !destination.IsMisconfigured(err) || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("Send with refused credentials: %v, want Misconfigured, without the password", err)
	}
}

// The server killed with SIGKILL and started again while events are
// published, each retried until acknowledged as the workers retry it: the
// stream holds each acknowledged event exactly once (a publish whose ack
// the crash lost is dropped by Nats-Msg-Id when retried), and none is
// lost.
func TestACrashedServerStoresEachOnce(t *testing.T) {
	n := brokertest.StartNATS(t)
	n.CreateStream("INBOX", "inbox.>")
	p := open(t, destination.Target{URL: n.URL(), Subject: "inbox.messages"})
	acked := brokertest.PublishThroughOutage(t, n, func(ctx context.Context, id string) error {
		return p.Send(ctx, destination.Event{ID: id, Payload: []byte(`{"n":1}`), Attempt: 1})
	})
	seen := map[string]int{}
	for _, m := range n.Messages("INBOX") {
		seen[verify(t, m)]++
	}
	if len(seen) != len(acked) {
		t.Errorf("the stream holds %d distinct events; %d were acknowledged", len(seen), len(acked))
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("%s stored %d times, want once", id, seen[id])
		}
	}
}
