package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"inbox/store"
)

// httpError is a refusal with the status it earns, a reason that says
// why, for the log and the response body, and for a 4xx a short fixed code
// naming the rule broken (the reason label of inbox_refusals_total).
type httpError struct {
	status int
	code   string
	reason string
	err    error  // the underlying cause, if any; logged, never sent
	hint   string // what an operator should check; logged, never sent
	// retried marks a 503 that is not the database's: a delivery that
	// does not verify for a reason an operator can fix, answered so that
	// Twilio retries it (unverified). code is its reason.
	retried bool
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

func (e *httpError) Unwrap() error { return e.err }

func refuse(status int, code, format string, args ...any) error {
	return &httpError{status: status, code: code, reason: fmt.Sprintf(format, args...)}
}

// unavailable marks a failure of the database. The outcome is unknown: a
// commit may have reached the server before the connection failed, so the
// write may have happened. A retry is safe either way: it stores the
// message or finds it stored.
func unavailable(err error) error {
	return &httpError{status: http.StatusServiceUnavailable, reason: "database unavailable; outcome unknown, a retry is safe", err: err}
}

// storeError is the answer to a write the store could not make: 400 when
// the database refused the data itself, else 503, saying so when the
// schema is behind this binary.
func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrInvalid):
		return &httpError{status: http.StatusBadRequest, code: RefusalDatabaseRefused, reason: "the database refused this message", err: err}
	case errors.Is(err, store.ErrSchemaBehind):
		return &httpError{status: http.StatusServiceUnavailable, reason: "database unavailable: its schema is behind this binary; run inbox migrate up", err: err}
	}
	return unavailable(err)
}

// handle adapts a handler that returns an error, so that errors become
// responses in one place: respondError.
func handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			respondError(w, r, err)
		}
	})
}

// respondError is the one place an error becomes an HTTP status. Refusals
// of bad input are logged at warn with their reason, and their connection
// is closed after the answer, so a client that cannot sign cannot hold idle
// connections open. A database failure is logged at error through the
// failure log, which summarises an outage instead of logging each request;
// anything unexpected is logged at error.
func respondError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	logger := requestLogger(ctx)
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, reason: "internal error", err: err}
	}
	switch info, _ := ctx.Value(requestInfoKey{}).(*requestInfo); {
	case he.retried:
		logger.ErrorContext(ctx, "delivery not verified; answered 503 so that Twilio retries it while this is fixed",
			"status", he.status, "reason", he.reason, "code", he.code, "hint", he.hint)
		if info != nil {
			info.unverified = he.code
		}
	case he.status == http.StatusServiceUnavailable && info != nil:
		info.failures.failed(ctx, logger, he.status, he.reason, he.err)
	case he.status >= 500:
		logger.ErrorContext(ctx, "request failed", "status", he.status, "reason", he.reason, "err", he.err)
	default:
		attrs := []any{"status", he.status, "reason", he.reason}
		if he.hint != "" {
			attrs = append(attrs, "hint", he.hint)
		}
		logger.WarnContext(ctx, "request refused", attrs...)
		w.Header().Set("Connection", "close")
		if info != nil {
			info.refusal = he.code
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(he.status)
	fmt.Fprintln(w, he.reason)
}

// handleNotFound answers any path the router does not know.
func handleNotFound() http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		return refuse(http.StatusNotFound, RefusalNoRoute, "no route for %s", r.URL.Path)
	})
}

// handleMethodNotAllowed answers a known path with the wrong method, naming
// the methods it takes in Allow, as RFC 9110 asks.
func handleMethodNotAllowed(router *mux.Router) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		var allowed []string
		router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			var m mux.RouteMatch
			if route.Match(r, &m) || errors.Is(m.MatchErr, mux.ErrMethodMismatch) {
				methods, _ := route.GetMethods()
				allowed = append(allowed, methods...)
			}
			return nil
		})
		slices.Sort(allowed)
		allowed = slices.Compact(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return refuse(http.StatusMethodNotAllowed, RefusalMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
	})
}
