// Package admin is the operator's HTTP edge, on a listener apart from the
// webhook's (which faces the internet): the console (server-rendered pages
// to find a message and its story, and to pause, throttle and retry
// forwarding), Prometheus metrics, a JSON API for the same, River's web
// UI, and pprof, all behind one token. Each operation is written once, in
// the application services it takes as small interfaces (Stories,
// Controls, Accounts); the console and the API only read their input and
// show the result, and errors become statuses in one function (statusOf).
// cmd/inbox wires it.
package admin

import (
	"context"
	"log/slog"
	"net/http"

	"inbox/account"
	"inbox/control"
	"inbox/job"
	"inbox/message"
	"inbox/store"
	"inbox/story"
)

// Stories finds messages and tells their stories (story.Teller).
type Stories interface {
	Tell(ctx context.Context, sid string) (story.Story, error)
	List(ctx context.Context, f message.Filter) ([]story.Row, error)
	Find(ctx context.Context, f message.Filter) ([]message.Message, error)
}

// Controls are the operator's controls of forwarding (control.Service).
type Controls interface {
	Processing() bool
	State(ctx context.Context) (control.State, error)
	Pause(ctx context.Context, reason, detail string) (bool, error)
	Resume(ctx context.Context) (bool, error)
	SetRate(ctx context.Context, perSecond *float64) error
	Replay(ctx context.Context, sid, dest string) (job.Info, bool, error)
	RetryFailed(ctx context.Context, f message.Filter) (store.RetryRun, bool, error)
	RetryRun(ctx context.Context, id int64) (store.RetryRun, error)
	RetryRuns(ctx context.Context, n int32) ([]store.RetryRun, error)
}

// Accounts lists the Twilio accounts and their state.
type Accounts interface {
	Overview(ctx context.Context) ([]account.State, error)
}

// Config is everything NewServer needs.
type Config struct {
	Logger *slog.Logger
	// Token, when set, is required on every request: as a bearer token, as
	// the password of Basic auth, or by the console's login form. Empty
	// serves without auth; cmd/inbox allows that on a loopback address
	// only.
	Token string
	// Metrics is served at /metrics.
	Metrics http.Handler
	// Stories, Controls, Accounts and Destinations are what the pages and the API show
	// and do.
	Stories      Stories
	Controls     Controls
	Accounts     Accounts
	Destinations Destinations
	// Revocations, when set, records logouts so that every replica ends
	// the sessions issued before one; nil: a logout clears only the
	// browser's cookie.
	Revocations Revocations
	// Media reads the media kept, for the message story's.
	Media Media
	// Counts are what the overview charts.
	Counts Counts
	// AuthMetrics, when set, counts refused credentials.
	AuthMetrics AuthMetrics
	// RiverUI, when set, is mounted at /riverui/.
	RiverUI http.Handler
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
	ss := newSessions(cfg.Token, cfg.Revocations)
	g := newGuesses(cfg.Logger, cfg.AuthMetrics)
	return withLog(cfg.Logger,
		withHost(cfg.Hosts, cfg.Logger,
			withSameOrigin(cfg.Hosts, cfg.Logger,
				withAuth(cfg.Token, ss, g,
					withContentType(cfg.Logger, addRoutes(cfg, ss, g))))))
}
