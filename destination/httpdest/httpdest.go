// Package httpdest is the HTTP destination: each event POSTed as JSON to
// an app, signed as the Standard Webhooks convention says (package
// webhook), so the app can verify it with any Standard Webhooks (or Svix)
// library and drop repeats by webhook-id.
package httpdest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"inbox/destination"
	"inbox/webhook"
)

// maxIdlePerHost is how many keep-alive connections to the app the
// forwarder keeps: enough for every worker of a process.
const maxIdlePerHost = 256

// DefaultForwardTimeout bounds one forward attempt.
const DefaultForwardTimeout = 10 * time.Second

// MaxRetryAfter caps the wait an app can ask for with Retry-After.
const MaxRetryAfter = 24 * time.Hour

// Forwarder is the built-in destination.Sender: it POSTs each event as
// JSON to the team's app, signed as the Standard Webhooks convention says.
//
// A 2xx answer completes the job. A network error, a timeout, 408, 409,
// 425, 429 and 5xx are retried with backoff (no sooner than a Retry-After
// of a 429 or 503 asks), and so are 401, 403 and 404, which say a setting
// is wrong rather than the message. Any other answer (a 3xx, since
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
	key, err := webhook.ParseSecret(secret)
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

// Send implements destination.Sender: one signed POST.
func (f *Forwarder) Send(ctx context.Context, ev destination.Event) error {
	body := ev.Payload
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return destination.Permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "inbox-forwarder")
	// Signed afresh on every attempt: receivers refuse a timestamp more
	// than five minutes from their clock.
	webhook.SetHeaders(req.Header, f.secret, ev.ID, f.now(), body)
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
			return destination.RetryAfter(fmt.Errorf("%w, Retry-After %s", err, d), d)
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
		return destination.Permanent(fmt.Errorf("forward %s: receiver answered %d, which a retry cannot change", ev.ID, code))
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
