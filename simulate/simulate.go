// Package simulate plays Twilio: it builds the inbound-message webhooks
// Twilio sends for SMS, MMS and WhatsApp, signs them as Twilio does, and
// delivers them to a running service, each message as many times as asked
// and concurrently, as Twilio's retries, fallbacks and racing replicas do.
// `inbox simulate` drives it; the HTTP tests build their requests with it.
package simulate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
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
	req.Header.Set(twilio.IdempotencyHeader, NewMessageSID(SMS)[2:])
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
	// Accounts, when set, are cycled through: each message belongs to one
	// (its AccountSid) and is signed with that account's token, as Twilio
	// signs for subaccounts; Token is then not used.
	Accounts []Account
	// MediaBase, when set, is where the MMS's media are (a MediaHost, as
	// the service's TWILIO_API_URL): unset, on Twilio's API host.
	MediaBase string
	// Overrides are Twilio's connection overrides, the fragment of the
	// webhook URL configured at Twilio ("rc=3&rp=5xx"): the signed URL
	// carries the fragment, as Twilio's does (the signature leaves it out),
	// and a delivery is retried as Twilio would: up to rc more times after
	// an answer rp names (4xx, 5xx or all) or no answer at all. Empty:
	// Twilio's default, no retry after an answer.
	Overrides string

	retries  int
	retryOn4 bool
	retryOn5 bool
}

// parseOverrides reads the rc (0 to 5) and rp (comma-separated 4xx, 5xx,
// ct, rt, all) of Twilio's connection overrides; the timeouts (ct, rt, tt)
// are accepted and left to the client's own.
func (o *Options) parseOverrides() error {
	if o.Overrides == "" {
		return nil
	}
	q, err := url.ParseQuery(strings.TrimPrefix(o.Overrides, "#"))
	if err != nil {
		return fmt.Errorf("connection overrides %q: %w", o.Overrides, err)
	}
	for name := range q {
		switch name {
		case "rc", "rp", "ct", "rt", "tt", "e", "edge":
		default:
			return fmt.Errorf("connection overrides %q: unknown %q (want rc, rp, ct, rt, tt)", o.Overrides, name)
		}
	}
	if rc := q.Get("rc"); rc != "" {
		n, err := strconv.Atoi(rc)
		if err != nil || n < 0 || n > 5 {
			return fmt.Errorf("connection overrides %q: rc must be 0 to 5", o.Overrides)
		}
		o.retries = n
	}
	for p := range strings.SplitSeq(q.Get("rp"), ",") {
		switch p {
		case "4xx":
			o.retryOn4 = true
		case "5xx":
			o.retryOn5 = true
		case "all":
			o.retryOn4, o.retryOn5 = true, true
		case "ct", "rt", "":
		default:
			return fmt.Errorf("connection overrides %q: rp %q is not 4xx, 5xx, ct, rt or all", o.Overrides, p)
		}
	}
	return nil
}

// retry reports whether Twilio, under the overrides, sends a delivery again
// after this answer (status 0: none).
func (o *Options) retry(status int) bool {
	switch {
	case status == 0:
		return true
	case status >= 500:
		return o.retryOn5
	case status >= 400:
		return o.retryOn4
	}
	return false
}

// Result is what the service answered.
type Result struct {
	// SIDs are the distinct message sids sent.
	SIDs []string
	// Statuses counts the answers by HTTP status; Reasons holds, by
	// status of 400 and above, the first answer's reason (its body's first
	// line: the service says why it refused).
	Statuses map[int]int
	Reasons  map[int]string
	// Failures counts deliveries that got no answer, and Errors holds up to
	// ten of their errors.
	Failures int
	Errors   []error
	// Elapsed is the time from first send to last answer.
	Elapsed time.Duration
	// Retries counts deliveries sent again under Options.Overrides.
	Retries int
	// Batches counts the distinct Event Streams batches (RunEvents).
	Batches int
}

// Run delivers opts.Messages inbound messages, each opts.Repeats times,
// with the repeats of one message sent back to back so that they race each
// other.
func Run(ctx context.Context, opts Options) (Result, error) {
	if err := opts.check(); err != nil {
		return Result{}, err
	}
	var sids []string
	var ds []delivery
	for i := range opts.Messages {
		kind := opts.Kinds[i%len(opts.Kinds)]
		sid := NewMessageSID(kind)
		sids = append(sids, sid)
		d := opts.forAccount(i, delivery{path: "/twilio/messages", form: opts.inboundForm(kind, sid, i)})
		for range opts.Repeats {
			ds = append(ds, d)
		}
	}
	res := deliverAll(ctx, opts, ds)
	res.SIDs = sids
	return res, ctx.Err()
}

// inboundForm is InboundForm, its media at MediaBase when set.
func (o *Options) inboundForm(kind Kind, sid string, n int) url.Values {
	f := InboundForm(kind, sid, n)
	if o.MediaBase != "" {
		MediaAt(f, o.MediaBase)
	}
	return f
}

// EventBatch is how many events RunEvents puts in one batch.
const EventBatch = 10

// RunEvents delivers opts.Messages inbound messages both ways Twilio can:
// each by its webhook and by its Event Streams event (in batches of
// EventBatch, optOutType STOP on every third), every webhook and every
// batch opts.Repeats times, all shuffled together, as a deployment with a
// sink and a webhook receives them.
func RunEvents(ctx context.Context, opts Options) (Result, error) {
	if err := opts.check(); err != nil {
		return Result{}, err
	}
	var sids []string
	var ds []delivery
	var batch []Event
	batches := 0
	flush := func(i int) {
		if len(batch) == 0 {
			return
		}
		d := opts.forAccount(i, delivery{path: "/twilio/events", events: batch, form: url.Values{}})
		if d.form.Get("AccountSid") != "" {
			for _, e := range batch {
				e["data"].(map[string]any)["accountSid"] = d.form.Get("AccountSid")
			}
		}
		for range opts.Repeats {
			ds = append(ds, d)
		}
		batch = nil
		batches++
	}
	for i := range opts.Messages {
		kind := opts.Kinds[i%len(opts.Kinds)]
		sid := NewMessageSID(kind)
		sids = append(sids, sid)
		d := opts.forAccount(i, delivery{path: "/twilio/messages", form: opts.inboundForm(kind, sid, i)})
		for range opts.Repeats {
			ds = append(ds, d)
		}
		optOut := ""
		if i%3 == 0 {
			optOut = "STOP"
		}
		batch = append(batch, InboundEvent(kind, sid, i, optOut, nil))
		// A batch is one account's: it ends where the next message's
		// account differs.
		if len(batch) == EventBatch || len(opts.Accounts) > 1 || i == opts.Messages-1 {
			flush(i)
		}
	}
	mrand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	res := deliverAll(ctx, opts, ds)
	res.SIDs, res.Batches = sids, batches
	return res, ctx.Err()
}

// RunStatuses plays the status callbacks of opts.Messages outbound messages,
// cycling through Sequences: every callback opts.Repeats times, all of them
// shuffled together, as Twilio's unordered retries arrive. Final maps each
// sid to the status it must end in.
func RunStatuses(ctx context.Context, opts Options) (res Result, final map[string]string, err error) {
	if err := opts.check(); err != nil {
		return Result{}, nil, err
	}
	final = map[string]string{}
	var ds []delivery
	for i := range opts.Messages {
		seq := Sequences[i%len(Sequences)]
		sid := NewMessageSID(SMS)
		res.SIDs = append(res.SIDs, sid)
		final[sid] = seq.Final
		for _, st := range seq.Statuses {
			code := ""
			if st == seq.Final {
				code = seq.ErrorCode
			}
			d := opts.forAccount(i, delivery{path: "/twilio/status", form: StatusForm(sid, st, code)})
			for range opts.Repeats {
				ds = append(ds, d)
			}
		}
	}
	mrand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	sids := res.SIDs
	res = deliverAll(ctx, opts, ds)
	res.SIDs = sids
	return res, final, ctx.Err()
}

func (o *Options) check() error {
	if o.Messages < 1 || o.Repeats < 1 || o.Concurrency < 1 {
		return errors.New("messages, repeats and concurrency must each be at least 1")
	}
	o.PublicBaseURL = cmp.Or(o.PublicBaseURL, o.BaseURL)
	if len(o.Kinds) == 0 {
		o.Kinds = Kinds
	}
	o.Client = cmp.Or(o.Client, &http.Client{Timeout: 15 * time.Second})
	return o.parseOverrides()
}

// Account is a Twilio account and its auth token.
type Account struct {
	SID   string
	Token string
}

type delivery struct {
	path   string
	form   url.Values
	events []Event // set: an Event Streams batch, posted as JSON instead of form
	token  string  // "" means Options.Token
}

// forAccount makes a delivery of form belong to the i-th account, if any.
func (o *Options) forAccount(i int, d delivery) delivery {
	if len(o.Accounts) == 0 {
		return d
	}
	a := o.Accounts[i%len(o.Accounts)]
	d.form.Set("AccountSid", a.SID)
	d.token = a.Token
	return d
}

// deliverAll sends every delivery, opts.Concurrency at a time.
func deliverAll(ctx context.Context, opts Options, ds []delivery) Result {
	res := Result{Statuses: map[int]int{}, Reasons: map[int]string{}}
	jobs := make(chan delivery)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				target := strings.TrimSuffix(opts.BaseURL, "/") + d.path
				signed := strings.TrimSuffix(opts.PublicBaseURL, "/") + d.path
				if opts.Overrides != "" {
					signed += "#" + strings.TrimPrefix(opts.Overrides, "#")
				}
				token := cmp.Or(d.token, opts.Token)
				status, reason, err := deliver(ctx, opts.Client, target, signed, token, d)
				retried := 0
				for ; retried < opts.retries && opts.retry(status) && ctx.Err() == nil; retried++ {
					status, reason, err = deliver(ctx, opts.Client, target, signed, token, d)
				}
				mu.Lock()
				res.Retries += retried
				if err != nil {
					res.Failures++
					if len(res.Errors) < 10 {
						res.Errors = append(res.Errors, err)
					}
				} else {
					res.Statuses[status]++
					if _, ok := res.Reasons[status]; !ok && reason != "" {
						res.Reasons[status] = reason
					}
				}
				mu.Unlock()
			}
		}()
	}
send:
	for _, d := range ds {
		select {
		case jobs <- d:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

func deliver(ctx context.Context, client *http.Client, target, signed, token string, d delivery) (status int, reason string, err error) {
	var req *http.Request
	if d.events != nil {
		signed, _, _ = strings.Cut(signed, "#") // no connection overrides for Event Streams
		req, err = NewEventsRequest(ctx, target, signed, token, d.events)
	} else {
		req, err = NewRequest(ctx, target, signed, token, d.form)
	}
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		reason, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	io.Copy(io.Discard, resp.Body) // let the connection be reused
	return resp.StatusCode, reason, nil
}

// StatusForm returns the form of Twilio's status callback reporting status
// for the outbound message sid; errorCode is sent when not empty, as Twilio
// does for failed and undelivered.
func StatusForm(sid, status, errorCode string) url.Values {
	f := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"AccountSid": {AccountSID}, "From": {"+5511987650000"}, "To": {"+5511912340000"},
		"ApiVersion": {"2010-04-01"},
	}
	if errorCode != "" {
		f.Set("ErrorCode", errorCode)
	}
	if status == "delivered" || status == "undelivered" {
		f.Set("RawDlrDoneDate", "2611241530")
	}
	return f
}

// Sequence is the statuses Twilio reports for one outbound message, in the
// order they happen, and the status the message must end in.
type Sequence struct {
	Statuses  []string
	ErrorCode string // sent with the failure status, if any
	Final     string
}

// Sequences are realistic status histories: an SMS delivered, a WhatsApp
// message read, and an SMS the carrier could not deliver.
var Sequences = []Sequence{
	{Statuses: []string{"queued", "sending", "sent", "delivered"}, Final: "delivered"},
	{Statuses: []string{"queued", "sent", "delivered", "read"}, Final: "read"},
	{Statuses: []string{"queued", "sent", "undelivered"}, ErrorCode: "30003", Final: "undelivered"},
}
