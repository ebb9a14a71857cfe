// Package simulate plays Twilio: it builds the inbound-message webhooks
// Twilio sends for SMS, MMS and WhatsApp, signs them as Twilio does, and
// delivers them to a running service, each message as many times as asked
// and concurrently, as Twilio's retries, fallbacks and racing replicas do.
// `inbox simulate` drives it; the HTTP tests build their requests with it.
package simulate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"inbox/twilio"
)

// Kind is a kind of inbound message.
type Kind string

// The kinds Twilio delivers to a messaging webhook.
const (
	SMS      Kind = "sms"
	MMS      Kind = "mms"
	WhatsApp Kind = "whatsapp"
)

// Kinds lists every Kind, for cycling through them.
var Kinds = []Kind{SMS, MMS, WhatsApp}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown message kind %q: want sms, mms or whatsapp", s)
}

// AccountSID is the account the simulated messages belong to.
const AccountSID = "AC00000000000000000000000000000000"

// NewMessageSID returns a random sid of the shape Twilio gives kind: MM for
// MMS, SM otherwise.
func NewMessageSID(kind Kind) string {
	var b [16]byte
	rand.Read(b[:])
	prefix := "SM"
	if kind == MMS {
		prefix = "MM"
	}
	return prefix + hex.EncodeToString(b[:])
}

// InboundForm returns the form Twilio posts for an inbound message of kind
// with sid; n varies the body and sender.
func InboundForm(kind Kind, sid string, n int) url.Values {
	from := fmt.Sprintf("+55119%08d", n%100000000)
	f := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid},
		"AccountSid": {AccountSID}, "From": {from}, "To": {"+5511987650000"},
		"Body":     {fmt.Sprintf("Olá! Pedido #%d está pronto? 🚚 100%% + \"aspas\" & <tags>", n)},
		"NumMedia": {"0"}, "NumSegments": {"1"}, "SmsStatus": {"received"},
		"ApiVersion": {"2010-04-01"}, "FromCity": {"SAO PAULO"}, "FromState": {"SP"},
		"FromCountry": {"BR"}, "FromZip": {""}, "ToCity": {"SAO PAULO"}, "ToState": {"SP"},
		"ToCountry": {"BR"}, "ToZip": {""},
	}
	switch kind {
	case MMS:
		f.Set("NumMedia", "2")
		for i, ct := range []string{"image/jpeg", "application/pdf"} {
			f.Set("MediaUrl"+strconv.Itoa(i), fmt.Sprintf("https://api.twilio.com/2010-04-01/Accounts/%s/Messages/%s/Media/ME%032x", AccountSID, sid, i))
			f.Set("MediaContentType"+strconv.Itoa(i), ct)
		}
	case WhatsApp:
		f.Set("From", "whatsapp:"+from)
		f.Set("To", "whatsapp:+14155238886")
		f.Set("ProfileName", "Zoë 🌻")
		f.Set("WaId", strings.TrimPrefix(from, "+"))
		f.Set("MessageType", "text")
		f.Set("Forwarded", "false")
		for _, k := range []string{"FromCity", "FromState", "FromCountry", "FromZip", "ToCity", "ToState", "ToCountry", "ToZip"} {
			f.Del(k)
		}
	}
	return f
}

// NewRequest returns a POST of form to target, signed with token over
// signedURL (what Twilio would have called: the public URL, which behind a
// proxy differs from target).
func NewRequest(ctx context.Context, target, signedURL, token string, form url.Values) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twilio.SignatureHeader, twilio.Sign(token, signedURL, form))
	req.Header.Set("I-Twilio-Idempotency-Token", NewMessageSID(SMS)[2:])
	return req, nil
}

// Options says what to send.
type Options struct {
	// BaseURL is where the service listens, e.g. http://127.0.0.1:8080.
	BaseURL string
	// PublicBaseURL is what signatures cover; empty means BaseURL.
	PublicBaseURL string
	// Token is the auth token to sign with.
	Token string
	// Messages is how many distinct messages to send.
	Messages int
	// Repeats is how many times each message is delivered (at least 1).
	Repeats int
	// Concurrency is how many deliveries are in flight at once.
	Concurrency int
	// Kinds are cycled through; empty means all.
	Kinds []Kind
	// Client sends the requests; nil means a client with a 15 s timeout,
	// Twilio's own.
	Client *http.Client
}

// Result is what the service answered.
type Result struct {
	// SIDs are the distinct message sids sent.
	SIDs []string
	// Statuses counts the answers by HTTP status.
	Statuses map[int]int
	// Failures counts deliveries that got no answer, and Errors holds up to
	// ten of their errors.
	Failures int
	Errors   []error
	// Elapsed is the time from first send to last answer.
	Elapsed time.Duration
}

// Run delivers opts.Messages messages, each opts.Repeats times, with the
// repeats of one message sent back to back so that they race each other.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Messages < 1 || opts.Repeats < 1 || opts.Concurrency < 1 {
		return Result{}, errors.New("messages, repeats and concurrency must each be at least 1")
	}
	if opts.PublicBaseURL == "" {
		opts.PublicBaseURL = opts.BaseURL
	}
	if len(opts.Kinds) == 0 {
		opts.Kinds = Kinds
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	const path = "/twilio/messages"
	target := strings.TrimSuffix(opts.BaseURL, "/") + path
	signed := strings.TrimSuffix(opts.PublicBaseURL, "/") + path

	type delivery struct{ form url.Values }
	res := Result{Statuses: map[int]int{}}
	jobs := make(chan delivery)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				status, err := deliver(ctx, client, target, signed, opts.Token, d.form)
				mu.Lock()
				if err != nil {
					res.Failures++
					if len(res.Errors) < 10 {
						res.Errors = append(res.Errors, err)
					}
				} else {
					res.Statuses[status]++
				}
				mu.Unlock()
			}
		}()
	}
send:
	for i := range opts.Messages {
		kind := opts.Kinds[i%len(opts.Kinds)]
		sid := NewMessageSID(kind)
		res.SIDs = append(res.SIDs, sid)
		form := InboundForm(kind, sid, i)
		for range opts.Repeats {
			select {
			case jobs <- delivery{form}:
			case <-ctx.Done():
				break send
			}
		}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, ctx.Err()
}

func deliver(ctx context.Context, client *http.Client, target, signed, token string, form url.Values) (int, error) {
	req, err := NewRequest(ctx, target, signed, token, form)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) // let the connection be reused
	return resp.StatusCode, nil
}
