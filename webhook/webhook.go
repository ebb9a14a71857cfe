// Package webhook is the Standard Webhooks convention
// (https://www.standardwebhooks.com/), as the forwarder signs what it
// sends and as a receiver checks it: webhook-id, webhook-timestamp and
// webhook-signature headers, an HMAC-SHA256 over id.timestamp.body under a
// secret written "whsec_" and base64. It depends only on the standard
// library, as package twilio does for Twilio's signature.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Tolerance is how far a webhook-timestamp may be from the receiver's
// clock, as Standard Webhooks receivers check: a sender signs each attempt
// afresh.
const Tolerance = 5 * time.Minute

// ParseSecret decodes a Standard Webhooks secret: "whsec_" followed by the
// base64 of at least 24 random bytes. The error never contains the secret.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("invalid FORWARD_SECRET: want whsec_ followed by base64 (e.g. whsec_$(head -c 32 /dev/urandom | base64))")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 24 {
		return nil, errors.New("invalid FORWARD_SECRET: the part after whsec_ must be standard base64 of at least 24 bytes")
	}
	return key, nil
}

// Sign returns the webhook-signature header of a delivery: "v1," and the
// base64 of HMAC-SHA256 over id.timestamp.body.
func Sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SetHeaders signs body as delivery id at now, setting the three headers.
func SetHeaders(h http.Header, key []byte, id string, now time.Time, body []byte) {
	for name, v := range Headers(key, id, now, body) {
		h.Set(name, v)
	}
}

// Headers returns the three headers that sign body as delivery id at now,
// by their names as the convention writes them (lower case): for a
// transport whose headers are not HTTP's (NATS, AMQP).
func Headers(key []byte, id string, now time.Time, body []byte) map[string]string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return map[string]string{HeaderID: id, HeaderTimestamp: ts, HeaderSignature: Sign(key, id, ts, body)}
}

// Verify checks a delivery as a Standard Webhooks receiver does: one of the
// space-separated v1 signatures in webhook-signature is the HMAC-SHA256 of
// webhook-id.webhook-timestamp.body under key, compared in constant time,
// and the timestamp is within Tolerance of now.
func Verify(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts := h.Get(HeaderID), h.Get(HeaderTimestamp)
	if id == "" || ts == "" || h.Get(HeaderSignature) == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not Unix seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("webhook-timestamp is %s from now, more than %s", d.Round(time.Second), Tolerance)
	}
	want := Sign(key, id, ts, body)
	for _, sig := range strings.Fields(h.Get(HeaderSignature)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no webhook-signature matches")
}
