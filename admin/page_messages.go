package admin

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"inbox/destination"
	"inbox/internal/clip"
	"inbox/story"
	"inbox/twilio"
)

// consoleParams are what the Messages page's URL takes: the API's filter,
// and q, the search field.
var consoleParams = []string{"q", "direction", "status", "from", "to", "number", "account_sid", "source", "forward", "destination", "since", "until", "cursor"}

// messagesView is what the Messages page shows.
type messagesView struct {
	// Q is the page's parameters, as the filter form shows them.
	Q        map[string]string
	Filtered bool
	Error    string
	Rows     []story.Row
	// Next is the URL of the next page, "" on the last.
	Next string
	// RetryURL is the Forwarding page with the same filter.
	RetryURL string
	// Presets are the page with since set for common spans.
	Presets []preset
}

// preset is a link to the page received since a common time.
type preset struct{ Label, URL string }

// presets are the Messages page with since set to an hour ago, the start
// of today (UTC) and a week ago, the rest of its filter kept.
func presets(q map[string]string, now time.Time) []preset {
	q = maps.Clone(q)
	delete(q, "cursor")
	delete(q, "q")
	at := func(t time.Time) string { return "/messages?" + encode(q, "since", t.UTC().Format(time.RFC3339)) }
	return []preset{{"Last hour", at(now.Add(-time.Hour))}, {"Today (UTC)", at(now.UTC().Truncate(24 * time.Hour))}, {"Last 7 days", at(now.Add(-7 * 24 * time.Hour))}}
}

// consoleQuery reads a console page's query: each parameter at most once,
// empty fields (a GET form sends every field) dropped, and the browser's
// datetime-local values (no zone) taken as UTC.
func consoleQuery(r *http.Request) (map[string]string, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	for k, v := range q {
		v = strings.TrimSpace(v)
		if v == "" {
			delete(q, k)
			continue
		}
		if k == "since" || k == "until" {
			for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
				if t, err := time.Parse(layout, v); err == nil {
					v = t.UTC().Format(time.RFC3339)
					break
				}
			}
		}
		q[k] = v
	}
	return q, nil
}

// messagesPage answers GET /messages: the search box, the filters, and a
// page of messages with their forwards' states.
func (c *console) messagesPage(w http.ResponseWriter, r *http.Request) error {
	q, err := consoleQuery(r)
	if err != nil {
		return err
	}
	v := messagesView{Q: q, Presets: presets(q, time.Now())}
	// The search field: a message sid opens its story, an account sid
	// filters by account, anything else is a phone number.
	if s, ok := q["q"]; ok {
		switch {
		case twilio.IsMessageSID(s):
			http.Redirect(w, r, "/messages/"+s, http.StatusSeeOther)
			return nil
		case twilio.IsAccountSID(s):
			q["account_sid"] = s
		case looksLikeNumber(s):
			q["number"] = s
		default:
			// Not a number filter that silently matches nothing.
			v.Error = fmt.Sprintf("The search box takes a message sid (SM…, MM…), an account sid (AC…) or a phone number as Twilio writes it "+
				"(+15551234567, whatsapp:+15551234567); %q is none of them. Message bodies are not searched.", clip.Clip(s))
			c.render(w, r, http.StatusBadRequest, "messages", "messages", "Messages", v)
			return nil
		}
	}
	filter := maps.Clone(q)
	delete(filter, "q")
	f, err := parseFilter(filter, consoleParams)
	if ae, ok := errors.AsType[*apiError](err); ok {
		v.Error = ae.detail
		c.render(w, r, http.StatusBadRequest, "messages", "messages", "Messages", v)
		return nil
	} else if err != nil {
		return err
	}
	if v.Rows, err = c.cfg.Stories.List(r.Context(), f); err != nil {
		return err
	}
	delete(filter, "cursor")
	v.Filtered = len(filter) > 0
	if len(v.Rows) == int(f.Limit) {
		last := v.Rows[len(v.Rows)-1]
		v.Next = "/messages?" + encode(q, "cursor", encodeCursor(cursorOf(last.Message)))
	}
	// The Forwarding page lists failed forwards only: a filter on another
	// state would match none there.
	if fw := filter["forward"]; fw != destination.ForwardFailed && fw != destination.ForwardCancelled {
		delete(filter, "forward")
	}
	v.RetryURL = "/forwarding?" + encode(filter, "", "")
	c.render(w, r, http.StatusOK, "messages", "messages", "Messages", v)
	return nil
}

// encode is q as a query string, with key set to value when key is not "".
func encode(q map[string]string, key, value string) string {
	vs := url.Values{}
	for k, v := range q {
		vs.Set(k, v)
	}
	if key != "" {
		vs.Set(key, value)
	}
	return vs.Encode()
}

// looksLikeNumber reports whether s could be an address Twilio writes: a
// phone number or short code, maybe with a channel prefix (whatsapp:,
// messenger:…), or an alphanumeric sender id of up to 11 characters.
func looksLikeNumber(s string) bool {
	if _, rest, ok := strings.Cut(s, ":"); ok {
		s = rest
	}
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' || r == ' ' || r == '-' || r == '(' || r == ')':
		default:
			return len(s) <= 11 && !strings.ContainsAny(s, " \t") && s != ""
		}
	}
	return digits >= 3
}
