package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"inbox/control"
	"inbox/internal/statuswriter"
	"inbox/routing"
	"inbox/store"
	"inbox/story"
)

// problem is an RFC 9457 problem detail. Param names the query parameter a
// 400 is about.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Param  string `json:"param,omitempty"`
}

// apiError is an error with the status it earns; any other error is a 500.
type apiError struct {
	status int
	detail string
	param  string
	err    error // logged, never sent
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.detail + ": " + e.err.Error()
	}
	return e.detail
}

func (e *apiError) Unwrap() error { return e.err }

// badParam is a 400 about one query parameter.
func badParam(param, detail string) error {
	return &apiError{status: http.StatusBadRequest, detail: detail, param: param}
}

// statusOf is the one place an error of the services below becomes a
// status and what to say, for the API and the console alike, and logs it:
// a refusal at warn, anything else at error. A database that cannot
// answer is 503, as the webhook's is; what no rule names is a 500 whose
// cause only the log has.
func statusOf(r *http.Request, logger *slog.Logger, err error) *apiError {
	ae, ok := errors.AsType[*apiError](err)
	switch {
	case ok:
	case errors.Is(err, story.ErrNotFound), errors.Is(err, control.ErrNotFound):
		ae = &apiError{status: http.StatusNotFound, detail: sentence(err)}
	case errors.Is(err, control.ErrProcessingOff):
		ae = &apiError{status: http.StatusConflict, detail: control.ErrProcessingOff.Error()}
	case errors.Is(err, control.ErrOutbound):
		ae = &apiError{status: http.StatusConflict, detail: sentence(err) + ": only inbound messages are forwarded"}
	case errors.Is(err, control.ErrBadControl):
		ae = &apiError{status: http.StatusBadRequest, detail: err.Error()}
	case errors.Is(err, store.ErrNoDestination):
		ae = &apiError{status: http.StatusNotFound, detail: err.Error()}
	case errors.Is(err, routing.ErrInvalid):
		ae = &apiError{status: http.StatusBadRequest, detail: err.Error()}
	case errors.Is(err, routing.ErrCheckFailed):
		ae = &apiError{status: http.StatusUnprocessableEntity, detail: err.Error()}
	case errors.Is(err, routing.ErrExists), errors.Is(err, store.ErrTooMany), errors.Is(err, routing.ErrPlaintextRefused),
		errors.Is(err, routing.ErrPending), errors.Is(err, routing.ErrBackfillOff):
		ae = &apiError{status: http.StatusConflict, detail: err.Error()}
	case store.Unavailable(err): // River's statements too, which the store never saw
		ae = &apiError{status: http.StatusServiceUnavailable, detail: "database unavailable: try again", err: err}
	default:
		ae = &apiError{status: http.StatusInternalServerError, detail: "internal error: the log has the cause", err: err}
	}
	if ae.status >= 500 {
		logger.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "status", ae.status, "err", err)
	} else {
		logger.WarnContext(r.Context(), "admin request refused", "path", r.URL.Path, "status", ae.status, "reason", ae.detail)
	}
	return ae
}

// sentence is what an error of a service says after its sentinel's
// words: "no message with sid SM…" of "not found: no message with sid SM…".
func sentence(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, ": "); ok {
		return rest
	}
	return msg
}

// handle adapts an API handler that returns an error: the error becomes a
// problem response (statusOf).
func handle(logger *slog.Logger, fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			ae := statusOf(r, logger, err)
			writeProblem(w, ae.status, ae.detail, ae.param)
		}
	})
}

func handleProblem(status int, detail string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, status, detail, "")
	})
}

func writeProblem(w http.ResponseWriter, status int, detail, param string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Param: param})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeStarted answers a request that starts background work at most once
// (a replay, a bulk retry, a backfill): 202 with v when it started it, 200
// with the one already under way, which it named in v.
func writeStarted(w http.ResponseWriter, created bool, v any) {
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, v)
}

// withLog logs one line per admin request: method, path, status, duration.
// Never headers: they carry the token.
func withLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statuswriter.New(w)
		next.ServeHTTP(sw, r)
		status := cmp.Or(sw.Status(), http.StatusOK)
		logger.DebugContext(r.Context(), "admin request", "method", r.Method, "path", r.URL.Path, "status", status,
			"duration", time.Since(start))
	})
}
