// Package twilioapi is the part of Twilio's REST API that reconciliation
// needs: list an account's messages page by page, fetch one message, list
// a message's media. It is a small client over net/http rather than
// twilio-go, because twilio-go takes no context.Context, hard-codes its base
// URL (tests and staging need another), loses Retry-After on errors, and
// pulls gomock into non-test code; see docs/design.md.
//
// Every call takes a context, is bounded by a timeout of its own, reads at
// most MaxBody bytes of an answer, and backs off and retries a 429 (Twilio
// error 20429, "safe to retry after backing off") or a 503, no sooner than
// Retry-After says.
package twilioapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"inbox/internal/clip"
)

// DefaultBaseURL is Twilio's API.
const DefaultBaseURL = "https://api.twilio.com"

// Defaults of Options.
const (
	DefaultTimeout    = 15 * time.Second
	DefaultMaxBody    = 8 << 20 // a page of 1000 messages is about 1.5 MiB
	DefaultMaxRetries = 5
	// DefaultPageSize is the most Twilio gives in a page.
	DefaultPageSize = 1000
	// maxBackoff caps a wait between retries, Retry-After included.
	maxBackoff = time.Minute
)

// Options configure a Client; zero fields take the defaults.
type Options struct {
	HTTPClient *http.Client
	Timeout    time.Duration // one request
	MaxBody    int64         // the most of an answer read
	MaxRetries int           // of a 429 or 503, before giving up
	// Observe, when set, is told of every answer (status 0: no answer),
	// for metrics; throttled is true for a 429.
	Observe func(status int, throttled bool)
}

// Client talks to Twilio's API at one base URL.
type Client struct {
	base string
	opts Options
}

// New returns a Client for baseURL (DefaultBaseURL in production).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("invalid TWILIO_API_URL %q: want the scheme and host of Twilio's API, e.g. %s", baseURL, DefaultBaseURL)
	}
	opts.HTTPClient = cmp.Or(opts.HTTPClient, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }})
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.MaxBody = cmp.Or(opts.MaxBody, DefaultMaxBody)
	opts.MaxRetries = cmp.Or(opts.MaxRetries, DefaultMaxRetries)
	return &Client{base: strings.TrimSuffix(baseURL, "/"), opts: opts}, nil
}

// Credentials are an account's: Basic auth with the account sid and its
// auth token.
type Credentials struct {
	AccountSID string
	Token      string
}

// Error is an answer of Twilio's other than 2xx, with the body Twilio
// sends: {"code", "message", "more_info", "status"}.
type Error struct {
	Status   int    `json:"status"`
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("twilio answered %d, error %d: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("twilio answered %d", e.Status)
}

// ErrTooLarge is returned for an answer over Options.MaxBody.
var ErrTooLarge = errors.New("twilio's answer is larger than the bound")

// Message is a message as Twilio's API shows it. Every field is nullable
// there; absent ones decode to zero.
type Message struct {
	SID                 string            `json:"sid"`
	AccountSID          string            `json:"account_sid"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	From                string            `json:"from"`
	To                  string            `json:"to"`
	Body                string            `json:"body"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Direction           string            `json:"direction"`
	Status              string            `json:"status"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	DateCreated         string            `json:"date_created"`
	DateSent            string            `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	APIVersion          string            `json:"api_version"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
}

// Sent returns when Twilio sent the message (for an inbound one, when it
// sent the webhook), or when it created it when it has not been sent.
func (m Message) Sent() (time.Time, error) {
	s := m.DateSent
	if s == "" {
		s = m.DateCreated
	}
	t, err := time.Parse(time.RFC1123Z, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date of %s: %q is not RFC 2822", m.SID, s)
	}
	return t, nil
}

// Page is one page of a list.
type Page struct {
	Messages []Message `json:"messages"`
	// NextPageURI is the next page's path (relative, keeping the filters),
	// "" on the last page.
	NextPageURI string `json:"next_page_uri"`
}

// Media is one medium of a message.
type Media struct {
	SID         string `json:"sid"`
	ContentType string `json:"content_type"`
	URI         string `json:"uri"`
}

// ListQuery filters a list of messages. Twilio filters DateSent by day
// (GMT): Since lists from that day's start on.
type ListQuery struct {
	Since    time.Time // zero: no lower bound
	To       string
	PageSize int // zero: DefaultPageSize
}

// MessagesURI is the path of the first page of an account's messages
// matching q: Twilio's ListMessage, newest first.
func MessagesURI(accountSID string, q ListQuery) string {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("DateSent>", q.Since.UTC().Format("2006-01-02"))
	}
	if q.To != "" {
		v.Set("To", q.To)
	}
	size := q.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	v.Set("PageSize", strconv.Itoa(size))
	return "/2010-04-01/Accounts/" + accountSID + "/Messages.json?" + v.Encode()
}

// MessagesPage lists the page at uri, as MessagesURI or a page's
// NextPageURI gives it. uri must be a path under the account's messages:
// a page that points elsewhere is refused, so credentials never go to
// another host or another account's resources.
func (c *Client) MessagesPage(ctx context.Context, cred Credentials, uri string) (Page, error) {
	if err := c.underAccount(cred, uri); err != nil {
		return Page{}, err
	}
	var p struct {
		Messages    *[]Message `json:"messages"`
		NextPageURI *string    `json:"next_page_uri"`
	}
	if err := c.get(ctx, cred, uri, &p); err != nil {
		return Page{}, err
	}
	if p.Messages == nil {
		return Page{}, fmt.Errorf("page %s: no messages list in the answer", uri)
	}
	page := Page{Messages: *p.Messages}
	if p.NextPageURI != nil {
		page.NextPageURI = *p.NextPageURI
		if err := c.underAccount(cred, page.NextPageURI); err != nil {
			return Page{}, fmt.Errorf("page %s: next page: %w", uri, err)
		}
	}
	return page, nil
}

// FetchMessage returns one message of the account.
func (c *Client) FetchMessage(ctx context.Context, cred Credentials, sid string) (Message, error) {
	var m Message
	err := c.get(ctx, cred, "/2010-04-01/Accounts/"+cred.AccountSID+"/Messages/"+url.PathEscape(sid)+".json", &m)
	return m, err
}

// Bounds on a media list, whatever Twilio's API (or something answering
// as it) says: a message carries at most ten media, and a webhook
// carrying more than MaxMedia is refused, so no path stores more.
const (
	MaxMedia      = 100
	maxMediaPages = 10
)

// ErrTooManyMedia is a media list beyond MaxMedia or maxMediaPages
// pages, or one whose next page is a page it listed already.
var ErrTooManyMedia = errors.New("a media list beyond its bound")

// ListMedia returns every medium of a message, following its pages, at
// most MaxMedia in maxMediaPages pages, each page once (ErrTooManyMedia).
func (c *Client) ListMedia(ctx context.Context, cred Credentials, messageSID string) ([]Media, error) {
	uri := "/2010-04-01/Accounts/" + cred.AccountSID + "/Messages/" + url.PathEscape(messageSID) + "/Media.json?PageSize=100"
	var all []Media
	seen := map[string]bool{}
	for uri != "" {
		if seen[uri] || len(seen) == maxMediaPages {
			return nil, fmt.Errorf("media of %s: %w: page %d, or a page listed twice", messageSID, ErrTooManyMedia, len(seen)+1)
		}
		seen[uri] = true
		if err := c.underAccount(cred, uri); err != nil {
			return nil, err
		}
		var p struct {
			MediaList   *[]Media `json:"media_list"`
			NextPageURI *string  `json:"next_page_uri"`
		}
		if err := c.get(ctx, cred, uri, &p); err != nil {
			return nil, err
		}
		if p.MediaList == nil {
			return nil, fmt.Errorf("media of %s: no media_list in the answer", messageSID)
		}
		if len(all)+len(*p.MediaList) > MaxMedia {
			return nil, fmt.Errorf("media of %s: %w: more than %d media", messageSID, ErrTooManyMedia, MaxMedia)
		}
		all = append(all, *p.MediaList...)
		uri = ""
		if p.NextPageURI != nil {
			uri = *p.NextPageURI
		}
	}
	return all, nil
}

// MediaURL is where a medium itself is: its uri without ".json", on the
// API's host, as a webhook's MediaUrlN gives it.
func (c *Client) MediaURL(m Media) string { return c.base + strings.TrimSuffix(m.URI, ".json") }

// underAccount refuses a path that is not under the account's resources.
func (c *Client) underAccount(cred Credentials, uri string) error {
	if !strings.HasPrefix(uri, "/2010-04-01/Accounts/"+cred.AccountSID+"/") || strings.Contains(uri, "//") ||
		strings.Contains(uri, "/../") || strings.ContainsAny(uri, "\\#\r\n") {
		return fmt.Errorf("%q is not a path under account %s", clip.Clip(uri), cred.AccountSID)
	}
	return nil
}

// get requests path and decodes a 2xx answer into v, retrying a 429 or a
// 503 after backing off.
func (c *Client) get(ctx context.Context, cred Credentials, path string, v any) error {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		retry, after, err := c.once(ctx, cred, path, v)
		if err == nil {
			return nil
		}
		if !retry || attempt >= c.opts.MaxRetries {
			return err
		}
		wait := after
		if wait < 0 { // Twilio did not say
			wait = backoff
			backoff = min(2*backoff, maxBackoff)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting to retry after: %w)", ctx.Err(), err)
		case <-time.After(min(wait, maxBackoff)):
		}
	}
}

// once makes one request. retry says whether it may be tried again, and
// after how long Twilio asked to wait first (negative: it did not say).
func (c *Client) once(ctx context.Context, cred Credentials, path string, v any) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return false, 0, fmt.Errorf("request %s: %w", clip.Clip(path), err)
	}
	req.SetBasicAuth(cred.AccountSID, cred.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "inbox-reconcile")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		c.observe(0)
		// A network error: worth another try, as a 503 is, unless the
		// caller gave up.
		return ctx.Err() == nil, -1, fmt.Errorf("GET %s: %w", clip.Clip(path), err)
	}
	defer resp.Body.Close()
	c.observe(resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBody+1))
	if err != nil {
		return ctx.Err() == nil, -1, fmt.Errorf("GET %s: read the answer: %w", clip.Clip(path), err)
	}
	if int64(len(body)) > c.opts.MaxBody {
		return false, 0, fmt.Errorf("GET %s: %w (%d bytes)", clip.Clip(path), ErrTooLarge, c.opts.MaxBody)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		json.Unmarshal(body, e) // a body that is not Twilio's error leaves the status
		e.Status = resp.StatusCode
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			return true, retryAfter(resp.Header.Get("Retry-After"), time.Now()), fmt.Errorf("GET %s: %w", clip.Clip(path), e)
		}
		return false, 0, fmt.Errorf("GET %s: %w", clip.Clip(path), e)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, 0, fmt.Errorf("GET %s: the answer is not the JSON expected: %w", clip.Clip(path), err)
	}
	return false, 0, nil
}

func (c *Client) observe(status int) {
	if c.opts.Observe != nil {
		c.opts.Observe(status, status == http.StatusTooManyRequests)
	}
}

// retryAfter reads Retry-After (seconds or an HTTP date) as a wait;
// negative when absent or unreadable (then the backoff's).
func retryAfter(h string, now time.Time) time.Duration {
	if secs, err := strconv.Atoi(h); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(at.Sub(now), 0)
	}
	return -1
}
