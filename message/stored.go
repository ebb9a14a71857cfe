package message

import "time"

// Inbound is a new inbound message as it is stored: what the webhook (and,
// later, any other source) knows of it. Every field is written by the one
// statement that stores an inbound message; a test in package store fails
// when a field added here is not.
type Inbound struct {
	AccountSID          string
	MessagingServiceSID *string // nil: none
	From                string
	To                  string
	Body                string
	NumMedia            int32
	NumSegments         int32
	Media               MediaList
	// Metadata holds the sid, the idempotency key.
	Metadata Metadata
}

// Message is a stored message, inbound or outbound.
type Message struct {
	ID                  int64
	Direction           Direction
	AccountSID          string
	MessagingServiceSID *string
	From                string
	To                  string
	Body                string
	NumMedia            int32
	NumSegments         int32
	Media               MediaList
	Status              string
	ErrorCode           *string
	ReceivedAt          time.Time
	Metadata            Metadata
}

// SID is the message's Twilio sid.
func (m Message) SID() string { return m.Metadata.MessageSID }

// StatusCallback is what one delivery status callback says of an outbound
// message.
type StatusCallback struct {
	MessageSID          string
	Status              string
	ErrorCode           *string // nil: none
	AccountSID          string
	MessagingServiceSID *string
	From                string
	To                  string
	// Params is every parameter of the callback, as sent.
	Params Params
}

// StatusEvent is a stored status callback: the first to report its status
// for its message.
type StatusEvent struct {
	ID         int64
	MessageSID string
	Status     string
	ErrorCode  *string
	ReceivedAt time.Time
	Params     Params
}
