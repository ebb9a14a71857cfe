package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"inbox/process"
	"inbox/store"
)

// maxControlBody bounds the JSON a control request may send.
const maxControlBody = 16 << 10

// retryParams are the filter a bulk retry takes: the list's, but a page's
// size and position.
var retryParams = []string{"direction", "status", "from", "to", "number", "account_sid", "source", "forward", "since", "until"}

// forwardingJSON is GET /api/forwarding's answer.
type forwardingJSON struct {
	process.State
	Retries []store.RetryRun `json:"retries"`
}

// handleForwarding answers GET /api/forwarding: whether forwarding runs or
// is paused (and why), its rate, the queue's counts and lag, the last
// hour's outcomes, and the latest bulk retries.
func handleForwarding(op *process.Operator, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		out, err := forwardingState(r, op)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func forwardingState(r *http.Request, op *process.Operator) (forwardingJSON, error) {
	st, err := op.State(r.Context())
	if err != nil {
		return forwardingJSON{}, err
	}
	runs, err := op.RetryRuns(r.Context(), 5)
	if err != nil {
		return forwardingJSON{}, err
	}
	return forwardingJSON{State: st, Retries: runs}, nil
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
		return &apiError{status: http.StatusBadRequest, detail: "the body is not the JSON this route takes: " + truncate(err.Error())}
	}
	return nil
}

// handlePause answers POST /api/forwarding/pause, {"detail": "why"}
// optional: every worker stops taking forwards; messages are still stored
// and their forwards wait. 200 with the state; changed is false when it
// was already paused.
func handlePause(op *process.Operator, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Detail string `json:"detail"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		if len(body.Detail) > 200 {
			return &apiError{status: http.StatusBadRequest, param: "detail", detail: "detail must be at most 200 bytes"}
		}
		changed, err := op.Pause(r.Context(), body.Detail)
		return controlAnswer(w, r, op, changed, err)
	})
}

// handleResume answers POST /api/forwarding/resume: the forwards that
// waited are sent.
func handleResume(op *process.Operator, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		changed, err := op.Resume(r.Context())
		return controlAnswer(w, r, op, changed, err)
	})
}

// handleRate answers PUT /api/forwarding/rate, {"per_second": 50} or
// {"per_second": null} for unlimited.
func handleRate(op *process.Operator, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			PerSecond *float64 `json:"per_second"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		return controlAnswer(w, r, op, true, op.SetRate(r.Context(), body.PerSecond))
	})
}

// controlAnswer answers a control with the state it left.
func controlAnswer(w http.ResponseWriter, r *http.Request, op *process.Operator, changed bool, err error) error {
	if err != nil {
		return controlError(err)
	}
	out, err := forwardingState(r, op)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Changed bool `json:"changed"`
		forwardingJSON
	}{changed, out})
	return nil
}

// controlError gives the operator's errors their status.
func controlError(err error) error {
	switch {
	case errors.Is(err, process.ErrProcessingOff):
		return &apiError{status: http.StatusConflict, detail: err.Error()}
	case errors.Is(err, process.ErrBadControl):
		return &apiError{status: http.StatusBadRequest, detail: err.Error()}
	}
	return err
}

// handleRetryFailed answers POST /api/forwarding/retry-failed, with the
// filter of GET /api/messages as a JSON object of strings (no limit or
// cursor; {} for every failed forward): 202 with the new bulk retry, or
// 200 with the one already under way, which this request does not add to.
func handleRetryFailed(op *process.Operator, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		q := map[string]string{}
		if err := readJSON(r, &q); err != nil {
			return err
		}
		f, err := parseFilter(q, retryParams)
		if err != nil {
			return err
		}
		run, created, err := op.RetryFailed(r.Context(), f)
		if err != nil {
			return controlError(err)
		}
		status := http.StatusAccepted
		if !created {
			status = http.StatusOK
		}
		writeJSON(w, status, struct {
			Created bool `json:"created"`
			store.RetryRun
		}{created, run})
		return nil
	})
}

// handleRetryRun answers GET /api/forwarding/retries/{id}: a bulk retry's
// progress.
func handleRetryRun(op *process.Operator, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		run, err := retryRun(r, op)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, run)
		return nil
	})
}

func retryRun(r *http.Request, op *process.Operator) (store.RetryRun, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id < 1 {
		return store.RetryRun{}, &apiError{status: http.StatusBadRequest, param: "id", detail: "a bulk retry's id is a positive whole number"}
	}
	run, err := op.RetryRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return run, &apiError{status: http.StatusNotFound, detail: "no bulk retry " + strconv.FormatInt(id, 10)}
	}
	return run, err
}
