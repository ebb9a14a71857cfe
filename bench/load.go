// Package bench measures the service under load: a load generator that
// posts signed inbound-message webhooks over keep-alive connections (one per
// worker, requests pre-built, as wrk does) in three mixes, and the latency and status figures it reports. bench/run drives it,
// beside pgbench, into docs/benchmarks.md's table.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"inbox/simulate"
	"inbox/twilio"
)

// Mix is what share of the requests repeat a message.
type Mix string

// The mixes.
const (
	// AllNew sends every message once.
	AllNew Mix = "new"
	// Repeat30 makes 30% of requests repeats of a recent message, as
	// Twilio's retries are.
	Repeat30 Mix = "repeat30"
	// Storm sends each message Concurrency times at once, all identical.
	Storm Mix = "storm"
	// Events10 sends Event Streams batches of EventsPerBatch new inbound
	// messages each, to /twilio/events: a request is a batch.
	Events10 Mix = "events10"
)

// EventsPerBatch is how many events an Events10 request carries.
const EventsPerBatch = 10

// Load says what to send.
type Load struct {
	BaseURL     string // where the service listens; also what is signed
	Token       string
	Mix         Mix
	Concurrency int
	Duration    time.Duration // how long to send for (storms: at least one)
	Storms      int           // Storm: how many storms at most; 0 means until Duration
	// Kinds are the kinds of message sent, in turn (nil: simulate.Kinds).
	Kinds []simulate.Kind
	// MediaURL, when set, gives each message one medium, at MediaURL(sid),
	// instead of the simulated MMS's two on api.twilio.com.
	MediaURL func(sid string) string
}

// Result is what a load run saw.
type Result struct {
	Mix         Mix
	Concurrency int
	Requests    int
	Elapsed     time.Duration
	Statuses    map[int]int
	Failures    int // no answer at all
	FirstError  error
	P50, P99    time.Duration
	Max         time.Duration
	SIDs        []string // distinct sids sent
}

// RPS is requests answered per second.
func (r Result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// OK reports whether every request was answered 200.
func (r Result) OK() bool { return r.Failures == 0 && r.Statuses[http.StatusOK] == r.Requests }

type request struct {
	sid  string
	more []string // an event batch's other sids
	raw  []byte   // the whole HTTP/1.1 request, headers and body
}

// prepare builds a signed request, as bytes on the wire, before the clock
// starts: the load generator shares the CPU with the service and
// PostgreSQL, so it should spend it sending, not signing or formatting.
func prepare(l Load, sid string, n int) request {
	kinds := l.Kinds
	if len(kinds) == 0 {
		kinds = simulate.Kinds
	}
	form := simulate.InboundForm(kinds[n%len(kinds)], sid, n)
	if l.MediaURL != nil {
		form.Del("MediaUrl1")
		form.Del("MediaContentType1")
		form.Set("NumMedia", "1")
		form.Set("MediaUrl0", l.MediaURL(sid))
		form.Set("MediaContentType0", "image/jpeg")
	}
	body := form.Encode()
	u, _ := url.Parse(l.BaseURL)
	raw := fmt.Sprintf("POST /twilio/messages HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"%s: %s\r\nContent-Length: %d\r\n\r\n%s",
		u.Host, twilio.SignatureHeader, twilio.Sign(l.Token, l.BaseURL+"/twilio/messages", form), len(body), body)
	return request{sid: sid, raw: []byte(raw)}
}

// prepareEvents builds a signed Event Streams batch of new inbound
// messages, one per sid, as bytes on the wire.
func prepareEvents(l Load, sids []string, n int) request {
	events := make([]simulate.Event, len(sids))
	for i, sid := range sids {
		events[i] = simulate.InboundEvent(simulate.SMS, sid, n*len(sids)+i, "", nil)
	}
	body, _ := json.Marshal(events)
	sum := sha256.Sum256(body)
	path := "/twilio/events?" + twilio.BodyHashParam + "=" + hex.EncodeToString(sum[:])
	u, _ := url.Parse(l.BaseURL)
	raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"%s: %s\r\nContent-Length: %d\r\n\r\n%s",
		path, u.Host, twilio.SignatureHeader, twilio.Sign(l.Token, l.BaseURL+path, nil), len(body), body)
	return request{sid: sids[0], more: sids[1:], raw: []byte(raw)}
}

// conn is one keep-alive connection, owned by one worker: like wrk, and
// unlike net/http's client, it costs little CPU per request.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

func (c *conn) do(req []byte) (int, error) {
	if c.c == nil {
		nc, err := net.Dial("tcp", c.addr)
		if err != nil {
			return 0, err
		}
		c.c, c.r = nc, bufio.NewReader(nc)
	}
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return 0, err
	}
	status, err := c.readResponse()
	if err != nil {
		c.close()
	}
	return status, err
}

// readResponse reads one HTTP/1.1 response: the status, and a body of
// Content-Length bytes, discarded. The service always sends a length; a
// response without one, or with Connection: close, ends the connection.
func (c *conn) readResponse() (int, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length, keep := -1, true
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		return status, errors.New("response without Content-Length")
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, err
	}
	if !keep {
		c.close()
	}
	return status, nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// Run sends l and returns what the service answered.
func Run(ctx context.Context, l Load) (Result, error) {
	if l.Concurrency < 1 {
		return Result{}, fmt.Errorf("concurrency %d: want at least 1", l.Concurrency)
	}
	u, err := url.Parse(l.BaseURL)
	if err != nil || u.Scheme != "http" {
		return Result{}, fmt.Errorf("base url %q: want http://host:port", l.BaseURL)
	}
	conns := make([]*conn, l.Concurrency)
	for i := range conns {
		conns[i] = &conn{addr: u.Host}
		defer conns[i].close()
	}
	if l.Mix == Storm {
		return runStorms(ctx, conns, l)
	}
	return runStream(ctx, conns, l)
}

// runStream keeps Concurrency requests in flight for Duration.
func runStream(ctx context.Context, conns []*conn, l Load) (Result, error) {
	// Enough prepared requests for a fast service; the run stops early,
	// and says so, if they run out.
	n := 40_000 + 400*l.Concurrency
	if l.Mix == Events10 {
		n /= EventsPerBatch
	}
	reqs := make([]request, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range reqs {
		if l.Mix == Repeat30 && i >= 100 && rng.IntN(10) < 3 {
			reqs[i] = reqs[i-1-rng.IntN(100)] // a recent message, again
			continue
		}
		if l.Mix == Events10 {
			sids := make([]string, EventsPerBatch)
			for j := range sids {
				sids[j] = simulate.NewMessageSID(simulate.SMS)
			}
			reqs[i] = prepareEvents(l, sids, i)
			continue
		}
		reqs[i] = prepare(l, simulate.NewMessageSID(simulate.SMS), i)
	}

	var next atomic.Int64
	var mu sync.Mutex
	res := Result{Mix: l.Mix, Concurrency: l.Concurrency, Statuses: map[int]int{}}
	lat := make([][]time.Duration, l.Concurrency)
	ctx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if int(i) >= len(reqs) {
					return
				}
				d, status, err := send(conns[w], reqs[i])
				mu.Lock()
				res.record(status, err)
				mu.Unlock()
				lat[w] = append(lat[w], d)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	sent := int(min(next.Load(), int64(len(reqs))))
	res.SIDs = distinctSIDs(reqs[:sent])
	res.latencies(slices.Concat(lat...))
	return res, nil
}

// runStorms fires Concurrency identical requests at once, storm after storm.
func runStorms(ctx context.Context, conns []*conn, l Load) (Result, error) {
	res := Result{Mix: l.Mix, Concurrency: l.Concurrency, Statuses: map[int]int{}}
	var all []time.Duration
	var mu sync.Mutex
	start := time.Now()
	for s := 0; ; s++ {
		if (l.Storms > 0 && s >= l.Storms) || (l.Storms == 0 && s > 0 && time.Since(start) >= l.Duration) || ctx.Err() != nil {
			break
		}
		sid := simulate.NewMessageSID(simulate.SMS)
		res.SIDs = append(res.SIDs, sid)
		req := prepare(l, sid, s)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				d, status, err := send(c, req)
				mu.Lock()
				res.record(status, err)
				all = append(all, d)
				mu.Unlock()
			}()
		}
		close(gate)
		wg.Wait()
	}
	res.Elapsed = time.Since(start)
	res.latencies(all)
	return res, nil
}

func send(c *conn, r request) (time.Duration, int, error) {
	start := time.Now()
	status, err := c.do(r.raw)
	return time.Since(start), status, err
}

func (r *Result) record(status int, err error) {
	r.Requests++
	if err != nil {
		r.Failures++
		if r.FirstError == nil {
			r.FirstError = err
		}
		return
	}
	r.Statuses[status]++
}

func (r *Result) latencies(d []time.Duration) {
	r.P50, r.P99, r.Max = Percentiles(d)
}

// Percentiles sorts d and returns its median, 99th percentile and maximum.
func Percentiles(d []time.Duration) (p50, p99, max time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	return d[len(d)*50/100], d[min(len(d)-1, len(d)*99/100)], d[len(d)-1]
}

// distinctSIDs returns the sids of the requests sent, each once.
func distinctSIDs(sent []request) []string {
	seen := make(map[string]bool, len(sent))
	var out []string
	for _, r := range sent {
		for _, sid := range append([]string{r.sid}, r.more...) {
			if !seen[sid] {
				seen[sid] = true
				out = append(out, sid)
			}
		}
	}
	return out
}
