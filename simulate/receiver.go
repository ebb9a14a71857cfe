package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"inbox/message"
	"inbox/webhook"
)

// Receiver plays the team's app: it takes the service's forwards, verifies
// each signature as a Standard Webhooks receiver does, and counts
// deliveries by webhook-id, as an app that drops redeliveries would. It
// answers POST ArrivalsPath with what arrived for the ids asked about, so
// a run of simulate can check the forwards of an app that scripts/run
// keeps running (RemoteArrivals).
type Receiver struct {
	key []byte
	srv *http.Server
	ln  net.Listener
	// log, when set, gets a line per request that arrives.
	log io.Writer
	// media, when set, plays Twilio's media host on the same address, and
	// each forwarded medium is read back from its download_url.
	media *MediaHost

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

// LogTo writes a line per request that arrives to w.
func (r *Receiver) LogTo(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = w
}

// PlayMediaHost has the receiver also play Twilio's media host for the
// simulated messages (MediaHost, for token), and read every forwarded
// medium from its download_url, as an app would, printing a line for each.
func (r *Receiver) PlayMediaHost(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.media = NewMediaHost(token)
}

// Addr is where the receiver listens.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == ArrivalsPath && req.Method == http.MethodPost {
		r.serveArrivals(w, req)
		return
	}
	r.mu.Lock()
	media := r.media
	r.mu.Unlock()
	if media != nil && media.Serves(req.URL.Path) {
		media.ServeHTTP(w, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err == nil {
		err = webhook.Verify(r.key, req.Header, body, time.Now())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log != nil { // under the lock: one line at a time
		verdict := "verified"
		if err != nil {
			verdict = "NOT verified: " + err.Error()
		}
		fmt.Fprintf(r.log, "app: %s %s, webhook-id %s, %s\n", req.Method, req.URL.Path, req.Header.Get("webhook-id"), verdict)
	}
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
	if r.media != nil && r.log != nil {
		go r.readMedia(body, r.log)
	}
	w.WriteHeader(http.StatusNoContent)
}

// readMedia reads each medium of a forward from its download_url, with no
// credentials, and says what came.
func (r *Receiver) readMedia(body []byte, log io.Writer) {
	var p message.Payload
	if json.Unmarshal(body, &p) != nil {
		return
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for i, m := range p.Message.Media { // at most ten, as Twilio's
		if m.DownloadURL == "" {
			continue
		}
		line := "app: medium %d of %s read from its download_url, without Twilio's credentials: %s\n"
		what := ""
		resp, err := client.Get(m.DownloadURL)
		if err == nil {
			n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			what = fmt.Sprintf("%d, %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), n)
		} else {
			line, what = "app: medium %d of %s NOT read from its download_url: %s\n", err.Error()
		}
		r.mu.Lock()
		fmt.Fprintf(log, line, i, p.Message.SID, what)
		r.mu.Unlock()
	}
}

// Tally is what arrived for some ids.
type Tally struct {
	// Forwarded is how many of the ids arrived at least once with a
	// valid signature, Redeliveries how many more deliveries of them came.
	Forwarded    int `json:"forwarded"`
	Redeliveries int `json:"redeliveries"`
	// Settled: every id arrived, or failed verification.
	Settled bool `json:"settled"`
	// BadSignatures counts every request that failed verification (any
	// id), FirstBad says why the first did.
	BadSignatures int    `json:"bad_signatures"`
	FirstBad      string `json:"first_bad,omitempty"`
}

// Arrivals is what the service forwarded to an app: a Receiver in this
// process, or one another process runs (RemoteArrivals).
type Arrivals interface {
	Arrived(ctx context.Context, ids []string) (Tally, error)
}

// Arrived tallies what arrived for ids.
func (r *Receiver) Arrived(_ context.Context, ids []string) (Tally, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := Tally{Settled: true, BadSignatures: r.badSigs}
	if r.firstBad != nil {
		t.FirstBad = r.firstBad.Error()
	}
	for _, id := range ids {
		n := r.byID[id]
		if n > 0 {
			t.Forwarded++
			t.Redeliveries += n - 1
		} else if !r.badByID[id] {
			t.Settled = false
		}
	}
	return t, nil
}

// ArrivalsPath is where a Receiver answers what arrived: POST a JSON
// {"ids": […]}, get a Tally.
const ArrivalsPath = "/.simulate/arrivals"

// maxArrivalIDs bounds the ids one question may ask about.
const maxArrivalIDs = 100_000

func (r *Receiver) serveArrivals(w http.ResponseWriter, req *http.Request) {
	var q struct{ IDs []string }
	if err := json.NewDecoder(io.LimitReader(req.Body, 16<<20)).Decode(&q); err != nil || len(q.IDs) > maxArrivalIDs {
		http.Error(w, "want {\"ids\": [...]}, at most 100000", http.StatusBadRequest)
		return
	}
	t, _ := r.Arrived(req.Context(), q.IDs)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(t)
}

// RemoteArrivals asks the Receiver another process runs at addr (the app
// scripts/run keeps running) what arrived.
type RemoteArrivals struct {
	url    string
	client *http.Client
}

// NewRemoteArrivals returns the arrivals of the Receiver at addr, once it
// has answered as one.
func NewRemoteArrivals(ctx context.Context, addr string) (*RemoteArrivals, error) {
	ra := &RemoteArrivals{url: "http://" + addr + ArrivalsPath, client: &http.Client{Timeout: 10 * time.Second}}
	if _, err := ra.Arrived(ctx, nil); err != nil {
		return nil, fmt.Errorf("%s is taken by something that is not the stand-in app (inbox simulate -app): %w", addr, err)
	}
	return ra, nil
}

// Arrived asks what arrived for ids.
func (ra *RemoteArrivals) Arrived(ctx context.Context, ids []string) (Tally, error) {
	body, err := json.Marshal(map[string][]string{"ids": ids})
	if err != nil {
		return Tally{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ra.url, bytes.NewReader(body))
	if err != nil {
		return Tally{}, err
	}
	resp, err := ra.client.Do(req)
	if err != nil {
		return Tally{}, err
	}
	defer resp.Body.Close()
	var t Tally
	if resp.StatusCode != http.StatusOK {
		return Tally{}, fmt.Errorf("POST %s: %s", ra.url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		return Tally{}, fmt.Errorf("POST %s: %w", ra.url, err)
	}
	return t, nil
}

// wait waits until every id was forwarded, or failed verification, or
// the deadline passes, and returns the last tally.
func waitArrivals(ctx context.Context, a Arrivals, ids []string, deadline time.Time) (Tally, error) {
	for {
		t, err := a.Arrived(ctx, ids)
		switch {
		case err != nil:
			return t, err
		case t.Settled && t.Forwarded < len(ids):
			return t, fmt.Errorf("%d of %d messages not forwarded with a valid signature", len(ids)-t.Forwarded, len(ids))
		case t.Settled:
			return t, nil
		case time.Now().After(deadline):
			return t, fmt.Errorf("%d of %d messages not forwarded in time", len(ids)-t.Forwarded, len(ids))
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling the app
		}
	}
}
