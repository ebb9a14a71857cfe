package message

import "time"

// Payload is the JSON body of a forwarded event (docs/processing.md, "The
// forward"), for receivers written in Go and for processors that want it
// typed. The database builds the JSON (message_payload, in
// sql/schema/00006); a test in package dispatch holds the two to the same
// fields. The admin API shows a message and its status events in the same
// shapes.
type Payload struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Message PayloadMessage `json:"message"`
	Status  *PayloadStatus `json:"status,omitempty"`
}

// The values of Payload.Type.
const (
	TypeReceived = "message.received"
	TypeStatus   = "message.status"
)

// PayloadMessage is a stored message as forwarded.
type PayloadMessage struct {
	SID                 string    `json:"sid"`
	Direction           Direction `json:"direction"`
	AccountSID          string    `json:"account_sid"`
	MessagingServiceSID *string   `json:"messaging_service_sid"`
	From                string    `json:"from"`
	To                  string    `json:"to"`
	Body                string    `json:"body"`
	NumMedia            int32     `json:"num_media"`
	NumSegments         int32     `json:"num_segments"`
	Media               MediaList `json:"media"`
	Status              string    `json:"status"`
	ErrorCode           *string   `json:"error_code"`
	ReceivedAt          time.Time `json:"received_at"`
	// Source is SourceWebhook, SourceEventStream for a message an Event
	// Streams event stored first, or SourceReconcile for a message a sweep of
	// Twilio's API found that no webhook had delivered: it has no
	// webhook-only parameters (docs/operating.md, "Reconciliation").
	Source string            `json:"source"`
	Params map[string]string `json:"params"`
}

// PayloadStatus is the status change of a "message.status" event.
type PayloadStatus struct {
	Status     string            `json:"status"`
	ErrorCode  *string           `json:"error_code"`
	ReceivedAt time.Time         `json:"received_at"`
	Params     map[string]string `json:"params"`
}

// Payload returns m as it is forwarded.
func (m Message) Payload() PayloadMessage {
	p := PayloadMessage{
		SID: m.Metadata.MessageSID, Direction: m.Direction, AccountSID: m.AccountSID,
		MessagingServiceSID: m.MessagingServiceSID, From: m.From, To: m.To,
		Body: m.Body, NumMedia: m.NumMedia, NumSegments: m.NumSegments, Media: m.Media,
		Status: m.Status, ErrorCode: m.ErrorCode, ReceivedAt: m.ReceivedAt, Source: m.Metadata.Source, Params: m.Metadata.Params,
	}
	if p.Source == "" {
		p.Source = SourceWebhook // stored before sources were recorded, as message_payload says
	}
	return p
}

// Payload returns e as a status change is forwarded.
func (e StatusEvent) Payload() PayloadStatus {
	return PayloadStatus{Status: e.Status, ErrorCode: e.ErrorCode, ReceivedAt: e.ReceivedAt, Params: e.Params}
}
