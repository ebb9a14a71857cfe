package twilioapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"inbox/internal/clip"
)

// Medium names one medium of a message on Twilio's API: what a webhook's
// MediaUrlN or a media list's uri points at.
type Medium struct {
	AccountSID string // AC…
	MessageSID string // MM… or SM…
	SID        string // ME…
}

// Path is the medium's path on the API, without ".json": GET gives its
// bytes (through a redirect), DELETE (with ".json") removes it.
func (m Medium) Path() string {
	return "/2010-04-01/Accounts/" + m.AccountSID + "/Messages/" + m.MessageSID + "/Media/" + m.SID
}

// mediumPath is the only shape of a medium's path fetched.
var mediumPath = regexp.MustCompile(`^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages/((?:MM|SM)[0-9a-f]{32})/Media/(ME[0-9a-f]{32})$`)

// ErrNotAMedium is a media URL this client will not fetch: not on the
// API's host (scheme, host and port of TWILIO_API_URL), or not a medium's
// path. A webhook's fields are the sender's to choose should its signature
// check ever be misconfigured, so nothing else is ever requested with an
// account's credentials, nor at all.
var ErrNotAMedium = errors.New("not a medium on Twilio's API")

// ParseMedium returns the medium raw names, when it is on this client's
// API host with a medium's path (a trailing ".json" allowed) of account
// accountSID; else ErrNotAMedium, saying why.
func (c *Client) ParseMedium(raw, accountSID string) (Medium, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Medium{}, fmt.Errorf("%w: %q does not parse", ErrNotAMedium, clip.Clip(raw))
	}
	base, _ := url.Parse(c.base) // checked by New
	if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Medium{}, fmt.Errorf("%w: %q is not on %s", ErrNotAMedium, clip.Clip(raw), c.base)
	}
	p := u.EscapedPath()
	if len(p) > 5 && p[len(p)-5:] == ".json" {
		p = p[:len(p)-5]
	}
	m := mediumPath.FindStringSubmatch(p)
	if m == nil {
		return Medium{}, fmt.Errorf("%w: %q is not a medium's path", ErrNotAMedium, clip.Clip(p))
	}
	if m[1] != accountSID {
		return Medium{}, fmt.Errorf("%w: %q is under account %s, not the message's %s", ErrNotAMedium, clip.Clip(p), m[1], accountSID)
	}
	return Medium{AccountSID: m[1], MessageSID: m[2], SID: m[3]}, nil
}

// Fetched is what a fetch of a medium wrote.
type Fetched struct {
	ContentType string // as the answer said, checked; application/octet-stream when it said nothing usable
	Size        int64
	SHA256      [32]byte
}

// ErrMediumTooLarge is a medium over the bound given to FetchMedium.
var ErrMediumTooLarge = errors.New("the medium is larger than MEDIA_MAX_BYTES")

// MediumError is an answer other than 2xx to a medium's fetch: its status
// and, for a 429 or 503, the wait Twilio asked for (negative: none).
type MediumError struct {
	Status     int
	RetryAfter time.Duration
	// AtAPI: the API answered; otherwise the host it redirected to.
	AtAPI bool
}

func (e *MediumError) Error() string {
	where := "the host Twilio redirected to"
	if e.AtAPI {
		where = "twilio"
	}
	return fmt.Sprintf("%s answered %d", where, e.Status)
}

// maxMediumRedirects bounds the redirects followed for one medium: Twilio
// makes one, to its CDN.
const maxMediumRedirects = 3

// FetchMedium writes m's bytes to w, at most maxBytes (more is
// ErrMediumTooLarge, after at most maxBytes+1 were read), and returns
// their type, size and SHA-256. The API is asked with cred; the redirect
// it answers with (to a pre-signed, short-lived URL on another host) is
// followed without them, on any host, as a browser follows it. The bytes
// are streamed: nothing holds the whole medium. A non-2xx answer is a
// *MediumError (404 at the API: not ready yet, or deleted).
func (c *Client) FetchMedium(ctx context.Context, cred Credentials, m Medium, w io.Writer, maxBytes int64) (Fetched, error) {
	if m.AccountSID != cred.AccountSID {
		return Fetched{}, fmt.Errorf("medium %s is under account %s, not %s", m.SID, m.AccountSID, cred.AccountSID)
	}
	target := c.base + m.Path()
	for hop := 0; ; hop++ {
		resp, err := c.mediumRequest(ctx, target, cred, hop == 0)
		if err != nil {
			return Fetched{}, err
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "":
			resp.Body.Close()
			if hop >= maxMediumRedirects {
				return Fetched{}, fmt.Errorf("medium %s: more than %d redirects", m.SID, maxMediumRedirects)
			}
			next, err := url.Parse(target)
			if err == nil {
				next, err = next.Parse(resp.Header.Get("Location"))
			}
			if err != nil || (next.Scheme != "https" && next.Scheme != "http") {
				return Fetched{}, fmt.Errorf("medium %s: a redirect to a location that is not an http(s) URL", m.SID) // not the location: it may be pre-signed
			}
			target = next.String()
			continue
		case resp.StatusCode/100 != 2:
			resp.Body.Close()
			return Fetched{}, &MediumError{Status: resp.StatusCode, AtAPI: hop == 0, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		defer resp.Body.Close()
		return copyMedium(resp, w, maxBytes)
	}
}

// mediumRequest sends one GET of a fetch; only the API's (first) carries
// the credentials. Each is bounded by the client's timeout until its
// headers arrive; the body's read is bounded by ctx.
func (c *Client) mediumRequest(ctx context.Context, target string, cred Credentials, atAPI bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("request medium: %w", err)
	}
	if atAPI {
		req.SetBasicAuth(cred.AccountSID, cred.Token)
	}
	req.Header.Set("User-Agent", "inbox-media")
	// The answer's headers must come within the client's timeout; its body
	// may take longer (16 MB on a slow link), bounded by ctx.
	reqCtx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.opts.Timeout, cancel)
	resp, err := c.opts.HTTPClient.Do(req.WithContext(reqCtx))
	timer.Stop()
	if atAPI {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		c.observe(status)
	}
	if err != nil {
		cancel()
		host := "twilio"
		if !atAPI {
			host = "the host Twilio redirected to"
		}
		// Not the URL: the CDN's is pre-signed, a credential for its life,
		// and the error goes to the log.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET a medium from %s: %w", host, err)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose ends a request's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// copyMedium streams resp's body to w, bounded, hashing it.
func copyMedium(resp *http.Response, w io.Writer, maxBytes int64) (Fetched, error) {
	if resp.ContentLength > maxBytes {
		return Fetched{}, fmt.Errorf("%w (%d bytes, the bound is %d)", ErrMediumTooLarge, resp.ContentLength, maxBytes)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return Fetched{}, fmt.Errorf("read the medium after %d bytes: %w", n, err)
	}
	if n > maxBytes {
		return Fetched{}, fmt.Errorf("%w (more than %d bytes)", ErrMediumTooLarge, maxBytes)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return Fetched{}, fmt.Errorf("the medium ended after %d of %d bytes", n, resp.ContentLength)
	}
	f := Fetched{ContentType: mediaType(resp.Header.Get("Content-Type")), Size: n}
	h.Sum(f.SHA256[:0])
	return f, nil
}

// mediaType is ct when it is a well-formed media type, without its
// parameters but a charset; else application/octet-stream.
func mediaType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt == "" || len(mt) > 100 {
		return "application/octet-stream"
	}
	if cs, ok := params["charset"]; ok && len(cs) < 40 {
		return mime.FormatMediaType(mt, map[string]string{"charset": cs})
	}
	return mt
}

// DeleteMedium deletes m at Twilio. A medium already gone (404) is not an
// error: the delete may be a retry of one that was done.
func (c *Client) DeleteMedium(ctx context.Context, cred Credentials, m Medium) error {
	if m.AccountSID != cred.AccountSID {
		return fmt.Errorf("medium %s is under account %s, not %s", m.SID, m.AccountSID, cred.AccountSID)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+m.Path()+".json", nil)
	if err != nil {
		return fmt.Errorf("request the delete of medium %s: %w", m.SID, err)
	}
	req.SetBasicAuth(cred.AccountSID, cred.Token)
	req.Header.Set("User-Agent", "inbox-media")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		c.observe(0)
		return fmt.Errorf("DELETE medium %s: %w", m.SID, err)
	}
	defer resp.Body.Close()
	c.observe(resp.StatusCode)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return fmt.Errorf("DELETE medium %s: %w", m.SID, &MediumError{Status: resp.StatusCode, AtAPI: true,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())})
}
