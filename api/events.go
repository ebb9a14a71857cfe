package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"inbox/internal/clip"
	"inbox/message"
	"inbox/metrics"
	"inbox/store"
	"inbox/twilio"
)

// maxEventsWork bounds a batch's database work, within the five seconds
// Twilio waits for a sink's answer.
const maxEventsWork = 4 * time.Second

// DefaultMaxEventsBodyBytes bounds an Event Streams batch: sixteen times a
// form webhook's bound, for a batch of dozens of events.
const DefaultMaxEventsBodyBytes = 16 * DefaultMaxBodyBytes

// eventsSink is the Event Streams sink (docs/event-streams.md): a signed
// batch of CloudEvents, whose inbound messages go through the one insert
// webhooks use and whose status changes go through the status path.
type eventsSink struct {
	forms   *formReader // the public URL and the accounts' tokens
	store   *store.Store
	maxBody int64
	metrics *metrics.Metrics
	// duplicates, when set, counts each event of a message stored already.
	duplicates Duplicates
	// basicAuth is the SHA-256 of EVENTS_BASIC_AUTH ("user:password"),
	// nil when the sink has no credentials.
	basicAuth []byte
	// use records that the sink is in use, for the webhooks' repeats.
	use *sinkUse
}

// unverified is the answer to a batch that does not verify for a reason
// the operator can fix (PUBLIC_BASE_URL, a proxy, the sink's credentials,
// an account not added yet): 503, which Twilio retries for four hours,
// where a 4xx would make it drop the events for good. Nothing is stored.
func unverified(code, reason, hint string) error {
	return &httpError{status: http.StatusServiceUnavailable, code: code, reason: reason, hint: hint, retried: true}
}

// handleEvents answers POST /twilio/events. In order: a content type other
// than JSON is 415; a body over the bound 413; no X-Twilio-Signature 403;
// a body that is not a JSON array of CloudEvents, or whose events name no
// account or more than one, 400. Then what an operator can fix is 503,
// so Twilio keeps retrying: an unknown account, a signature or body hash
// that does not verify, wrong sink credentials. A verified batch is
// answered 200 once every message and status of it is committed; an event
// that is malformed is counted and skipped, one of another type counted
// and ignored.
func (s *eventsSink) handleEvents() http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		setDelivery(r.Context(), metrics.KindEvents)
		body, err := s.read(w, r)
		if err != nil {
			return err
		}
		events, account, err := s.verify(r, body)
		if err != nil {
			return err
		}
		ctx := r.Context()
		dbCtx := ctx // its deadline (withDeadline) bounds the lookup and every write together
		// Before its messages are stored: a webhook repeat that sees one
		// of them then knows to complete it.
		if err := s.use.marked(dbCtx); err != nil {
			return storeError(err)
		}
		token, _ := idempotencyToken(r.Header.Get(twilio.IdempotencyHeader))
		tally, err := s.storeEvents(dbCtx, events, account, token)
		if err != nil {
			return storeError(err)
		}
		databaseReached(ctx)
		setResult(ctx, tally.result())
		requestLogger(ctx).InfoContext(ctx, "event batch stored", "account_sid", account, "events", len(events),
			"new", tally.new, "duplicate", tally.duplicate, "ignored", tally.ignored, "malformed", tally.malformed)
		w.WriteHeader(http.StatusOK)
		return nil
	})
}

// read reads the batch's body, bounded.
func (s *eventsSink) read(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && mt != "application/cloudevents-batch+json") {
		return nil, refuse(http.StatusUnsupportedMediaType, RefusalContentType, "content type %q is not application/json", clip.Clip(ct))
	}
	return readBody(w, r, s.maxBody)
}

// verify parses the batch and checks who sent it: the account its events
// name, the signature over the URL with its bodySHA256, that hash against
// the body, and the sink's credentials.
func (s *eventsSink) verify(r *http.Request, body []byte) ([]twilio.Event, string, error) {
	sig := r.Header.Get(twilio.SignatureHeader)
	if sig == "" {
		return nil, "", refuse(http.StatusForbidden, RefusalSignatureMissing, "no %s header", twilio.SignatureHeader)
	}
	events, err := twilio.ParseEvents(body)
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, RefusalEventsNotBatch, "not a batch of CloudEvents: %v", err)
	}
	account := ""
	for i, e := range events {
		a := e.AccountSID()
		if i == 0 {
			account = a
		}
		if a != account || !twilio.IsAccountSID(a) {
			return nil, "", refuse(http.StatusBadRequest, RefusalEventsAccount, "event %d names account %q where the batch's first names %q: a batch is one account's", i, clip.Clip(a), account)
		}
	}
	if len(events) == 0 {
		return nil, "", nil // nothing to store, nothing to verify against: Twilio never sends one
	}
	validator, err := s.forms.validatorFor(r.Context(), twilio.Form{{Name: "AccountSid", Value: account}})
	if he, ok := errors.AsType[*httpError](err); ok && he.code == RefusalAccountUnknown {
		return nil, "", unverified(RefusalAccountUnknown, he.reason, "add the account (inbox accounts add "+account+"), or set TWILIO_AUTH_TOKEN; Twilio retries the batch meanwhile")
	} else if ok && he.code == RefusalAccountUnreadable {
		return nil, "", unverified(RefusalAccountUnreadable, he.reason, "ENCRYPTION_KEY must hold the key the account's token was sealed with")
	} else if err != nil {
		return nil, "", err
	}
	signed := s.forms.publicBaseURL + r.RequestURI
	path, _, _ := strings.Cut(r.RequestURI, "?")
	switch twilio.CheckBody(signed, body) {
	case twilio.BodyHashAbsent:
		return nil, "", unverified(RefusalBodyHashAbsent, "the URL has no "+twilio.BodyHashParam+" parameter",
			"Twilio signs every batch's URL with it: a proxy in front dropped the query string; PUBLIC_BASE_URL is "+s.forms.publicBaseURL)
	case twilio.BodyDiffers:
		return nil, "", unverified(RefusalBodyHashMismatch, "the body is not the one "+twilio.BodyHashParam+" hashes",
			"something between Twilio and the service changed the body (a proxy re-encoding JSON?)")
	}
	if !validator.ValidURL(signed, sig) {
		return nil, "", unverified(RefusalSignatureMismatch, fmt.Sprintf("%s does not match %s under the account's auth token(s)", twilio.SignatureHeader, s.forms.publicBaseURL+path),
			mismatchHint(s.forms.publicBaseURL, r, validator, nil)+"; the sink's URL must be PUBLIC_BASE_URL"+PathEvents)
	}
	if s.basicAuth != nil {
		user, pass, _ := r.BasicAuth()
		got := sha256.Sum256([]byte(user + ":" + pass))
		if subtle.ConstantTimeCompare(got[:], s.basicAuth) != 1 {
			return nil, "", unverified(RefusalBasicAuth, "the sink's credentials are not EVENTS_BASIC_AUTH's",
				"the sink's destination URL must carry EVENTS_BASIC_AUTH's user and password (https://user:pass@host"+PathEvents+")")
		}
	}
	return events, account, nil
}

// tally counts a batch's events by what became of them.
type tally struct {
	mu                                 sync.Mutex
	new, duplicate, ignored, malformed int
}

func (t *tally) add(n *int) {
	t.mu.Lock()
	*n++
	t.mu.Unlock()
}

// result is the batch's, for inbox_deliveries_total: new when it stored
// anything.
func (t *tally) result() string {
	if t.new > 0 {
		return metrics.ResultNew
	}
	return metrics.ResultDuplicate
}

// eventWriters bounds the inserts of one batch in flight at once: they
// join the group commit's batches.
const eventWriters = 16

// storeEvents stores the batch's messages and status changes, each through
// the path its webhook takes, at most eventWriters at once; an error of
// any leaves the batch to be retried whole (each write is idempotent).
func (s *eventsSink) storeEvents(ctx context.Context, events []twilio.Event, account, token string) (*tally, error) {
	t := &tally{}
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, eventWriters)
		errMu sync.Mutex
		first error
	)
	run := func(fn func() error) {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			if err := fn(); err != nil {
				errMu.Lock()
				first = errors.Join(first, err)
				errMu.Unlock()
			}
		})
	}
	logger := requestLogger(ctx)
	for _, e := range events {
		switch kind := eventKind(e.Type); kind {
		case metrics.EventInbound:
			msg, err := inboundEvent(e, account, token)
			if err != nil {
				s.counted(kind, metrics.EventMalformed, t, &t.malformed)
				logger.WarnContext(ctx, "malformed event skipped", "event_id", clip.Clip(e.ID), "type", e.Type, "reason", err.Error())
				continue
			}
			run(func() error { return s.storeInbound(ctx, msg, t) })
		case metrics.EventStatus:
			cb, err := statusEvent(e)
			if err != nil {
				s.counted(kind, metrics.EventMalformed, t, &t.malformed)
				logger.WarnContext(ctx, "malformed event skipped", "event_id", clip.Clip(e.ID), "type", e.Type, "reason", err.Error())
				continue
			}
			run(func() error { return s.storeStatus(ctx, cb, t) })
		default:
			s.counted(kind, metrics.EventIgnored, t, &t.ignored)
			logger.DebugContext(ctx, "event of another type ignored", "type", clip.Clip(e.Type))
		}
	}
	wg.Wait()
	return t, first
}

func (s *eventsSink) counted(kind, result string, t *tally, n *int) {
	t.add(n)
	s.metrics.Event(kind, result)
}

// storeInbound stores an inbound message through the one insert; a
// message stored already (by its webhook, a sweep or an earlier delivery)
// gains what only the event carries: its OptOutType and Recipients.
func (s *eventsSink) storeInbound(ctx context.Context, msg message.Inbound, t *tally) error {
	_, inserted, err := s.store.InsertInboundMessage(ctx, msg)
	if err != nil {
		return err
	}
	if inserted {
		s.counted(metrics.EventInbound, metrics.ResultNew, t, &t.new)
		return nil
	}
	s.counted(metrics.EventInbound, metrics.ResultDuplicate, t, &t.duplicate)
	sid := msg.Metadata.MessageSID
	if s.duplicates != nil {
		s.duplicates.Duplicate(sid, message.SourceEventStream)
	}
	if optOut := msg.Metadata.Params["OptOutType"]; optOut != "" {
		// Before the row gains it, which is what says the apps were not
		// told: a batch retried after a failure between the two still
		// records it, and once.
		recorded, err := s.store.RecordOptOut(ctx, sid, optOut)
		if err != nil {
			return err
		}
		if recorded {
			requestLogger(ctx).InfoContext(ctx, "an opt-out only the event carried, forwarded as the message's opt_out status", "sid", sid, "opt_out", optOut)
		}
	}
	extra := message.Params{}
	for _, k := range eventOnlyParams {
		if v, ok := msg.Metadata.Params[k]; ok {
			extra[k] = v
		}
	}
	if len(extra) == 0 {
		return nil
	}
	_, err = s.store.EnrichMessage(ctx, store.Enrichment{SID: sid, Params: extra})
	return err
}

// storeStatus records a status change through the status path: each
// status once, the message's status only forward.
func (s *eventsSink) storeStatus(ctx context.Context, cb message.StatusCallback, t *tally) error {
	res, err := s.store.RecordStatus(ctx, cb)
	if err != nil {
		return err
	}
	if res.NewEvent {
		s.counted(metrics.EventStatus, metrics.ResultNew, t, &t.new)
	} else {
		s.counted(metrics.EventStatus, metrics.ResultDuplicate, t, &t.duplicate)
	}
	return nil
}

// eventOnlyParams are what an inbound event carries that its webhook
// does not (always): kept on a row a webhook stored first.
var eventOnlyParams = [...]string{"OptOutType", "Recipients"}

// eventKind is the label an event's type counts under.
func eventKind(typ string) string {
	switch {
	case typ == twilio.EventInboundMessage:
		return metrics.EventInbound
	case strings.HasPrefix(typ, twilio.EventStatusPrefix):
		return metrics.EventStatus
	default:
		return metrics.EventOther
	}
}

// eventParams turns an event's data into params named as the webhook names
// them (messageSid → MessageSid, optOutType → OptOutType): strings as
// they are, numbers and booleans as their text, a list or an object (the
// recipients) as compact JSON. Bounded as a form is (MaxParams).
func eventParams(data json.RawMessage) (message.Params, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("data is not an object: %w", err)
	}
	if len(fields) > MaxParams {
		return nil, fmt.Errorf("%d fields, more than %d", len(fields), MaxParams)
	}
	params := make(message.Params, len(fields))
	for k, raw := range fields {
		if k == "" || !message.Storable(k) {
			return nil, errors.New("a field name is not text")
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			if string(raw) == "null" {
				continue
			}
			v = string(raw) // a number, a boolean, a list or an object, as JSON
		}
		if !message.Storable(v) {
			return nil, fmt.Errorf("field %q is not text PostgreSQL can store", clip.Clip(k))
		}
		r, size := utf8.DecodeRuneInString(k)
		params[string(unicode.ToUpper(r))+k[size:]] = v
	}
	return params, nil
}

// inboundEvent turns an inbound-message event into the message to store,
// checked as a webhook's is where the event has the same field.
func inboundEvent(e twilio.Event, account, token string) (message.Inbound, error) {
	params, err := eventParams(e.Data)
	if err != nil {
		return message.Inbound{}, err
	}
	sid := params["MessageSid"]
	switch {
	case !twilio.IsMessageSID(sid):
		return message.Inbound{}, fmt.Errorf("messageSid %q is not a message sid", clip.Clip(sid))
	case params["AccountSid"] != account:
		return message.Inbound{}, errors.New("accountSid is not the batch's")
	case params["From"] == "" || params["To"] == "":
		return message.Inbound{}, errors.New("from and to must be present")
	}
	numMedia, err := count(params, "NumMedia", 0, maxMedia)
	if err != nil {
		return message.Inbound{}, err
	}
	numSegments, err := count(params, "NumSegments", 1, maxSegments)
	if err != nil {
		return message.Inbound{}, err
	}
	return message.Inbound{
		AccountSID: account, MessagingServiceSID: params.Optional("MessagingServiceSid"),
		From: params["From"], To: params["To"], Body: params["Body"],
		NumMedia: int32(numMedia), NumSegments: int32(numSegments), Media: []message.Media{},
		Metadata: message.Metadata{MessageSID: sid, IdempotencyToken: token, Source: message.SourceEventStream, Params: params},
	}, nil
}

// statusEvent turns an outbound status event into the status change to
// record: the status is its type's last part.
func statusEvent(e twilio.Event) (message.StatusCallback, error) {
	params, err := eventParams(e.Data)
	if err != nil {
		return message.StatusCallback{}, err
	}
	sid, status := params["MessageSid"], strings.TrimPrefix(e.Type, twilio.EventStatusPrefix)
	switch {
	case !twilio.IsMessageSID(sid):
		return message.StatusCallback{}, fmt.Errorf("messageSid %q is not a message sid", clip.Clip(sid))
	case !twilio.IsStatus(status):
		return message.StatusCallback{}, fmt.Errorf("type %q names no status", clip.Clip(e.Type))
	}
	params["MessageStatus"] = status
	var errorCode *string
	if c := params["ErrorCode"]; c != "" && c != "0" {
		if _, err := strconv.Atoi(c); err == nil {
			errorCode = &c
		}
	}
	return message.StatusCallback{MessageSID: sid, Status: status, ErrorCode: errorCode, AccountSID: params["AccountSid"],
		MessagingServiceSID: params.Optional("MessagingServiceSid"), From: params["From"], To: params["To"], Params: params}, nil
}

// basicAuthHash is what eventsSink compares a request's Basic credentials
// with: nil when the sink has none.
func basicAuthHash(userPass string) []byte {
	if userPass == "" {
		return nil
	}
	h := sha256.Sum256([]byte(userPass))
	return h[:]
}
