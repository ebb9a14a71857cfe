package admin

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"inbox/job"
	"inbox/message"
	"inbox/store"
	"inbox/twilio"
)

// listParams are the query parameters GET /api/messages takes.
var listParams = []string{"direction", "status", "from", "to", "number", "account_sid", "source", "forward", "destination", "since", "until", "limit", "cursor"}

// handleListMessages answers GET /api/messages: messages newest first, a
// page at a time, with filters. The answer's next_cursor, passed back as
// cursor, gives the next page; it is null on the last one.
func handleListMessages(stories Stories, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			return err
		}
		f, err := parseFilter(q, listParams)
		if err != nil {
			return err
		}
		ms, err := stories.Find(r.Context(), f)
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

// jobJSON is a job as the API shows it.
type jobJSON struct {
	ID          int64         `json:"id"`
	Kind        string        `json:"kind"`
	State       string        `json:"state"`
	Attempt     int16         `json:"attempt"`
	MaxAttempts int16         `json:"max_attempts"`
	CreatedAt   time.Time     `json:"created_at"`
	ScheduledAt time.Time     `json:"scheduled_at"`
	AttemptedAt *time.Time    `json:"attempted_at"`
	FinalizedAt *time.Time    `json:"finalized_at"`
	LastError   string        `json:"last_error,omitempty"`
	Failures    []failureJSON `json:"failures"`
	BatchSize   int32         `json:"batch_size,omitempty"`
	HandedOffBy int64         `json:"handed_off_by,omitempty"`
}

type failureJSON struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

func toJobJSON(j job.Info) jobJSON {
	out := jobJSON{ID: j.ID, Kind: j.Kind, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, CreatedAt: j.CreatedAt,
		ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt, LastError: j.LastError,
		Failures: make([]failureJSON, len(j.Failures)), BatchSize: j.BatchSize, HandedOffBy: j.HandedOffBy}
	for i, f := range j.Failures {
		out.Failures[i] = failureJSON(f)
	}
	return out
}

// deliveryJSON is a message's delivery to one destination.
type deliveryJSON struct {
	Destination string    `json:"destination"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// handleGetMessage answers GET /api/messages/{sid}: the message, its
// deliveries (one per destination), the status callbacks stored for it,
// and its processing jobs (state, attempts, last error).
func handleGetMessage(stories Stories, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		sid, err := sidParam(r)
		if err != nil {
			return err
		}
		s, err := stories.Tell(r.Context(), sid)
		if err != nil {
			return err
		}
		out := struct {
			Message      message.PayloadMessage  `json:"message"`
			Forward      string                  `json:"forward"`
			Deliveries   []deliveryJSON          `json:"deliveries"`
			StatusEvents []message.PayloadStatus `json:"status_events"`
			Jobs         []jobJSON               `json:"jobs"`
			Media        []store.Medium          `json:"media_kept"`
			Duplicates   map[string]int64        `json:"duplicates_dropped"`
		}{Media: s.Media, Duplicates: map[string]int64{}, Message: s.Message.Payload(), Forward: s.Forward, Deliveries: make([]deliveryJSON, len(s.Deliveries)),
			StatusEvents: make([]message.PayloadStatus, len(s.Events)), Jobs: make([]jobJSON, len(s.Jobs))}
		for _, d := range s.Duplicates {
			out.Duplicates[d.Source] = d.N
		}
		for i, d := range s.Deliveries {
			out.Deliveries[i] = deliveryJSON{Destination: d.Destination, State: d.State, Attempts: d.Attempts, Error: d.Error, UpdatedAt: d.UpdatedAt}
		}
		for i, e := range s.Events {
			out.StatusEvents[i] = e.Payload()
		}
		for i, j := range s.Jobs {
			out.Jobs[i] = toJobJSON(j)
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// handleForwardMessage answers POST /api/messages/{sid}/forward: a new job
// that forwards the inbound message again, to the destination named by
// ?destination= (FORWARD_URL's, "default", when absent), with the same
// webhook-id (its sid), so a receiver that already took it can tell: 202
// with the job. While an earlier replay of the sid to it is still waiting
// or running, 200 with that job instead, so replays asked for at once make
// one forward.
func handleForwardMessage(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		sid, err := sidParam(r)
		if err != nil {
			return err
		}
		j, created, err := controls.Replay(r.Context(), sid, r.URL.Query().Get("destination"))
		if err != nil {
			return err
		}
		writeStarted(w, created, toJobJSON(j))
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
