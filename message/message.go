// Package message holds the service's shapes of a message: what is stored
// for a new one (Inbound), a stored one (Message), a status callback and
// its event, the jsonb columns (Metadata, Params, MediaList), and the JSON
// a message is forwarded and shown as (Payload). It is a leaf: the store
// maps the database to these types, and everything above reads and writes
// them without touching JSON or the database's types.
package message

import (
	"strings"
	"unicode/utf8"
)

// Direction says whether Twilio delivered a message to us or sent one for us.
type Direction string

// The values the messages.direction check constraint allows.
const (
	DirectionInbound  Direction = "inbound"
	DirectionOutbound Direction = "outbound"
)

// Metadata is the messages.metadata column. MessageSID is the idempotency key:
// the unique index is on metadata->>'message_sid'.
type Metadata struct {
	// MessageSID is Twilio's id of the message, e.g. SM followed by 32 hex digits.
	MessageSID string `json:"message_sid"`
	// IdempotencyToken is the I-Twilio-Idempotency-Token header of the delivery
	// that stored the row, kept for tracing retries; it is not the key.
	IdempotencyToken string `json:"idempotency_token,omitempty"`
	// Source says how the service learned of the message first:
	// SourceWebhook, SourceEventStream (an Event Streams event), or
	// SourceReconcile when a sweep of Twilio's API found it stored by
	// neither. Rows stored before sources were recorded have none: webhook.
	Source string `json:"source,omitempty"`
	// Params is every form parameter Twilio sent, by name, exactly as sent.
	Params Params `json:"params"`
}

// The values of Metadata.Source.
const (
	SourceWebhook     = "webhook"
	SourceReconcile   = "reconcile"
	SourceEventStream = "event-stream" // Twilio Event Streams (docs/event-streams.md)
)

// Params is a webhook's form parameters by name, exactly as Twilio sent
// them; message_status_events.params holds one too.
type Params map[string]string

// Optional returns p[name], or nil when it is absent or empty: nullable
// columns store NULL rather than "".
func (p Params) Optional(name string) *string {
	if v := p[name]; v != "" {
		return &v
	}
	return nil
}

// MediaList is the messages.media column: a message's media in Twilio's
// MediaUrlN order.
type MediaList []Media

// Media is one item of the messages.media column: Twilio's MediaUrlN and
// MediaContentTypeN for the same N.
type Media struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	// DownloadURL is, in a forward only, where the app reads the medium
	// kept here without Twilio's credentials: signed and expiring
	// (docs/media.md). Never stored.
	DownloadURL string `json:"download_url,omitempty"`
}

// Storable reports whether s can be stored exactly in a text column and a
// jsonb string: valid UTF-8 (JSON encoders would silently replace the
// rest) and no NUL (PostgreSQL refuses it).
func Storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
