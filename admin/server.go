// Package admin is the operator's HTTP edge, on a listener apart from the
// webhook's (which faces the internet): the console (server-rendered pages
// to find a message and its story, and to pause, throttle and retry
// forwarding), Prometheus metrics, a JSON API for the same, River's web
// UI, and pprof, all behind one token. It depends on the data layer
// (package store), the operator's controls (package process) and package
// metrics, never the reverse; cmd/inbox wires it.
package admin

import (
	"context"
	"log/slog"
	"net/http"

	"inbox/metrics"
	"inbox/process"
	"inbox/store"
)

// Config is everything NewServer needs.
type Config struct {
	Logger *slog.Logger
	// Token, when set, is required on every request: as a bearer token, as
	// the password of Basic auth, or by the console's login form. Empty
	// serves without auth; cmd/inbox allows that on a loopback address
	// only.
	Token string
	// Metrics is served at /metrics.
	Metrics *metrics.Metrics
	// Store is what the API reads and where replays insert their jobs.
	Store *store.Store
	// ForwardAttempts is the attempts of a replayed forward's job; 0 means
	// processing is off (FORWARD_URL unset), and a replay is refused.
	ForwardAttempts int16
	// RiverUI, when set, is mounted at /riverui/.
	RiverUI http.Handler
	// Forwarding, when set, serves the forwarding controls: pause, resume,
	// the delivery rate, bulk retry, and the queue's state.
	Forwarding *process.Operator
	// Readable, when set, says which accounts' tokens open with this
	// process's keys, by sid: the others are shown unreadable.
	Readable func(ctx context.Context) (map[string]bool, error)
	// Hosts are the names, beyond IP addresses and localhost, that this
	// listener may be reached by (ADMIN_HOSTS), lower case and without a
	// port: a request with any other Host is refused (DNS rebinding).
	Hosts []string
}

// NewServer returns the admin listener's whole handler: the routes in
// routes.go behind the token, with a log line per request. Before the
// token is checked, a request must name this listener in its Host (see
// withHost), and a state-changing one must be provably same-origin (see
// withSameOrigin), so a web page cannot use an operator's browser; and a
// POST must have a content type no cross-site form can send
// (withContentType).
func NewServer(cfg Config) http.Handler {
	ss := newSessions(cfg.Token)
	return withLog(cfg.Logger,
		withHost(cfg.Hosts, cfg.Logger,
			withSameOrigin(cfg.Hosts, cfg.Logger,
				withAuth(cfg.Token, ss, cfg.Logger,
					withContentType(cfg.Logger, addRoutes(cfg, ss))))))
}
