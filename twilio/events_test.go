package twilio_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"inbox/twilio"
)

// TestEventSignaturesAgreeWithTwilioNode: the vectors in testdata were made
// by twilio-node (getExpectedTwilioSignature, checked by its
// validateRequestWithBody; testdata/event_signatures.js): Unicode bodies, a
// URL with a port, one with a query of its own. Each verifies here, and
// changing the body, the URL or the token fails it.
func TestEventSignaturesAgreeWithTwilioNode(t *testing.T) {
	raw, err := os.ReadFile("testdata/event_signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors struct {
		Token string
		Cases []struct{ URL, Body, Signature string }
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	v, err := twilio.NewValidator(vectors.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := twilio.NewValidator(strings.Repeat("9", 32), "")
	for _, c := range vectors.Cases {
		if !v.ValidURL(c.URL, c.Signature) || twilio.CheckBody(c.URL, []byte(c.Body)) != twilio.BodyMatches {
			t.Errorf("%s: twilio-node's signature does not verify", c.URL)
		}
		if twilio.CheckBody(c.URL, []byte(c.Body+" ")) != twilio.BodyDiffers {
			t.Errorf("%s: a changed body matches its hash", c.URL)
		}
		if v.ValidURL(strings.Replace(c.URL, "events", "event", 1), c.Signature) || other.ValidURL(c.URL, c.Signature) {
			t.Errorf("%s: verifies for another URL or token", c.URL)
		}
		bare, _, _ := strings.Cut(c.URL, "bodySHA256")
		if twilio.CheckBody(bare, []byte(c.Body)) != twilio.BodyHashAbsent {
			t.Errorf("%s: no bodySHA256, not said so", bare)
		}
	}
}
