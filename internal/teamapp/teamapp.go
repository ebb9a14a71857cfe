// Package teamapp is the team's app that the service forwards to, for
// tests: a real HTTP server that verifies every request with an
// independent Standard Webhooks implementation (the standard-webhooks Go
// library, not package webhook), answers as the test says, and counts
// what it accepted by webhook-id.
package teamapp

import (
	"cmp"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"inbox/message"
)

// Secret is the signing secret the app verifies with: give it to the
// service as FORWARD_SECRET.
const Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// Options say how the app answers; the zero value accepts everything at
// once with 200.
type Options struct {
	// Answer, when set, says the status of the n-th request (from 1), and
	// may set headers on h (a Retry-After).
	Answer func(n int64, h http.Header) int
	// AnswerFor, when set, says the status of a request by its webhook-id
	// instead.
	AnswerFor func(id string, h http.Header) int
	// Delay is the app's own work on each request.
	Delay time.Duration
	// Hold makes every request wait in the app until Release lets it go;
	// Held then says which webhook-id waits.
	Hold bool
	// Secret is what it verifies with; "": Secret.
	Secret string
}

// App is a running team app.
type App struct {
	// URL is where it listens: the service's FORWARD_URL.
	URL     string
	handler http.Handler
	opts    Options
	hold    chan struct{}
	held    chan string
	calls   atomic.Int64

	mu       sync.Mutex
	ids      map[string]int               // accepted (2xx), by webhook-id
	payloads map[string][]message.Payload // likewise
	raw      map[string][]byte            // the last body accepted, by webhook-id
	arrivals []time.Time                  // every request's, accepted or not
}

// New starts an app, closed when the test ends. A request that does not
// verify fails the test and is answered 401.
func New(t testing.TB, opts Options) *App {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(cmp.Or(opts.Secret, Secret))
	if err != nil {
		t.Fatal(err)
	}
	a := &App{opts: opts, hold: make(chan struct{}), held: make(chan string, 64),
		ids: map[string]int{}, payloads: map[string][]message.Payload{}, raw: map[string][]byte{}}
	a.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := a.calls.Add(1)
		a.mu.Lock()
		a.arrivals = append(a.arrivals, time.Now())
		a.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("forwarded request does not verify with the standard-webhooks library: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		time.Sleep(opts.Delay) // the app's own work, not synchronisation
		id := r.Header.Get("webhook-id")
		if opts.Hold {
			a.held <- id
			<-a.hold
		}
		code := http.StatusOK
		switch {
		case opts.AnswerFor != nil:
			code = opts.AnswerFor(id, w.Header())
		case opts.Answer != nil:
			code = opts.Answer(n, w.Header())
		}
		if code/100 == 2 {
			var p message.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Errorf("forwarded payload: %v", err)
			}
			a.mu.Lock()
			a.ids[id]++
			a.payloads[id] = append(a.payloads[id], p)
			a.raw[id] = body
			a.mu.Unlock()
		}
		w.WriteHeader(code)
	})
	srv := httptest.NewServer(a.handler)
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Handler is the app, to serve somewhere else too (an address that comes
// up later).
func (a *App) Handler() http.Handler { return a.handler }

// Env is what the service needs to forward here.
func (a *App) Env() map[string]string {
	return map[string]string{"FORWARD_URL": a.URL, "FORWARD_SECRET": Secret}
}

// Held returns the webhook-id of the next request waiting in the app (with
// Options.Hold).
func (a *App) Held() string { return <-a.held }

// Release lets one waiting request go on.
func (a *App) Release() { a.hold <- struct{}{} }

// Calls is how many requests reached the app.
func (a *App) Calls() int64 { return a.calls.Load() }

// Deliveries is how many times the app accepted id.
func (a *App) Deliveries(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[id]
}

// Total is how many forwards the app accepted.
func (a *App) Total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.ids {
		n += c
	}
	return n
}

// Distinct is how many webhook-ids the app accepted.
func (a *App) Distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

// Payloads returns what the app accepted for id, decoded.
func (a *App) Payloads(id string) []message.Payload {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]message.Payload(nil), a.payloads[id]...)
}

// Accepted returns how many times the app accepted each webhook-id.
func (a *App) Accepted() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.ids)
}

// Raw returns the last body the app accepted for id.
func (a *App) Raw(id string) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw[id]
}

// Arrivals returns when each request reached the app, in order.
func (a *App) Arrivals() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.arrivals...)
}
