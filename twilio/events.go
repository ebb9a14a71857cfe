package twilio

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// BodyHashParam is the query parameter in which Twilio puts the SHA-256 of
// a JSON body it signs (Event Streams): the body itself is not signed; the
// URL with its hash is.
const BodyHashParam = "bodySHA256"

// BodyCheck is what a signed JSON body's URL says of it.
type BodyCheck int

// The outcomes of CheckBody.
const (
	BodyMatches    BodyCheck = iota // the URL's bodySHA256 is the body's
	BodyHashAbsent                  // the URL has no bodySHA256: a proxy dropped the query?
	BodyDiffers                     // the body is not the one Twilio hashed
)

// CheckBody compares the bodySHA256 query parameter of fullURL with the
// hex SHA-256 of body, as twilio-node's validateRequestWithBody does.
func CheckBody(fullURL string, body []byte) BodyCheck {
	_, query, _ := strings.Cut(fullURL, "?")
	query, _, _ = strings.Cut(query, "#")
	values, err := url.ParseQuery(query)
	given := values.Get(BodyHashParam)
	if err != nil || given == "" {
		return BodyHashAbsent
	}
	sum := sha256.Sum256(body)
	if !strings.EqualFold(given, hex.EncodeToString(sum[:])) {
		return BodyDiffers
	}
	return BodyMatches
}

// ValidURL reports whether signature is Twilio's signature of a request to
// fullURL that has no form parameters (a JSON body's: the URL carries its
// bodySHA256), under one of the Validator's tokens; see Valid.
func (v *Validator) ValidURL(fullURL, signature string) bool { return v.Valid(fullURL, nil, signature) }

// The Event Streams types of messaging this service stores; other types
// on a sink are answered and ignored.
const (
	EventInboundMessage = "com.twilio.messaging.inbound-message.received"
	// EventStatusPrefix begins the outbound status events' types: its
	// last part is the status (com.twilio.messaging.message.delivered).
	EventStatusPrefix = "com.twilio.messaging.message."
)

// Event is one CloudEvent of an Event Streams batch.
type Event struct {
	SpecVersion string          `json:"specversion"`
	Type        string          `json:"type"`
	Source      string          `json:"source"`
	ID          string          `json:"id"`
	Time        string          `json:"time"`
	Data        json.RawMessage `json:"data"`
}

// MaxEvents bounds the events of one batch: Twilio sends a few dozen.
const MaxEvents = 1000

// ParseEvents reads an Event Streams body: a JSON array of CloudEvents
// (objects), at most MaxEvents. Anything else is an error; an event's data
// is left for its type to read.
func ParseEvents(body []byte) ([]Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, errors.New("not a JSON array of events")
	}
	var events []Event
	for dec.More() {
		if len(events) == MaxEvents {
			return nil, fmt.Errorf("more than %d events in one batch", MaxEvents)
		}
		var e Event
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("event %d is not a CloudEvent object: %w", len(events), err)
		}
		events = append(events, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("the array does not end: %w", err)
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(body, " \t\r\n"))) {
		return nil, errors.New("data after the array")
	}
	return events, nil
}

// AccountSID returns the data.accountSid of e, "" when it has none.
func (e Event) AccountSID() string {
	var d struct {
		AccountSID string `json:"accountSid"`
	}
	json.Unmarshal(e.Data, &d) // an event without one has ""
	return d.AccountSID
}
