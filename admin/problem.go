package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"inbox/internal/statuswriter"
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

// handle adapts a handler that returns an error: the one place an error
// becomes a problem response.
func handle(logger *slog.Logger, fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, detail: "internal error", err: err}
		}
		if ae.status >= 500 {
			logger.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "status", ae.status, "err", err)
		} else {
			logger.WarnContext(r.Context(), "admin request refused", "path", r.URL.Path, "status", ae.status, "reason", ae.detail)
		}
		writeProblem(w, ae.status, ae.detail, ae.param)
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
