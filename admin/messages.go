package admin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"inbox/message"
	"inbox/store"
	"inbox/twilio"
)

// Page sizes of GET /api/messages.
const (
	defaultLimit = 50
	maxLimit     = 500
	// maxDetailRows bounds the status events and jobs shown with a message.
	maxDetailRows = 100
)

// listParams are the query parameters GET /api/messages takes.
var listParams = []string{"direction", "status", "from", "to", "number", "account_sid", "source", "forward", "since", "until", "limit", "cursor"}

// handleListMessages answers GET /api/messages: messages newest first, a
// page at a time, with filters. The answer's next_cursor, passed back as
// cursor, gives the next page; it is null on the last one.
func handleListMessages(st *store.Store, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			return err
		}
		f, err := parseFilter(q, listParams)
		if err != nil {
			return err
		}
		ms, err := st.ListMessages(r.Context(), f)
		if err != nil {
			return err
		}
		// A message as the API shows it is exactly as it is forwarded, so
		// the two describe a message the same way.
		out := struct {
			Messages   []message.PayloadMessage `json:"messages"`
			NextCursor *string                  `json:"next_cursor"`
		}{Messages: make([]message.PayloadMessage, len(ms))}
		for i, m := range ms {
			out.Messages[i] = m.Payload()
		}
		out.NextCursor = nextCursor(ms, f.Limit)
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// nextCursor is the cursor of the page after ms, nil when ms is the last.
func nextCursor(ms []message.Message, limit int32) *string {
	if len(ms) < int(limit) || len(ms) == 0 {
		return nil
	}
	last := ms[len(ms)-1]
	c := encodeCursor(store.Cursor{ReceivedAt: last.ReceivedAt, ID: last.ID})
	return &c
}

// parseFilter reads a message filter from q, whose names must be in known:
// an unknown one is refused rather than ignored, so a typo cannot turn a
// filtered read into an unfiltered one. The API, the console and a bulk
// retry all read their filters here.
func parseFilter(q map[string]string, known []string) (store.Filter, error) {
	f := store.Filter{Limit: defaultLimit}
	for name, v := range q {
		if !slices.Contains(known, name) {
			return f, badParam(name, fmt.Sprintf("unknown parameter %q; known: %s", truncate(name), strings.Join(known, ", ")))
		}
		switch name {
		case "direction":
			if v != string(message.DirectionInbound) && v != string(message.DirectionOutbound) {
				return f, badParam(name, "direction must be inbound or outbound")
			}
			f.Direction = v
		case "status":
			if !twilio.IsStatus(v) {
				return f, badParam(name, "status must be a Twilio status: lower-case letters and _")
			}
			f.Status = v
		case "from", "to", "number":
			// PostgreSQL's text takes neither invalid UTF-8 nor NUL.
			if v == "" || len(v) > 256 || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return f, badParam(name, name+" must be an address (a phone number, whatsapp:+…), 1 to 256 characters of text without NUL")
			}
			switch name {
			case "from":
				f.From = v
			case "to":
				f.To = v
			default:
				f.Number = v
			}
		case "account_sid":
			if !twilio.IsAccountSID(v) {
				return f, badParam(name, "account_sid must be AC and 32 lower-case hex digits")
			}
			f.AccountSID = v
		case "source":
			if v != message.SourceWebhook && v != message.SourceReconcile {
				return f, badParam(name, "source must be webhook or reconcile")
			}
			f.Source = v
		case "forward":
			for s := range strings.SplitSeq(v, ",") {
				if !store.IsForwardState(s) {
					return f, badParam(name, "forward must be one or more of "+strings.Join(store.ForwardStates(), ", ")+", separated by commas")
				}
				if !slices.Contains(f.Forward, s) {
					f.Forward = append(f.Forward, s)
				}
			}
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil || t.Year() < 1 || t.Year() > 9999 {
				return f, badParam(name, name+" must be an RFC 3339 time, e.g. 2026-11-25T10:00:00Z")
			}
			if name == "since" {
				f.Since = t
			} else {
				f.Until = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxLimit {
				return f, badParam(name, fmt.Sprintf("limit must be a whole number from 1 to %d", maxLimit))
			}
			f.Limit = int32(n)
		case "cursor":
			c, err := decodeCursor(v)
			if err != nil {
				return f, badParam(name, "cursor is not one this API gave: pass next_cursor back unchanged")
			}
			f.After = &c
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
			return nil, badParam(truncate(k), "malformed percent-encoding in the query")
		}
		if _, dup := q[name]; dup {
			return nil, badParam(truncate(name), "parameter "+strconv.Quote(truncate(name))+" is repeated")
		}
		q[name] = value
	}
	return q, nil
}

// A cursor is opaque to clients: base64url of "<received_at in Unix
// microseconds>.<id>", the position of a page's last message.
func encodeCursor(c store.Cursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", c.ReceivedAt.UnixMicro(), c.ID))
}

func decodeCursor(s string) (store.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.Cursor{}, err
	}
	micros, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return store.Cursor{}, errors.New("no separator")
	}
	us, err1 := strconv.ParseInt(micros, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return store.Cursor{}, err
	}
	at := time.UnixMicro(us).UTC()
	// Within what since and until can name, so PostgreSQL can take it.
	if at.Year() < 1 || at.Year() > 9999 {
		return store.Cursor{}, errors.New("time out of range")
	}
	return store.Cursor{ReceivedAt: at, ID: n}, nil
}

// handleGetMessage answers GET /api/messages/{sid}: the message, the status
// callbacks stored for it, and its processing jobs (state, attempts, last
// error).
func handleGetMessage(st *store.Store, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		sid, err := sidParam(r)
		if err != nil {
			return err
		}
		ctx := r.Context()
		m, err := st.GetMessageBySID(ctx, sid)
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{status: http.StatusNotFound, detail: "no message with sid " + sid}
		} else if err != nil {
			return err
		}
		evs, err := st.ListStatusEvents(ctx, sid, maxDetailRows)
		if err != nil {
			return err
		}
		jobs, err := st.MessageJobs(ctx, sid, maxDetailRows)
		if err != nil {
			return err
		}
		out := struct {
			Message      message.PayloadMessage  `json:"message"`
			StatusEvents []message.PayloadStatus `json:"status_events"`
			Jobs         []store.Job             `json:"jobs"`
		}{Message: m.Payload(), StatusEvents: make([]message.PayloadStatus, len(evs)), Jobs: jobs}
		for i, e := range evs {
			out.StatusEvents[i] = e.Payload()
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// handleForwardMessage answers POST /api/messages/{sid}/forward: a new job
// that forwards the inbound message again, with the same webhook-id (its
// sid), so a receiver that already took it can tell: 202 with the job. While
// an earlier replay of the sid is still waiting or running, 200 with that
// job instead, so replays asked for at once make one forward.
func handleForwardMessage(st *store.Store, attempts int16, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		sid, err := sidParam(r)
		if err != nil {
			return err
		}
		if attempts == 0 {
			return &apiError{status: http.StatusConflict, detail: "processing is off (FORWARD_URL is not set): there is nothing to forward to"}
		}
		ctx := r.Context()
		job, created, err := st.InsertMessageJob(ctx, sid, attempts)
		if errors.Is(err, store.ErrNotFound) {
			// No inbound message: say whether there is none or it is
			// outbound; only then is a second query worth it.
			m, err := st.GetMessageBySID(ctx, sid)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return &apiError{status: http.StatusNotFound, detail: "no message with sid " + sid}
			case err != nil:
				return err
			case m.Direction != message.DirectionInbound:
				return &apiError{status: http.StatusConflict, detail: "message " + sid + " is outbound: only inbound messages are forwarded"}
			}
			return &apiError{status: http.StatusNotFound, detail: "no inbound message with sid " + sid}
		} else if err != nil {
			return err
		}
		if !created {
			logger.InfoContext(ctx, "forward requested again; an earlier replay is still unfinished", "sid", sid, "job", job.ID, "state", job.State)
			writeJSON(w, http.StatusOK, job)
			return nil
		}
		logger.InfoContext(ctx, "forward requested again", "sid", sid, "job", job.ID)
		writeJSON(w, http.StatusAccepted, job)
		return nil
	})
}

func sidParam(r *http.Request) (string, error) {
	sid := mux.Vars(r)["sid"]
	if !twilio.IsMessageSID(sid) {
		return "", &apiError{status: http.StatusBadRequest, param: "sid", detail: "sid must be SM or MM and 32 lower-case hex digits"}
	}
	return sid, nil
}

// truncate shortens a client-supplied string for a detail or a log line.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
