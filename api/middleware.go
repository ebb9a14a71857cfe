package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"inbox/internal/statuswriter"
	"inbox/metrics"
)

// requestInfo travels in a request's context: the handler records the sid it
// parsed, and the request log reports it.
type requestInfo struct {
	logger   *slog.Logger // carries request_id
	failures *failureLog
	sid      string
	route    string // the matched route's template; "" when none matched
	kind     string // metrics.KindMessage or KindStatus on a delivery route
	result   string // metrics.ResultNew or ResultDuplicate once stored
	refusal  string // the httpError code of a 4xx
	// unverified is the reason an event batch was answered 503 so that
	// Twilio retries it.
	unverified string
}

type requestInfoKey struct{}

// requestLogger returns the logger of the request in ctx.
func requestLogger(ctx context.Context) *slog.Logger {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info.logger
	}
	return slog.Default()
}

// setSID records the message sid the request is about, for the request log.
func setSID(ctx context.Context, sid string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.sid = sid
	}
}

// setDelivery records that the request in ctx is a Twilio delivery of kind
// (metrics.KindMessage or KindStatus), for inbox_deliveries_total.
func setDelivery(ctx context.Context, kind string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.kind = kind
	}
}

// setResult records a delivery's outcome once the database has answered:
// metrics.ResultNew or ResultDuplicate.
func setResult(ctx context.Context, result string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.result = result
	}
}

// withRoute records the matched route's template, so metrics are labelled
// by /twilio/messages, never by a raw path of a scanner's choosing. The
// router runs it only for a request that matched a route.
func withRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			if route := mux.CurrentRoute(r); route != nil {
				info.route, _ = route.GetPathTemplate()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// databaseReached tells the failure log that the request in ctx reached the
// database, which ends an outage it was summarising.
func databaseReached(ctx context.Context) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.failures.succeeded(ctx, info.logger)
	}
}

// withRequestLog wraps the whole router, so 404s and 405s are logged too:
// one line per request with method, path, status, duration, request id and,
// when there is one, the message sid. It never logs headers or bodies, so
// neither a signature nor a message's text reaches the info log. A panic
// below it becomes a logged 500, not a dropped connection.
//
// It also records the request in m: by route template ("unmatched" for a
// 404 or 405) and status, and for a delivery its result.
func withRequestLog(logger *slog.Logger, failures *failureLog, m *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		info := &requestInfo{logger: logger.With("request_id", id), failures: failures}
		ctx := context.WithValue(r.Context(), requestInfoKey{}, info)
		sw := statuswriter.New(w)
		sw.Header().Set("X-Request-Id", id)

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				info.logger.ErrorContext(ctx, "panic serving request", "panic", p)
				if sw.Status() == 0 {
					sw.WriteHeader(http.StatusInternalServerError)
				}
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", cmp.Or(sw.Status(), http.StatusOK)),
				slog.Duration("duration", time.Since(start)),
			}
			if info.sid != "" {
				attrs = append(attrs, slog.String("sid", info.sid))
			}
			info.logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
			record(m, info, cmp.Or(sw.Status(), http.StatusOK), time.Since(start))
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// requestID returns the caller's X-Request-Id when it is short and plain,
// so a proxy's id carries through; otherwise a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && isPlain(id) {
		return id
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// record adds a request to the metrics. A delivery that did not reach a
// result was refused (4xx) or met an unavailable database (5xx).
func record(m *metrics.Metrics, info *requestInfo, status int, d time.Duration) {
	m.HTTPRequest(cmp.Or(info.route, "unmatched"), status, d)
	if info.kind == "" {
		return
	}
	result := info.result
	switch {
	case result != "" && status == http.StatusOK:
	case status >= 400 && status < 500:
		result = metrics.ResultRefused
	default:
		result = metrics.ResultUnavailable
	}
	m.Delivery(info.kind, result, info.refusal)
	if info.unverified != "" {
		m.EventsUnverified(info.unverified)
	}
}

// withDeadline gives a delivery one deadline, timeout from its start, for
// all its database work: the lookup of an account not in memory and the
// write share it, so a delivery is answered within REQUEST_TIMEOUT even
// when every pool connection is taken (each step with a timeout of its
// own answered after twice it). Reading the body counts against it too.
func withDeadline(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
