package message

import "time"

// Cursor is a position in the newest-first order of messages: the last
// message of a page.
type Cursor struct {
	ReceivedAt time.Time
	ID         int64
}

// Filter selects messages, newest first, a page at a time. Zero fields
// select everything.
type Filter struct {
	Direction string
	Status    string
	From      string
	To        string
	// Number selects messages from it or to it; with it, From and To are
	// not looked at.
	Number     string
	AccountSID string
	// Source is SourceWebhook, SourceEventStream or SourceReconcile.
	Source string
	// Forward selects messages whose forward is in one of these states
	// (destination's Forward states).
	Forward []string
	// Destination narrows Forward to the deliveries to this destination
	// ("default" is FORWARD_URL's).
	Destination string
	// Since and Until bound received_at to [Since, Until).
	Since time.Time
	Until time.Time
	// After, when set, starts the page after this position.
	After *Cursor
	// Limit is the page size, at least 1.
	Limit int32
}
