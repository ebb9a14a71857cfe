package simulate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"inbox/twilio"
)

// An Event is one CloudEvent of an Event Streams batch, as Twilio sends it.
type Event map[string]any

// InboundEvent is the Event Streams event of the message InboundForm(kind,
// sid, n) delivers by webhook: the same sid, account, numbers and body,
// without media URLs (the event's schema has none), with what only events
// carry: optOutType and, for a group MMS, recipients.
func InboundEvent(kind Kind, sid string, n int, optOut string, recipients []string) Event {
	f := InboundForm(kind, sid, n)
	data := map[string]any{
		"messageSid": sid, "accountSid": f.Get("AccountSid"), "from": f.Get("From"), "to": f.Get("To"),
		"body": f.Get("Body"), "numMedia": atoi(f.Get("NumMedia")), "numSegments": 1,
		"eventName": "com.twilio.messaging.inbound-message.received", "timestamp": "2026-12-04T10:00:00.000Z",
	}
	for _, k := range []string{"FromCity", "FromState", "FromCountry", "ToCity", "ToState", "ToCountry"} {
		if v := f.Get(k); v != "" {
			data[strings.ToLower(k[:1])+k[1:]] = v
		}
	}
	if optOut != "" {
		data["optOutType"] = optOut
	}
	if recipients != nil {
		data["recipients"] = recipients
	}
	return Event{"specversion": "1.0", "type": twilio.EventInboundMessage, "source": "/2010-04-01/Accounts/" + AccountSID + "/Messages/" + sid + ".json",
		"id": "EZ" + strings.TrimPrefix(strings.TrimPrefix(sid, "SM"), "MM"), "dataschema": "https://events-schemas.twilio.com/Messaging.InboundMessageV1/6",
		"datacontenttype": "application/json", "time": "2026-12-04T10:00:00.000Z", "data": data}
}

// StatusEvent is the Event Streams event of an outbound message's status.
func StatusEvent(sid, status string) Event {
	return Event{"specversion": "1.0", "type": twilio.EventStatusPrefix + status, "source": "/2010-04-01/Accounts/" + AccountSID + "/Messages/" + sid + ".json",
		"id": "EZ" + status + sid[2:], "dataschema": "https://events-schemas.twilio.com/Messaging.MessageStatus/4", "time": "2026-12-04T10:00:01.000Z",
		"data": map[string]any{"messageSid": sid, "accountSid": AccountSID, "messageStatus": strings.ToUpper(status), "to": "+5511987650000",
			"from": "+14155550100", "timestamp": "2026-12-04T10:00:01.000Z"}}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// NewEventsRequest returns a POST of the batch events to target, as Twilio
// sends a sink's: a JSON array, signed with token over signedURL with its
// bodySHA256 added.
func NewEventsRequest(ctx context.Context, target, signedURL, token string, events []Event) (*http.Request, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return nil, err
	}
	return SignedEventsRequest(ctx, target, signedURL, token, body)
}

// SignedEventsRequest is NewEventsRequest of a body as it is.
func SignedEventsRequest(ctx context.Context, target, signedURL, token string, body []byte) (*http.Request, error) {
	sum := sha256.Sum256(body)
	query := twilio.BodyHashParam + "=" + hex.EncodeToString(sum[:])
	sep := "?"
	if strings.Contains(signedURL, "?") {
		sep = "&"
	}
	signedURL += sep + query
	sep = "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+sep+query, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(twilio.SignatureHeader, twilio.Sign(token, signedURL, nil))
	return req, nil
}
