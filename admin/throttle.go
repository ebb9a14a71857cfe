package admin

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Guessing: a client (an IP address) may present 10 wrong tokens at once,
// then one every 6 s; all clients together 100, then 100 a minute. A
// client over its share, or one that has failed lately while all are over
// theirs, is answered 429 before its token is compared, so no rate of
// guesses learns more than that. A client that has not failed lately is
// always compared: an operator at another address is never locked out,
// and a logged-in console session is never throttled. Behind a proxy,
// every client has the proxy's address.
const (
	clientBurst     = 10
	clientEvery     = 6 * time.Second
	totalBurst      = 100
	totalEvery      = 600 * time.Millisecond
	maxClients      = 10_000
	guessLogEvery   = 10 * time.Second
	guessRetryAfter = 6
)

// AuthMetrics counts the refusals of credentials: reason "wrong_token",
// "no_credentials" or "throttled".
type AuthMetrics interface{ AdminAuthRefused(reason string) }

// bucket is a token bucket: tokens left at at.
type bucket struct {
	tokens float64
	at     time.Time
}

// take refills b for now (every per token, up to burst) and takes one
// token if there is one.
func (b *bucket) take(now time.Time, burst float64, every time.Duration) bool {
	b.refill(now, burst, every)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) refill(now time.Time, burst float64, every time.Duration) {
	b.tokens = min(burst, b.tokens+float64(now.Sub(b.at))/float64(every))
	b.at = now
}

// guesses throttles and tallies wrong admin credentials, and logs them in
// aggregate: the first at once, then one line every 10 s at most with the
// count since.
type guesses struct {
	logger  *slog.Logger
	metrics AuthMetrics
	now     func() time.Time

	mu      sync.Mutex
	clients map[string]*bucket // by address; only those that failed
	total   bucket
	logged  time.Time // last line
	since   int       // refusals since it
	sinceBy map[string]bool
}

func newGuesses(logger *slog.Logger, m AuthMetrics) *guesses {
	now := time.Now()
	return &guesses{logger: logger, metrics: m, now: time.Now, clients: map[string]*bucket{},
		total: bucket{tokens: totalBurst, at: now}, sinceBy: map[string]bool{}}
}

// clientOf is the address r came from.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// overLimit reports whether r's client may not present a token now.
func (g *guesses) overLimit(r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	b, failed := g.clients[clientOf(r)]
	if !failed {
		return false
	}
	b.refill(now, clientBurst, clientEvery)
	g.total.refill(now, totalBurst, totalEvery)
	return b.tokens < 1 || g.total.tokens < 1
}

// throttled reports whether r's client may not present a token now; then
// it has answered 429.
func (g *guesses) throttled(w http.ResponseWriter, r *http.Request) bool {
	if !g.overLimit(r) {
		return false
	}
	g.refused(r, clientOf(r), "throttled")
	w.Header().Set("Retry-After", strconv.Itoa(guessRetryAfter))
	writeProblem(w, http.StatusTooManyRequests, "too many wrong admin tokens from this address: try again later", "")
	return true
}

// failed records a wrong token or none from r's client, for reason.
func (g *guesses) failed(r *http.Request, reason string) {
	client := clientOf(r)
	g.mu.Lock()
	now := g.now()
	b, ok := g.clients[client]
	if !ok {
		g.forgetRefilled(now)
		if len(g.clients) >= maxClients {
			client = "*" // the rest share one bucket
		}
		if b, ok = g.clients[client]; !ok {
			b = &bucket{tokens: clientBurst, at: now}
			g.clients[client] = b
		}
	}
	b.take(now, clientBurst, clientEvery)
	g.total.take(now, totalBurst, totalEvery)
	g.mu.Unlock()
	g.refused(r, client, reason)
}

// forgetRefilled drops the clients whose buckets are full again, when the
// map is full: a client forgotten has nothing held against it.
func (g *guesses) forgetRefilled(now time.Time) {
	if len(g.clients) < maxClients {
		return
	}
	for c, b := range g.clients {
		if b.refill(now, clientBurst, clientEvery); b.tokens >= clientBurst {
			delete(g.clients, c)
		}
	}
}

// refused counts a refusal and logs, at most every guessLogEvery, how
// many there were since the last line and from how many addresses.
func (g *guesses) refused(r *http.Request, client, reason string) {
	if g.metrics != nil {
		g.metrics.AdminAuthRefused(reason)
	}
	g.mu.Lock()
	now := g.now()
	g.since++
	if len(g.sinceBy) < maxClients {
		g.sinceBy[client] = true
	}
	if now.Sub(g.logged) < guessLogEvery {
		g.mu.Unlock()
		return
	}
	n, addrs := g.since, len(g.sinceBy)
	g.since, g.sinceBy, g.logged = 0, map[string]bool{}, now
	g.mu.Unlock()
	g.logger.WarnContext(r.Context(), "admin credentials refused", "refusals", n, "addresses", addrs, "last_reason", reason,
		"last_remote", client, "last_path", r.URL.Path, "per", guessLogEvery.String())
}
