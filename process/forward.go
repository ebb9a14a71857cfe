package process

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"inbox/message"
)

// maxIdlePerHost is how many keep-alive connections to the app the
// forwarder keeps: enough for every worker of a process.
const maxIdlePerHost = 256

// DefaultForwardTimeout bounds one forward attempt.
const DefaultForwardTimeout = 10 * time.Second

// Forwarder is the built-in Processor: it POSTs each event as JSON to the
// team's app, signed as the Standard Webhooks convention says, so the app
// can verify it with any Standard Webhooks (or Svix) library and drop
// repeats by webhook-id.
//
// A 2xx answer completes the job. A network error, a timeout, 408, 409,
// 425, 429 and 5xx are retried with backoff. Any other answer (a 3xx, since
// redirects are not followed, and the remaining 4xx) says the request
// itself is wrong, so the job is cancelled: repeating it would only repeat
// the refusal.
type Forwarder struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewForwarder returns a Forwarder to rawURL (http or https), signing with
// secret ("whsec_" and the base64 of the key, as Standard Webhooks prints
// it), each attempt bounded by timeout.
func NewForwarder(rawURL, secret string, timeout time.Duration) (*Forwarder, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid FORWARD_URL %q: want an http or https URL", rawURL)
	}
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Forwarder{
		url:    rawURL,
		secret: key,
		client: &http.Client{
			Timeout: timeout,
			// Every forward goes to one host: keep a connection per
			// worker open, where net/http's default keeps two and the
			// other workers dial (and leave TIME_WAIT) for every message.
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: maxIdlePerHost,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: timeout,
				ForceAttemptHTTP2:   true,
			},
			// A redirect would send the signed payload somewhere not configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
	}, nil
}

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

// Process implements Processor: one signed POST.
func (f *Forwarder) Process(ctx context.Context, ev Event) error {
	body := ev.Payload
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("build request: %w", err))
	}
	// Signed afresh on every attempt: receivers refuse a timestamp more
	// than five minutes from their clock.
	ts := strconv.FormatInt(f.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "inbox-forwarder")
	req.Header.Set("webhook-id", ev.ID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", Sign(f.secret, ev.ID, ts, body))
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("forward %s: %w", ev.ID, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable:
		err := fmt.Errorf("forward %s: receiver answered %d", ev.ID, code)
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), f.now()); ok {
			return RetryAfter(fmt.Errorf("%w, Retry-After %s", err, d), d)
		}
		return err
	case code == http.StatusUnauthorized, code == http.StatusForbidden, code == http.StatusNotFound:
		// The app refusing our signature or not serving the path is a
		// setting to fix (FORWARD_SECRET, FORWARD_URL), not a message that
		// can never be taken: cancelling would lose every forward made
		// while it is wrong.
		return fmt.Errorf("forward %s: receiver answered %d: check FORWARD_URL and that the app verifies with FORWARD_SECRET", ev.ID, code)
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooEarly, code >= 500:
		return fmt.Errorf("forward %s: receiver answered %d", ev.ID, code)
	default:
		return Permanent(fmt.Errorf("forward %s: receiver answered %d, which a retry cannot change", ev.ID, code))
	}
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110), as a wait from now of at most MaxRetryAfter; ok is false when
// there is none or it does not parse.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		d = time.Duration(min(secs, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(h); err == nil {
		d = max(at.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, MaxRetryAfter), true
}

// Sign returns the webhook-signature header of a Standard Webhooks
// delivery: "v1," and the base64 of HMAC-SHA256 over id.timestamp.body.
func Sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Payload is the JSON body of a forwarded event (documented in the README),
// for receivers written in Go and for processors that want it typed. The
// database builds the JSON (message_payload, sql/schema/00006); a test holds
// the two to the same fields.
type Payload struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Message PayloadMessage `json:"message"`
	Status  *PayloadStatus `json:"status,omitempty"`
}

// PayloadMessage is a stored message as forwarded.
type PayloadMessage struct {
	SID                 string            `json:"sid"`
	Direction           message.Direction `json:"direction"`
	AccountSID          string            `json:"account_sid"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	From                string            `json:"from"`
	To                  string            `json:"to"`
	Body                string            `json:"body"`
	NumMedia            int32             `json:"num_media"`
	NumSegments         int32             `json:"num_segments"`
	Media               message.MediaList `json:"media"`
	Status              string            `json:"status"`
	ErrorCode           *string           `json:"error_code"`
	ReceivedAt          time.Time         `json:"received_at"`
	Params              map[string]string `json:"params"`
}

// PayloadStatus is the status change of a "message.status" event.
type PayloadStatus struct {
	Status     string            `json:"status"`
	ErrorCode  *string           `json:"error_code"`
	ReceivedAt time.Time         `json:"received_at"`
	Params     map[string]string `json:"params"`
}

// Tolerance is how far a webhook-timestamp may be from the receiver's
// clock, as Standard Webhooks receivers check.
const Tolerance = 5 * time.Minute

// Verify checks a forwarded request as a Standard Webhooks receiver does:
// one of the space-separated v1 signatures in webhook-signature is the
// HMAC-SHA256 of webhook-id.webhook-timestamp.body under key, compared in
// constant time, and the timestamp is within Tolerance of now.
func Verify(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" || h.Get("webhook-signature") == "" {
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
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no webhook-signature matches")
}
