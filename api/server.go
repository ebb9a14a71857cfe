// Package api is the service's Twilio edge: the messaging webhook, the
// status callback and the health endpoints. It depends on the data layer
// (package store) and on package twilio, never the reverse; cmd/inbox
// builds a Config from the environment and runs the handler NewServer
// returns. routes.go lists every route; errors.go is where an error becomes
// a status.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"inbox/metrics"
	"inbox/store"
	"inbox/twilio"
)

// Defaults for the Config fields left zero.
const (
	// DefaultRequestTimeout bounds the database work of one webhook, well
	// under the 15 s after which Twilio gives up (error 11205), so that a
	// slow or absent database gets a 503 rather than a hung request.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxBodyBytes is four times Twilio's largest real request: a
	// 1600-character body of four-byte characters, percent-encoded, is about
	// 19 KiB; ten media URLs and the WhatsApp fields add a few more.
	DefaultMaxBodyBytes = 64 << 10
	// MaxParams bounds the number of form parameters: Twilio sends a few
	// dozen; a request with more is refused before it is parsed.
	MaxParams = 1000
)

// Duplicates counts the duplicate deliveries dropped, per message and
// source (message.Source…).
type Duplicates interface {
	Duplicate(sid, source string)
}

// Config is everything NewServer needs.
type Config struct {
	// Logger receives one line per request and the reason for every refusal.
	Logger *slog.Logger
	// Store is where messages go; with store.Options.JobAttempts, it also
	// enqueues the processing of each new message in the same transaction.
	Store *store.Store
	// Validator checks X-Twilio-Signature when Accounts is nil.
	Validator *twilio.Validator
	// Accounts, when set, chooses the signature check by the delivery's
	// AccountSid instead (package account's Registry); its errors
	// ErrUnknown, ErrDisabled and ErrUnreadable are answered 403.
	Accounts Accounts
	// PublicBaseURL is the scheme, host, port and any path prefix Twilio
	// calls (https://hooks.example.com), without a trailing slash. The
	// signed URL is PublicBaseURL followed by the request's path and query,
	// because behind a proxy the URL this server sees is not the one Twilio
	// signed.
	PublicBaseURL string
	// RequestTimeout bounds the database work of one request; zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a request body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxEventsBodyBytes bounds an Event Streams batch; zero means
	// DefaultMaxEventsBodyBytes.
	MaxEventsBodyBytes int64
	// EventsBasicAuth, "user:password", when set, is what the Event
	// Streams sink's requests must carry as HTTP Basic credentials
	// (EVENTS_BASIC_AUTH), beside Twilio's signature.
	EventsBasicAuth string
	// Media, when set, serves media's download links under PathMedia
	// (media.Server): to apps, which hold no Twilio credentials.
	Media http.Handler
	// Metrics, when set, records every request and delivery.
	Metrics *metrics.Metrics
	// Duplicates, when set, counts each duplicate delivery dropped for its
	// message (tally.Tally): the story shows them.
	Duplicates Duplicates
	// SchemaVersion, when set, is the migration the database must be at
	// for /readyz to answer 200 (schema.Version).
	SchemaVersion int64

	failures *failureLog // set by NewServer
}

// Accounts returns the signature check for deliveries naming accountSID.
type Accounts interface {
	Validator(ctx context.Context, accountSID string) (*twilio.Validator, error)
}

// NewServer returns the service's whole HTTP handler: the routes in
// routes.go, wrapped in request logging.
func NewServer(cfg Config) http.Handler {
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.MaxEventsBodyBytes = cmp.Or(cfg.MaxEventsBodyBytes, DefaultMaxEventsBodyBytes)
	cfg.failures = newFailureLog()
	return withRequestLog(cfg.Logger, cfg.failures, cfg.Metrics, addRoutes(cfg))
}

// ParsePublicBaseURL validates PUBLIC_BASE_URL and returns it without a
// trailing slash, ready for a request path to be appended: http or https,
// a host, no user, query or fragment, and not ending in a path the service
// serves (then every delivery would be checked against a URL Twilio did
// not sign).
func ParsePublicBaseURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("PUBLIC_BASE_URL is not set: it is the scheme, host and port Twilio calls (e.g. https://hooks.example.com), which signatures cover")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: the scheme must be http or https", s)
	case u.Host == "":
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: give only scheme, host, port and an optional path prefix", s)
	}
	base := strings.TrimSuffix(s, "/")
	for _, route := range Paths() {
		if strings.HasSuffix(base, route) {
			return "", fmt.Errorf("invalid PUBLIC_BASE_URL %q: it ends in %s, which the service appends itself; "+
				"give what comes before it (e.g. %s), or every delivery is signed for a URL the service does not check", s, route, strings.TrimSuffix(base, route))
		}
	}
	return base, nil
}
