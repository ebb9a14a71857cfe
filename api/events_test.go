package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"inbox/api"
	"inbox/simulate"
	"inbox/twilio"
)

// events builds a correctly signed Event Streams batch of evs.
func (h *harness) eventBatch(evs ...simulate.Event) *http.Request {
	h.t.Helper()
	u := h.srv.URL + api.PathEvents
	req, err := simulate.NewEventsRequest(h.t.Context(), u, u, token, evs)
	if err != nil {
		h.t.Fatal(err)
	}
	return req
}

// eventsBody builds a batch request of a literal body, signed as Twilio
// signs it.
func (h *harness) eventsBody(body string) *http.Request {
	h.t.Helper()
	u := h.srv.URL + api.PathEvents
	req, err := simulate.SignedEventsRequest(h.t.Context(), u, u, token, []byte(body))
	if err != nil {
		h.t.Fatal(err)
	}
	return req
}

func (h *harness) params(sid string) map[string]string {
	h.t.Helper()
	var raw []byte
	if err := h.pool.QueryRow(h.t.Context(), `SELECT metadata->'params' FROM messages WHERE metadata->>'message_sid' = $1`, sid).Scan(&raw); err != nil {
		h.t.Fatal(err)
	}
	var p map[string]string
	if err := json.Unmarshal(raw, &p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// One batch, replayed 20 times at once: its three inbound messages are
// stored once each, with one job each; its two status changes once each;
// another product's event is ignored; every answer is 200.
func TestAnEventBatchReplayedAtOnceIsStoredOnce(t *testing.T) {
	h := setup(t, "")
	sids := []string{simulate.NewMessageSID(simulate.SMS), simulate.NewMessageSID(simulate.MMS), simulate.NewMessageSID(simulate.WhatsApp)}
	out := simulate.NewMessageSID(simulate.SMS)
	batch := []simulate.Event{
		simulate.InboundEvent(simulate.SMS, sids[0], 1, "STOP", nil),
		simulate.InboundEvent(simulate.MMS, sids[1], 2, "", []string{"+15550001", "+15550002"}),
		simulate.InboundEvent(simulate.WhatsApp, sids[2], 3, "", nil),
		simulate.StatusEvent(out, "sent"), simulate.StatusEvent(out, "delivered"),
		{"specversion": "1.0", "type": "com.twilio.voice.insights.call-summary.complete", "id": "EZvoice", "data": map[string]any{"accountSid": simulate.AccountSID}},
	}
	body, _ := json.Marshal(batch)
	statuses, _ := h.burst(20, func() *http.Request { return h.eventsBody(string(body)) })
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("delivery %d answered %d, want 200", i, st)
		}
	}
	if n := h.rows(sids...); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
	if n := h.jobs(messageJob, sids...); n != 3 {
		t.Fatalf("%d jobs, want one for each of the 3 messages", n)
	}
	var statusEvents int
	h.pool.QueryRow(t.Context(), `SELECT count(*) FROM message_status_events WHERE message_sid = $1`, out).Scan(&statusEvents)
	if statusEvents != 2 {
		t.Fatalf("%d status events stored, want 2", statusEvents)
	}
	var source string
	h.pool.QueryRow(t.Context(), `SELECT metadata->>'source' FROM messages WHERE metadata->>'message_sid' = $1`, sids[0]).Scan(&source)
	if p := h.params(sids[0]); source != "event-stream" || p["OptOutType"] != "STOP" || p["MessageSid"] != sids[0] {
		t.Errorf("an event's message: source %q, params %v", source, p)
	}
	if p := h.params(sids[1]); p["Recipients"] != `["+15550001","+15550002"]` || p["NumMedia"] != "2" {
		t.Errorf("a group MMS's recipients and media count: %v", p)
	}
}

// The same message by webhook and by event, in both orders and at once:
// one row, one job, and the row holds what each carried.
func TestAWebhookAndItsEventMakeOneRowWithBoth(t *testing.T) {
	h := setup(t, "")
	for _, order := range []string{"webhook first", "event first", "at once"} {
		t.Run(order, func(t *testing.T) {
			sid := simulate.NewMessageSID(simulate.MMS)
			form := simulate.InboundForm(simulate.MMS, sid, 7)
			webhook := func() {
				st, body := h.post(h.signed(form))
				assertTwiML(t, st, body)
			}
			event := func() {
				if st, body := h.post(h.eventBatch(simulate.InboundEvent(simulate.MMS, sid, 7, "HELP", []string{"+15550001"}))); st != http.StatusOK {
					t.Fatalf("event: %d %s", st, body)
				}
			}
			switch order {
			case "webhook first":
				webhook()
				event()
			case "event first":
				event()
				webhook()
			default:
				var wg sync.WaitGroup
				for range 10 {
					wg.Go(webhook)
					wg.Go(event)
				}
				wg.Wait()
			}
			if n, jobs := h.rows(sid), h.jobs(messageJob, sid); n != 1 || jobs != 1 {
				t.Fatalf("%d rows and %d jobs, want one of each", n, jobs)
			}
			p := h.params(sid)
			if p["OptOutType"] != "HELP" || p["Recipients"] != `["+15550001"]` || p["ApiVersion"] != "2010-04-01" || p["MediaUrl1"] == "" {
				t.Errorf("the row lacks what one way carried: %v", p)
			}
			var media int
			h.pool.QueryRow(t.Context(), `SELECT jsonb_array_length(media) FROM messages WHERE metadata->>'message_sid' = $1`, sid).Scan(&media)
			if media != 2 {
				t.Errorf("%d media kept, want the webhook's 2", media)
			}
		})
	}
}

// What a sink can be sent, and what it answers: 4xx only for what can
// never be Twilio's (no signature, not a batch, mixed accounts, the wrong
// content type); 503, so that Twilio keeps retrying, for what an operator
// can fix; 200 for a batch with a malformed event (the rest stored).
// Nothing is stored by a refused or unverified batch.
func TestEventBatchesThatDoNotVerifyAreRetriedNotDropped(t *testing.T) {
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	good := h.eventBatch(simulate.InboundEvent(simulate.SMS, sid, 1, "", nil))
	goodBody, _ := json.Marshal([]simulate.Event{simulate.InboundEvent(simulate.SMS, sid, 1, "", nil)})
	u := h.srv.URL + api.PathEvents

	noSig := h.eventsBody(string(goodBody))
	noSig.Header.Del(twilio.SignatureHeader)
	wrongSig := h.eventsBody(string(goodBody))
	wrongSig.Header.Set(twilio.SignatureHeader, twilio.Sign("another-token", u, nil))
	otherBody := h.eventsBody(string(goodBody))
	changed := strings.Replace(string(goodBody), `"body":"`, `"body":"changed `, 1)
	otherBody.Body, otherBody.ContentLength = io.NopCloser(strings.NewReader(changed)), int64(len(changed))
	noHash, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(string(goodBody)))
	noHash.Header.Set("Content-Type", "application/json")
	noHash.Header.Set(twilio.SignatureHeader, twilio.Sign(token, u, nil))
	form := h.eventsBody(string(goodBody))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	mixed := h.eventBatch(simulate.InboundEvent(simulate.SMS, sid, 1, "", nil),
		simulate.Event{"type": twilio.EventInboundMessage, "id": "EZ2", "data": map[string]any{"accountSid": "AC" + strings.Repeat("b", 32)}})

	cases := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"no signature", noSig, http.StatusForbidden},
		{"not JSON", h.eventsBody(`{"MessageSid": "x"}`), http.StatusBadRequest},
		{"not an array of objects", h.eventsBody(`[1, 2]`), http.StatusBadRequest},
		{"data after the array", h.eventsBody(`[] []`), http.StatusBadRequest},
		{"mixed accounts", mixed, http.StatusBadRequest},
		{"a form", form, http.StatusUnsupportedMediaType},
		{"a signature of another token", wrongSig, http.StatusServiceUnavailable},
		{"a body that is not the one hashed", otherBody, http.StatusServiceUnavailable},
		{"no bodySHA256 (a proxy dropped the query)", noHash, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		if st, body := h.post(c.req); st != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, st, body, c.want)
		}
	}
	if n := h.rows(sid); n != 0 {
		t.Fatalf("a refused batch stored %d rows", n)
	}
	if !strings.Contains(h.logs.String(), "PUBLIC_BASE_URL") || !strings.Contains(h.logs.String(), "answered 503 so that Twilio retries") {
		t.Error("no log line says why a batch was not verified and what to check")
	}

	malformed := h.eventBatch(simulate.InboundEvent(simulate.SMS, sid, 1, "", nil),
		simulate.Event{"type": twilio.EventInboundMessage, "id": "EZbad", "data": map[string]any{"accountSid": simulate.AccountSID, "messageSid": "nope"}})
	if st, body := h.post(malformed); st != http.StatusOK {
		t.Fatalf("a batch with one malformed event: %d %s, want 200 (a retry cannot mend it)", st, body)
	}
	if n := h.rows(sid); n != 1 {
		t.Fatalf("the valid event of a partly malformed batch: %d rows, want 1", n)
	}
	if st, _ := h.post(good); st != http.StatusOK {
		t.Fatalf("the same batch again: %d", st)
	}
}

// With EVENTS_BASIC_AUTH, a batch whose Basic credentials differ is not
// stored and is retried (503); with them, it is stored.
func TestEventsBasicAuth(t *testing.T) {
	h := setup(t, "", func(c *api.Config) { c.EventsBasicAuth = "twilio:s3cret-sink" })
	sid := simulate.NewMessageSID(simulate.SMS)
	req := h.eventBatch(simulate.InboundEvent(simulate.SMS, sid, 1, "", nil))
	if st, _ := h.post(req); st != http.StatusServiceUnavailable || h.rows(sid) != 0 {
		t.Fatalf("no credentials: %d, want 503 and nothing stored", st)
	}
	req = h.eventBatch(simulate.InboundEvent(simulate.SMS, sid, 1, "", nil))
	req.SetBasicAuth("twilio", "s3cret-sink")
	if st, body := h.post(req); st != http.StatusOK || h.rows(sid) != 1 {
		t.Fatalf("with the credentials: %d %s", st, body)
	}
	if strings.Contains(h.logs.String(), "s3cret-sink") {
		t.Error("the log shows the sink's password")
	}
}

// While an account's token rotates, a batch signed with either is stored.
func TestEventsVerifyDuringTokenRotation(t *testing.T) {
	const next = "the-next-auth-token"
	h := setup(t, "", func(c *api.Config) {
		v, err := twilio.NewValidator(token, next)
		if err != nil {
			t.Fatal(err)
		}
		c.Validator = v
	})
	for _, tok := range []string{token, next} {
		sid := simulate.NewMessageSID(simulate.SMS)
		u := h.srv.URL + api.PathEvents
		req, err := simulate.NewEventsRequest(t.Context(), u, u, tok, []simulate.Event{simulate.InboundEvent(simulate.SMS, sid, 1, "", nil)})
		if err != nil {
			t.Fatal(err)
		}
		if st, body := h.post(req); st != http.StatusOK || h.rows(sid) != 1 {
			t.Fatalf("signed with %q: %d %s", tok, st, body)
		}
	}
}
