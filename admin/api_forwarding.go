package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"inbox/internal/clip"
	"inbox/store"
)

// maxControlBody bounds the JSON a control request may send.
const maxControlBody = 16 << 10

// retryParams are the filter a bulk retry takes: the list's, but a page's
// size and position.
var retryParams = []string{"direction", "status", "from", "to", "number", "account_sid", "source", "forward", "destination", "since", "until"}

// retryRunJSON is a bulk retry as the API shows it.
type retryRunJSON struct {
	ID int64 `json:"id"`
	// Filter is the message filter the run covers, as recorded.
	Filter      json.RawMessage `json:"filter"`
	RequestedAt time.Time       `json:"requested_at"`
	Matched     int32           `json:"matched"`
	Retried     int32           `json:"retried"`
	FinishedAt  *time.Time      `json:"finished_at"`
	Error       string          `json:"error,omitempty"`
}

func toRunJSON(r store.RetryRun) retryRunJSON { return retryRunJSON(r) }

// forwardingJSON is GET /api/forwarding's answer.
type forwardingJSON struct {
	Processing    bool             `json:"processing"`
	Paused        bool             `json:"paused"`
	PausedReason  string           `json:"paused_reason,omitempty"`
	PausedDetail  string           `json:"paused_detail,omitempty"`
	PausedAt      *time.Time       `json:"paused_at,omitempty"`
	RatePerSecond *float64         `json:"rate_per_second"`
	Unfinished    map[string]int64 `json:"unfinished"`
	LagSeconds    float64          `json:"lag_seconds"`
	LastHour      map[string]int64 `json:"last_hour"`
	LastHourCap   int              `json:"last_hour_cap"`
	Retries       []retryRunJSON   `json:"retries"`
}

// forwardingState is the state of forwarding and the latest bulk retries.
func forwardingState(r *http.Request, controls Controls) (forwardingJSON, error) {
	st, err := controls.State(r.Context())
	if err != nil {
		return forwardingJSON{}, err
	}
	runs, err := controls.RetryRuns(r.Context(), 5)
	if err != nil {
		return forwardingJSON{}, err
	}
	out := forwardingJSON{Processing: st.Processing, Paused: st.Paused, PausedReason: st.PausedReason, PausedDetail: st.PausedDetail,
		PausedAt: st.PausedAt, RatePerSecond: st.Rate, Unfinished: st.Unfinished, LagSeconds: st.Lag.Seconds(),
		LastHour: st.LastHour, LastHourCap: st.LastHourCap, Retries: make([]retryRunJSON, len(runs))}
	for i, run := range runs {
		out.Retries[i] = toRunJSON(run)
	}
	return out, nil
}

// handleForwarding answers GET /api/forwarding: whether forwarding runs or
// is paused (and why), its rate, the queue's counts and lag, the last
// hour's outcomes, and the latest bulk retries.
func handleForwarding(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		out, err := forwardingState(r, controls)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// readJSON decodes a control request's body into v; an empty body is {}.
func readJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxControlBody))
	if err != nil {
		return &apiError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("the body must be at most %d bytes of JSON", maxControlBody)}
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &apiError{status: http.StatusBadRequest, detail: "the body is not the JSON this route takes: " + clip.Clip(err.Error())}
	}
	return nil
}

// handlePause answers POST /api/forwarding/pause, {"detail": "why"}
// optional: every worker stops taking forwards; messages are still stored
// and their forwards wait. 200 with the state; changed is false when it
// was already paused.
func handlePause(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Detail string `json:"detail"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		changed, err := controls.Pause(r.Context(), store.PausedByOperator, body.Detail)
		return controlAnswer(w, r, controls, changed, err)
	})
}

// handleResume answers POST /api/forwarding/resume: the forwards that
// waited are sent.
func handleResume(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		changed, err := controls.Resume(r.Context())
		return controlAnswer(w, r, controls, changed, err)
	})
}

// handleRate answers PUT /api/forwarding/rate, {"per_second": 50} or
// {"per_second": null} for unlimited.
func handleRate(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			PerSecond *float64 `json:"per_second"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		return controlAnswer(w, r, controls, true, controls.SetRate(r.Context(), body.PerSecond))
	})
}

// controlAnswer answers a control with the state it left.
func controlAnswer(w http.ResponseWriter, r *http.Request, controls Controls, changed bool, err error) error {
	if err != nil {
		return err
	}
	out, err := forwardingState(r, controls)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Changed bool `json:"changed"`
		forwardingJSON
	}{changed, out})
	return nil
}

// handleRetryFailed answers POST /api/forwarding/retry-failed, with the
// filter of GET /api/messages as a JSON object of strings (no limit or
// cursor; {} for every failed forward): 202 with the new bulk retry, or
// 200 with the one already under way, which this request does not add to.
func handleRetryFailed(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		q := map[string]string{}
		if err := readJSON(r, &q); err != nil {
			return err
		}
		f, err := parseFilter(q, retryParams)
		if err != nil {
			return err
		}
		run, created, err := controls.RetryFailed(r.Context(), f)
		if err != nil {
			return err
		}
		writeStarted(w, created, struct {
			Created bool `json:"created"`
			retryRunJSON
		}{created, toRunJSON(run)})
		return nil
	})
}

// handleRetryRun answers GET /api/forwarding/retries/{id}: a bulk retry's
// progress.
func handleRetryRun(controls Controls, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		run, err := retryRun(r, controls)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toRunJSON(run))
		return nil
	})
}

func retryRun(r *http.Request, controls Controls) (store.RetryRun, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id < 1 {
		return store.RetryRun{}, &apiError{status: http.StatusBadRequest, param: "id", detail: "a bulk retry's id is a positive whole number"}
	}
	return controls.RetryRun(r.Context(), id)
}
