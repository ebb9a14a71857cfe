package simulate

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"inbox/webhook"
)

// Receiver plays the team's app: it takes the service's forwards, verifies
// each signature as a Standard Webhooks receiver does, and counts
// deliveries by webhook-id, as an app that drops redeliveries would.
type Receiver struct {
	key []byte
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	byID     map[string]int
	badByID  map[string]bool
	badSigs  int
	firstBad error
}

// NewReceiver listens on addr and verifies with secret (whsec_…).
func NewReceiver(addr, secret string) (*Receiver, error) {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receiver: listen on %s: %w", addr, err)
	}
	r := &Receiver{key: key, ln: ln, byID: map[string]int{}, badByID: map[string]bool{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// Addr is where the receiver listens.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err == nil {
		err = webhook.Verify(r.key, req.Header, body, time.Now())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.badSigs++
		r.badByID[req.Header.Get("webhook-id")] = true
		if r.firstBad == nil {
			r.firstBad = err
		}
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	r.byID[req.Header.Get("webhook-id")]++
	w.WriteHeader(http.StatusNoContent)
}

// Forwarded reports, for ids, how many were forwarded at least once and
// how many deliveries beyond the first arrived for them.
func (r *Receiver) Forwarded(ids []string) (forwarded, redeliveries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if n := r.byID[id]; n > 0 {
			forwarded++
			redeliveries += n - 1
		}
	}
	return forwarded, redeliveries
}

func (r *Receiver) settled(ids []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if r.byID[id] == 0 && !r.badByID[id] {
			return false
		}
	}
	return true
}

// BadSignatures returns how many requests failed verification, and the
// first reason.
func (r *Receiver) BadSignatures() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badSigs, r.firstBad
}

// Wait waits until every id was forwarded, or failed verification, or
// the deadline passes.
func (r *Receiver) Wait(ids []string, deadline time.Time) error {
	for {
		if r.settled(ids) {
			if n, _ := r.Forwarded(ids); n < len(ids) {
				return fmt.Errorf("%d of %d messages not forwarded with a valid signature", len(ids)-n, len(ids))
			}
			return nil
		}
		if time.Now().After(deadline) {
			n, _ := r.Forwarded(ids)
			return fmt.Errorf("%d of %d messages not forwarded in time", len(ids)-n, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
