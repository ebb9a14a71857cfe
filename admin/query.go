package admin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"inbox/destination"
	"inbox/internal/clip"
	"inbox/message"
	"inbox/routing"
	"inbox/twilio"
)

// Page sizes of GET /api/messages and the console's lists.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// nextCursor is the cursor of the page after ms, nil when ms is the last.
func nextCursor(ms []message.Message, limit int32) *string {
	if len(ms) < int(limit) || len(ms) == 0 {
		return nil
	}
	c := encodeCursor(cursorOf(ms[len(ms)-1]))
	return &c
}

// cursorOf is the position of m, the last message of a page.
func cursorOf(m message.Message) message.Cursor {
	return message.Cursor{ReceivedAt: m.ReceivedAt, ID: m.ID}
}

// parseFilter reads a message filter from q, whose names must be in known:
// an unknown one is refused rather than ignored, so a typo cannot turn a
// filtered read into an unfiltered one. The API, the console and a bulk
// retry all read their filters here.
func parseFilter(q map[string]string, known []string) (message.Filter, error) {
	f := message.Filter{Limit: defaultLimit}
	for name, v := range q {
		set, ok := filterParams()[name]
		if !ok || !slices.Contains(known, name) {
			return f, badParam(name, fmt.Sprintf("unknown parameter %q; known: %s", clip.Clip(name), strings.Join(known, ", ")))
		}
		if msg := set(&f, name, v); msg != "" {
			return f, badParam(name, msg)
		}
	}
	if f.Number != "" && (f.From != "" || f.To != "") {
		return f, badParam("number", "number is from or to: give it alone, or from and to instead")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, badParam("until", "until must be after since")
	}
	return f, nil
}

// filterParams set a filter's field from a parameter's value, or say what
// is wrong with it (a function, so no caller can change the table).
func filterParams() map[string]func(f *message.Filter, name, v string) (problem string) {
	return map[string]func(f *message.Filter, name, v string) (problem string){
		"direction": oneOf(func(f *message.Filter) *string { return &f.Direction },
			string(message.DirectionInbound), string(message.DirectionOutbound)),
		"status": func(f *message.Filter, _, v string) string {
			if !twilio.IsStatus(v) {
				return "status must be a Twilio status: lower-case letters and _"
			}
			f.Status = v
			return ""
		},
		"from":   address(func(f *message.Filter) *string { return &f.From }),
		"to":     address(func(f *message.Filter) *string { return &f.To }),
		"number": address(func(f *message.Filter) *string { return &f.Number }),
		"account_sid": func(f *message.Filter, _, v string) string {
			if !twilio.IsAccountSID(v) {
				return "account_sid must be AC and 32 lower-case hex digits"
			}
			f.AccountSID = v
			return ""
		},
		"source": oneOf(func(f *message.Filter) *string { return &f.Source }, message.SourceWebhook, message.SourceEventStream, message.SourceReconcile),
		"forward": func(f *message.Filter, _, v string) string {
			for s := range strings.SplitSeq(v, ",") {
				if !destination.IsForwardState(s) {
					return "forward must be one or more of " + strings.Join(destination.ForwardStates(), ", ") + ", separated by commas"
				}
				if !slices.Contains(f.Forward, s) {
					f.Forward = append(f.Forward, s)
				}
			}
			return ""
		},
		"destination": func(f *message.Filter, _, v string) string {
			if v != routing.DefaultName && routing.CheckName(v) != nil {
				return "destination must be a destination's name: lower-case letters, digits and -, up to 63"
			}
			f.Destination = v
			return ""
		},
		"since": instant(func(f *message.Filter) *time.Time { return &f.Since }),
		"until": instant(func(f *message.Filter) *time.Time { return &f.Until }),
		"limit": func(f *message.Filter, _, v string) string {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxLimit {
				return fmt.Sprintf("limit must be a whole number from 1 to %d", maxLimit)
			}
			f.Limit = int32(n)
			return ""
		},
		"cursor": func(f *message.Filter, _, v string) string {
			c, err := decodeCursor(v)
			if err != nil {
				return "cursor is not one this API gave: pass next_cursor back unchanged"
			}
			f.After = &c
			return ""
		},
	}
}

// oneOf sets a field that takes one of values.
func oneOf(field func(*message.Filter) *string, values ...string) func(f *message.Filter, name, v string) string {
	return func(f *message.Filter, name, v string) string {
		if !slices.Contains(values, v) {
			return name + " must be " + strings.Join(values, " or ")
		}
		*field(f) = v
		return ""
	}
}

// address sets an address field: PostgreSQL's text takes neither invalid
// UTF-8 nor NUL.
func address(field func(*message.Filter) *string) func(f *message.Filter, name, v string) string {
	return func(f *message.Filter, name, v string) string {
		if v == "" || len(v) > 256 || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return name + " must be an address (a phone number, whatsapp:+…), 1 to 256 characters of text without NUL"
		}
		*field(f) = v
		return ""
	}
}

// instant sets a time field.
func instant(field func(*message.Filter) *time.Time) func(f *message.Filter, name, v string) string {
	return func(f *message.Filter, name, v string) string {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || t.Year() < 1 || t.Year() > 9999 {
			return name + " must be an RFC 3339 time, e.g. 2026-11-25T10:00:00Z"
		}
		*field(f) = t
		return ""
	}
}

// parseQuery parses a query string into one value per name, refusing a
// repeated name or broken percent-encoding.
func parseQuery(raw string) (map[string]string, error) {
	q := make(map[string]string)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, badParam(clip.Clip(k), "malformed percent-encoding in the query")
		}
		if _, dup := q[name]; dup {
			return nil, badParam(clip.Clip(name), "parameter "+strconv.Quote(clip.Clip(name))+" is repeated")
		}
		q[name] = value
	}
	return q, nil
}

// A cursor is opaque to clients: base64url of "<received_at in Unix
// microseconds>.<id>", the position of a page's last message.
func encodeCursor(c message.Cursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", c.ReceivedAt.UnixMicro(), c.ID))
}

func decodeCursor(s string) (message.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return message.Cursor{}, err
	}
	micros, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return message.Cursor{}, errors.New("no separator")
	}
	us, err1 := strconv.ParseInt(micros, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return message.Cursor{}, err
	}
	at := time.UnixMicro(us).UTC()
	// Within what since and until can name, so PostgreSQL can take it.
	if at.Year() < 1 || at.Year() > 9999 {
		return message.Cursor{}, errors.New("time out of range")
	}
	return message.Cursor{ReceivedAt: at, ID: n}, nil
}
