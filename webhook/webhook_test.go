package webhook_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"inbox/webhook"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestSignedAsTheIndependentLibraryVerifies: what SetHeaders signs, the
// standard-webhooks library accepts, and Verify accepts what that library
// signs: two implementations agree.
func TestSignedAsTheIndependentLibraryVerifies(t *testing.T) {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	lib, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"SM1","type":"message.received"}`)
	now := time.Now()
	h := http.Header{}
	webhook.SetHeaders(h, key, "SM1", now, body)
	if err := lib.Verify(body, h); err != nil {
		t.Fatalf("the library refuses our signature: %v", err)
	}
	sig, err := lib.Sign("SM2", now, body)
	if err != nil {
		t.Fatal(err)
	}
	theirs := http.Header{}
	theirs.Set(webhook.HeaderID, "SM2")
	theirs.Set(webhook.HeaderTimestamp, h.Get(webhook.HeaderTimestamp))
	theirs.Set(webhook.HeaderSignature, "v1,bm9wZQ== "+sig)
	if err := webhook.Verify(key, theirs, body, now); err != nil {
		t.Fatalf("Verify refuses the library's signature (second of two): %v", err)
	}
}

func TestVerifyRefusesWhatAReceiverWould(t *testing.T) {
	key, _ := webhook.ParseSecret(secret)
	body := []byte(`{}`)
	now := time.Now()
	signed := func(at time.Time) http.Header {
		h := http.Header{}
		webhook.SetHeaders(h, key, "SM1", at, body)
		return h
	}
	for name, c := range map[string]struct {
		h    http.Header
		body []byte
		want string
	}{
		"stale":        {signed(now.Add(-6 * time.Minute)), body, "from now"},
		"future":       {signed(now.Add(6 * time.Minute)), body, "from now"},
		"changed body": {signed(now), []byte(`{"x":1}`), "no webhook-signature matches"},
		"no headers":   {http.Header{}, body, "missing"},
	} {
		if err := webhook.Verify(key, c.h, c.body, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	for _, bad := range []string{"", "hunter2", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := webhook.ParseSecret(bad); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
}
