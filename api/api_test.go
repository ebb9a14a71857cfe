package api_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/message"
	"inbox/simulate"
	"inbox/store"
	"inbox/twilio"
)

const token = "test-auth-token"

type harness struct {
	t     *testing.T
	srv   *httptest.Server
	pool  *pgxpool.Pool
	store *store.Store
	logs  *logtest.Buffer
}

type option func(*api.Config)

// setup serves the real handler over real HTTP, on a fresh database
// reached at databaseURL (a new one when empty).
func setup(t *testing.T, databaseURL string, opts ...option) *harness {
	t.Helper()
	if databaseURL == "" {
		databaseURL = dbtest.URL(t)
	}
	h := &harness{t: t, logs: &logtest.Buffer{}}
	h.pool = dbtest.Connect(t, databaseURL, 8)
	// Written as serve writes: group-committed, each new message with its
	// job. No worker runs the jobs here: that they exist, once, is what the
	// webhook promises.
	h.store = store.NewWith(h.pool, store.Options{JobAttempts: 25, Writers: 4, MaxBatch: 64})
	t.Cleanup(h.store.Close)
	v, err := twilio.NewValidator(token, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		Logger:    slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Store:     h.store,
		Validator: v,
	}
	for _, o := range opts {
		o(&cfg)
	}
	// The public URL is only known once the server listens.
	var handler http.Handler
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)
	cfg.PublicBaseURL = h.srv.URL
	handler = api.NewServer(cfg)
	return h
}

// post sends a request and returns its status and body.
func (h *harness) post(req *http.Request) (int, string) {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// burst sends n requests at once, each on its own connection, released
// together once all are built, and returns each one's status and body.
func (h *harness) burst(n int, build func() *http.Request) (statuses []int, bodies []string) {
	h.t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	defer client.CloseIdleConnections()
	statuses, bodies = make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		req := build()
		wg.Go(func() {
			<-start
			resp, err := client.Do(req)
			if err != nil {
				h.t.Errorf("request %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	close(start)
	wg.Wait()
	return statuses, bodies
}

// request builds a correctly signed POST of form to path.
func (h *harness) request(path string, form url.Values) *http.Request {
	h.t.Helper()
	u := h.srv.URL + path
	req, err := simulate.NewRequest(h.t.Context(), u, u, token, form)
	if err != nil {
		h.t.Fatal(err)
	}
	return req
}

// signed builds a correctly signed inbound-message delivery of form.
func (h *harness) signed(form url.Values) *http.Request {
	return h.request("/twilio/messages", form)
}

// raw builds a delivery of a literal body, signed over the parameters it
// decodes to (when it decodes).
func (h *harness) raw(body string) *http.Request {
	h.t.Helper()
	u := h.srv.URL + "/twilio/messages"
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if form, err := url.ParseQuery(body); err == nil {
		req.Header.Set(twilio.SignatureHeader, twilio.Sign(token, u, form))
	}
	return req
}

// jobs returns how many of sids have a job of kind: for messageJob, the
// job each was enqueued with (its own or its batch's, dbtest.EnqueuedJobs).
func (h *harness) jobs(kind string, sids ...string) int {
	h.t.Helper()
	q := `SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'sid' = ANY($2)`
	if kind == messageJob {
		q = `SELECT count(*) FROM ` + dbtest.EnqueuedJobs + ` WHERE $1 <> '' AND sid = ANY($2)`
	}
	var n int
	if err := h.pool.QueryRow(h.t.Context(), q, kind, sids).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

const messageJob, statusJob = "inbox_message", "inbox_status"

func (h *harness) rows(sids ...string) int64 {
	h.t.Helper()
	n, err := h.store.CountMessagesBySIDs(h.t.Context(), sids)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

func assertTwiML(t *testing.T, status int, body string) {
	t.Helper()
	if status != http.StatusOK || body != twiml {
		t.Fatalf("answer = %d %q, want 200 with empty TwiML", status, body)
	}
}

func TestFirstDeliveryStoredAndRetryIgnored(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	for _, kind := range simulate.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			sid := simulate.NewMessageSID(kind)
			form := simulate.InboundForm(kind, sid, 7)

			resp, err := h.srv.Client().Do(h.signed(form))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertTwiML(t, resp.StatusCode, string(body))
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
				t.Fatalf("content type %q, want text/xml", ct)
			}
			m, err := h.store.GetMessageBySID(t.Context(), sid)
			if err != nil {
				t.Fatal(err)
			}
			if m.Body != form.Get("Body") || m.From != form.Get("From") || m.To != form.Get("To") ||
				m.AccountSID != simulate.AccountSID || m.Direction != message.DirectionInbound || int(m.NumMedia) != len(m.Media) {
				t.Fatalf("stored %+v from form %v", m, form)
			}
			for k := range form {
				if m.Metadata.Params[k] != form.Get(k) {
					t.Fatalf("metadata param %s = %q, want %q", k, m.Metadata.Params[k], form.Get(k))
				}
			}
			if len(m.Metadata.Params) != len(form) || m.Metadata.IdempotencyToken == "" {
				t.Fatalf("metadata %+v: want every parameter and the idempotency token", m.Metadata)
			}
			if kind == simulate.MMS && (len(m.Media) != 2 || m.Media[1].ContentType != "application/pdf") {
				t.Fatalf("media %+v", m.Media)
			}

			// Twilio's retry: same form, new signature header value is the same, new idempotency token.
			status, body2 := h.post(h.signed(form))
			assertTwiML(t, status, body2)
			if n := h.rows(sid); n != 1 {
				t.Fatalf("rows after retry = %d, want 1", n)
			}
			after, _ := h.store.GetMessageBySID(t.Context(), sid)
			if after.ID != m.ID || after.Metadata.IdempotencyToken != m.Metadata.IdempotencyToken {
				t.Fatal("the retry changed the stored row")
			}
			if got := h.jobs(messageJob, sid); got != 1 {
				t.Fatalf("%d processing jobs for the message and its retry, want 1", got)
			}
		})
	}
	if !strings.Contains(h.logs.String(), `"msg":"duplicate delivery ignored"`) || !strings.Contains(h.logs.String(), `"msg":"stored new message"`) {
		t.Fatalf("logs lack the stored and duplicate lines:\n%s", h.logs)
	}
	if strings.Contains(h.logs.String(), "Pedido") || strings.Contains(h.logs.String(), token) {
		t.Fatalf("the info log carries a message body or the auth token:\n%s", h.logs)
	}
}

func TestConcurrentIdenticalDeliveriesStoreOneRow(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	form := simulate.InboundForm(simulate.SMS, sid, 1)
	const n = 200

	statuses, bodies := h.burst(n, func() *http.Request { return h.signed(form) })
	for i := range n {
		if statuses[i] != http.StatusOK || bodies[i] != twiml {
			t.Fatalf("delivery %d answered %d %q", i, statuses[i], bodies[i])
		}
	}
	if rows := h.rows(sid); rows != 1 {
		t.Fatalf("rows = %d, want 1", rows)
	}
	if jobs := h.jobs(messageJob, sid); jobs != 1 {
		t.Fatalf("%d processing jobs, want 1", jobs)
	}
	if got := strings.Count(h.logs.String(), `"msg":"duplicate delivery ignored"`); got != n-1 {
		t.Fatalf("%d duplicate lines logged, want %d", got, n-1)
	}
}

func TestSignatureFailuresAre403AndWriteNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	form := simulate.InboundForm(simulate.SMS, sid, 1)

	missing := h.signed(form)
	missing.Header.Del(twilio.SignatureHeader)

	forged := h.signed(form)
	forged.Header.Set(twilio.SignatureHeader, twilio.Sign("not-the-token", h.srv.URL+"/twilio/messages", form))

	tamperedForm := maps.Clone(form)
	tamperedForm.Set("Body", "send the money elsewhere")
	tampered := h.signed(tamperedForm)
	tampered.Header.Set(twilio.SignatureHeader, h.signed(form).Header.Get(twilio.SignatureHeader))

	otherURL := h.signed(form)
	otherURL.Header.Set(twilio.SignatureHeader, twilio.Sign(token, "https://elsewhere.example.com/twilio/messages", form))

	for name, req := range map[string]*http.Request{
		"missing": missing, "forged": forged, "tampered": tampered, "signed for another URL": otherURL,
	} {
		if status, body := h.post(req); status != http.StatusForbidden {
			t.Fatalf("%s signature: %d %q, want 403", name, status, body)
		}
	}
	if n, jobs := h.rows(sid), h.jobs(messageJob, sid); n != 0 || jobs != 0 {
		t.Fatalf("rows = %d, jobs = %d after refused deliveries, want 0", n, jobs)
	}
	if !strings.Contains(h.logs.String(), "X-Twilio-Signature does not match") || !strings.Contains(h.logs.String(), "no X-Twilio-Signature header") {
		t.Fatalf("logs do not say why:\n%s", h.logs)
	}
}

func TestBadInputIsRefusedClearlyAndChangesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	sid := simulate.NewMessageSID(simulate.SMS)
	valid := simulate.InboundForm(simulate.SMS, sid, 1)
	with := func(k, v string) string {
		f := maps.Clone(valid)
		f.Set(k, v)
		return f.Encode()
	}
	without := func(k string) string {
		f := maps.Clone(valid)
		f.Del(k)
		return f.Encode()
	}
	var many strings.Builder
	many.WriteString(valid.Encode())
	for i := range 10_000 {
		many.WriteString("&p" + strings.Repeat("x", i%3) + "=" + "1")
	}

	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		reason string
	}{
		{"GET", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/twilio/messages", nil)
			return r
		}, 405, "method GET not allowed"},
		{"JSON content type", func() *http.Request {
			r := h.signed(valid)
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 415, "is not application/x-www-form-urlencoded"},
		{"no content type", func() *http.Request {
			r := h.signed(valid)
			r.Header.Del("Content-Type")
			return r
		}, 415, "is not application/x-www-form-urlencoded"},
		{"body over the limit", func() *http.Request { return h.raw(with("Body", strings.Repeat("a", api.DefaultMaxBodyBytes))) }, 413, "over the"},
		{"body over the limit, chunked", func() *http.Request {
			r := h.raw(with("Body", strings.Repeat("a", api.DefaultMaxBodyBytes)))
			r.ContentLength = -1 // no Content-Length: only reading finds out
			return r
		}, 413, "over the"},
		{"malformed encoding", func() *http.Request { return h.raw(valid.Encode() + "&Body=%zz") }, 400, "malformed form encoding"},
		{"semicolon separator", func() *http.Request { return h.raw(valid.Encode() + ";x=1") }, 400, "malformed form encoding"},
		{"10 000 parameters", func() *http.Request { return h.raw(many.String()) }, 400, "form parameters, more than"},
		{"no MessageSid", func() *http.Request { return h.raw(without("MessageSid")) }, 400, "MessageSid is missing"},
		{"MessageSid of the wrong shape", func() *http.Request { return h.raw(with("MessageSid", "SM123")) }, 400, "is not a message sid"},
		{"MessageSid that is SQL", func() *http.Request { return h.raw(with("MessageSid", "'; DROP TABLE messages; --")) }, 400, "is not a message sid"},
		{"invalid UTF-8", func() *http.Request { return h.raw(valid.Encode() + "&Extra=%FF%FE") }, 400, "not valid UTF-8"},
		{"NUL byte", func() *http.Request { return h.raw(with("Body", "a\x00b")) }, 400, "not valid UTF-8 text"},
		{"repeated parameter", func() *http.Request { return h.raw(valid.Encode() + "&Body=again") }, 400, `parameter "Body" is repeated`},
		{"NumMedia not a number", func() *http.Request { return h.raw(with("NumMedia", "two")) }, 400, "NumMedia"},
		{"NumMedia without MediaUrl", func() *http.Request { return h.raw(with("NumMedia", "1")) }, 400, "MediaUrl0 is missing"},
		{"negative NumSegments", func() *http.Request { return h.raw(with("NumSegments", "-1")) }, 400, "NumSegments"},
		{"MessageSid in upper-case hex", func() *http.Request {
			return h.raw(with("MessageSid", strings.ToUpper(sid[:2])+strings.ToUpper(sid[2:])))
		}, 400, "is not a message sid"},
		{"no AccountSid", func() *http.Request { return h.raw(without("AccountSid")) }, 400, "is not an account sid"},
		{"AccountSid of the wrong shape", func() *http.Request { return h.raw(with("AccountSid", "AC123")) }, 400, "is not an account sid"},
		{"empty From", func() *http.Request { return h.raw(with("From", "")) }, 400, "From, To and ApiVersion must all be present"},
		{"no To", func() *http.Request { return h.raw(without("To")) }, 400, "From, To and ApiVersion must all be present"},
		{"no ApiVersion", func() *http.Request { return h.raw(without("ApiVersion")) }, 400, "From, To and ApiVersion must all be present"},
		{"SmsSid differs from MessageSid", func() *http.Request { return h.raw(with("SmsSid", simulate.NewMessageSID(simulate.SMS))) }, 400, "SmsSid"},
		{"SmsMessageSid differs from MessageSid", func() *http.Request {
			return h.raw(with("SmsMessageSid", simulate.NewMessageSID(simulate.SMS)))
		}, 400, "SmsMessageSid"},
		{"unknown path", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/twilio/nope", nil)
			return r
		}, 404, "no route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := h.post(c.req())
			if status != c.status || !strings.Contains(body, c.reason) {
				t.Fatalf("answer %d %q, want %d with %q", status, body, c.status, c.reason)
			}
			if reason, _ := json.Marshal(c.reason); !strings.Contains(h.logs.String(), strings.Trim(string(reason), `"`)) {
				t.Fatalf("no log line says %q", c.reason)
			}
			if n := h.rows(sid); n != 0 {
				t.Fatalf("%d rows written for a refused request", n)
			}
		})
	}
	// The server keeps serving, and the valid message is stored once.
	status, body := h.post(h.signed(valid))
	assertTwiML(t, status, body)
	if n := h.rows(sid); n != 1 {
		t.Fatalf("rows = %d after the valid delivery, want 1", n)
	}
}

func TestStrangeButValidInputIsStoredExactly(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	for name, body := range map[string]string{
		"sql":                "'); DELETE FROM messages; --",
		"control characters": "bell\a tab\t cr\r lf\n esc\x1b del\x7f",
		"unicode":            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202ereversed\u202c 👩\u200d👩\u200d👧 \u2028",
		"empty":              "",
		"1600 characters":    strings.Repeat("ação 🚚 !", 200),
	} {
		t.Run(name, func(t *testing.T) {
			sid := simulate.NewMessageSID(simulate.SMS)
			form := simulate.InboundForm(simulate.SMS, sid, 3)
			form.Set("Body", body)
			form.Set("X-Unknown-Twilio-Field", "kept")
			status, resp := h.post(h.signed(form))
			assertTwiML(t, status, resp)
			m, err := h.store.GetMessageBySID(t.Context(), sid)
			if err != nil {
				t.Fatal(err)
			}
			if m.Body != body || m.Metadata.Params["Body"] != body || m.Metadata.Params["X-Unknown-Twilio-Field"] != "kept" {
				t.Fatalf("stored body %q, metadata %q; want %q", m.Body, m.Metadata.Params["Body"], body)
			}
		})
	}
}

func TestDatabaseDownThenBackWithoutRestart(t *testing.T) {
	t.Parallel()
	proxy, viaProxy := dbtest.NewProxy(t, dbtest.URL(t))
	const timeout = 500 * time.Millisecond
	h := setup(t, viaProxy, func(c *api.Config) { c.RequestTimeout = timeout })
	ctx := t.Context()

	first := simulate.NewMessageSID(simulate.SMS)
	status, body := h.post(h.signed(simulate.InboundForm(simulate.SMS, first, 1)))
	assertTwiML(t, status, body)

	proxy.SetDown(true)
	down := simulate.NewMessageSID(simulate.SMS)
	began := time.Now()
	if status, body := h.post(h.signed(simulate.InboundForm(simulate.SMS, down, 2))); status != http.StatusServiceUnavailable {
		t.Fatalf("with the database down: %d %q, want 503", status, body)
	}
	// Bounded: the request deadline, plus slack for a loaded CI machine.
	if took := time.Since(began); took > timeout+5*time.Second {
		t.Fatalf("503 took %s; the request deadline is %s", took, timeout)
	}
	if status, _ := h.post(mustGet(t, h.srv.URL+"/readyz")); status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database down = %d, want 503", status)
	}
	if status, _ := h.post(mustGet(t, h.srv.URL+"/healthz")); status != http.StatusOK {
		t.Fatalf("/healthz with the database down = %d, want 200: the process is fine", status)
	}
	// The rest of the outage: a storm of failures is one ERROR line, not one each.
	statuses, _ := h.burst(50, func() *http.Request { return h.signed(simulate.InboundForm(simulate.SMS, down, 2)) })
	for i, st := range statuses {
		if st != http.StatusServiceUnavailable {
			t.Fatalf("delivery %d during the outage answered %d, want 503", i, st)
		}
	}
	if n := strings.Count(h.logs.String(), `"level":"ERROR"`); n != 1 || !strings.Contains(h.logs.String(), "outcome unknown, a retry is safe") {
		t.Fatalf("%d ERROR lines for 51 failed deliveries, want 1 that says a retry is safe:\n%s", n, h.logs)
	}

	proxy.SetDown(false)
	// Twilio's retry of the refused delivery now lands; no restart in between.
	status, body = h.post(h.signed(simulate.InboundForm(simulate.SMS, down, 2)))
	assertTwiML(t, status, body)
	if !strings.Contains(h.logs.String(), `"failed_during_outage":52`) { // 51 deliveries and /readyz
		t.Fatalf("no line says the database is back after 52 failures:\n%s", h.logs)
	}
	if n, err := h.store.CountMessagesBySIDs(ctx, []string{first, down}); err != nil || n != 2 {
		t.Fatalf("rows = %d (%v), want 2", n, err)
	}
}

// TestSlowDatabaseIs503AndTheRetryIsSafe: the insert waits past the
// request's deadline: 503. Its group may still commit once the table is
// free (the outcome was unknown), so Twilio's retry gets 200 either way,
// and there is one row and one job.
func TestSlowDatabaseIs503AndTheRetryIsSafe(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	const timeout = 300 * time.Millisecond
	h := setup(t, databaseURL, func(c *api.Config) { c.RequestTimeout = timeout })
	ctx := t.Context()

	// Another session holds the table: the insert waits past its deadline.
	locker := dbtest.Connect(t, databaseURL, 1)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	sid := simulate.NewMessageSID(simulate.SMS)
	form := simulate.InboundForm(simulate.SMS, sid, 1)
	if status, body := h.post(h.signed(form)); status != http.StatusServiceUnavailable {
		t.Fatalf("with the table locked: %d %q, want 503", status, body)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	status, body := h.post(h.signed(form))
	assertTwiML(t, status, body)
	if n, jobs := h.rows(sid), h.jobs(messageJob, sid); n != 1 || jobs != 1 {
		t.Fatalf("rows = %d, jobs = %d after the retry, want 1 and 1", n, jobs)
	}
}

// TestJobThatCannotBeEnqueuedStoresNothing: the row and its job commit
// together or not at all. With River's table unusable, the insert's
// transaction fails: 503, and no row, so Twilio's retry stores it later.
func TestJobThatCannotBeEnqueuedStoresNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	if _, err := h.pool.Exec(t.Context(), `ALTER TABLE river_job RENAME TO river_job_away`); err != nil {
		t.Fatal(err)
	}
	sid := simulate.NewMessageSID(simulate.SMS)
	form := simulate.InboundForm(simulate.SMS, sid, 1)
	if status, body := h.post(h.signed(form)); status != http.StatusServiceUnavailable {
		t.Fatalf("with no job table: %d %q, want 503", status, body)
	}
	if n := h.rows(sid); n != 0 {
		t.Fatalf("%d rows stored without their job, want 0", n)
	}
	if _, err := h.pool.Exec(t.Context(), `ALTER TABLE river_job_away RENAME TO river_job`); err != nil {
		t.Fatal(err)
	}
	status, body := h.post(h.signed(form))
	assertTwiML(t, status, body)
	if n, jobs := h.rows(sid), h.jobs(messageJob, sid); n != 1 || jobs != 1 {
		t.Fatalf("after the retry: rows = %d, jobs = %d, want 1 and 1", n, jobs)
	}
}

// TestRefusedConnectionIsClosed: a client that cannot sign gets its answer
// and loses its connection, so it cannot hold idle keep-alive connections;
// a valid delivery keeps its connection for the next.
func TestRefusedConnectionIsClosed(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	send := func(req *http.Request) *http.Response {
		t.Helper()
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	valid := h.signed(simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1))
	if resp := send(valid); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("valid delivery: %d, close=%v; want 200 on a kept connection", resp.StatusCode, resp.Close)
	}
	unsigned := h.signed(simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1))
	unsigned.Header.Del(twilio.SignatureHeader)
	if resp := send(unsigned); resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Fatalf("unsigned delivery: %d, close=%v; want 403 and Connection: close", resp.StatusCode, resp.Close)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // bounds a failure, never reached when it works
	if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after a refusal the server kept the connection: read %d, %v", n, err)
	}
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestResplitSignedFormIsRefused replays the attack Twilio's separator-free
// signature allows: a captured, signed delivery whose Body was crafted to
// hold "MessageSid"+another sid is re-split into a form with that sid, and
// the signature still matches. The re-split form lacks what every real
// webhook carries (here a non-empty From), so it is refused and stores
// nothing.
func TestResplitSignedFormIsRefused(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	forgedSID := "SM" + strings.Repeat("f", 32)
	captured := simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1)
	captured.Set("Body", "hiFromMessageSid"+forgedSID+"Na")

	// What Twilio signed after Body's value: the rest of the captured form,
	// names and values run together, becomes the value of a parameter "Na".
	var rest strings.Builder
	for _, p := range twilio.FormFromValues(captured) {
		if p.Name > "Body" {
			rest.WriteString(p.Name + p.Value)
		}
	}
	forged := url.Values{
		"AccountSid": captured["AccountSid"], "ApiVersion": captured["ApiVersion"],
		"Body": {"hi"}, "From": {""}, "MessageSid": {forgedSID}, "Na": {rest.String()},
	}
	u := h.srv.URL + "/twilio/messages"
	sig := twilio.Sign(token, u, captured)
	if twilio.Sign(token, u, forged) != sig {
		t.Fatal("the forged form does not sign like the captured one: the test does not test the attack")
	}

	req := h.signed(forged)
	req.Header.Set(twilio.SignatureHeader, sig)
	if status, body := h.post(req); status != http.StatusBadRequest {
		t.Fatalf("re-split form answered %d %q, want 400", status, body)
	}
	if n := h.rows(forgedSID); n != 0 {
		t.Fatalf("the re-split form stored %d rows", n)
	}
	status, body := h.post(h.signed(captured))
	assertTwiML(t, status, body)
	if n := h.rows(captured.Get("MessageSid")); n != 1 {
		t.Fatalf("the captured delivery itself stored %d rows, want 1", n)
	}
}

// TestIdempotencyTokenIsBoundedAndInformational: the header is not signed,
// so an oversized or non-ASCII value is dropped (the message is still
// stored) and a valid one is kept as sent.
func TestIdempotencyTokenIsBoundedAndInformational(t *testing.T) {
	t.Parallel()
	h := setup(t, "")
	for name, c := range map[string]struct{ header, kept string }{
		"twilio's shape": {"9f4b2c1d-0000-4000-8000-1234567890ab", "9f4b2c1d-0000-4000-8000-1234567890ab"},
		"128 characters": {strings.Repeat("a", 128), strings.Repeat("a", 128)},
		"60 KB":          {strings.Repeat("a", 60_000), ""},
		"129 characters": {strings.Repeat("a", 129), ""},
		"not ASCII":      {"tökén", ""},
		"a space":        {"a b", ""},
	} {
		t.Run(name, func(t *testing.T) {
			sid := simulate.NewMessageSID(simulate.SMS)
			req := h.signed(simulate.InboundForm(simulate.SMS, sid, 1))
			req.Header.Set(twilio.IdempotencyHeader, c.header)
			status, body := h.post(req)
			assertTwiML(t, status, body)
			m, err := h.store.GetMessageBySID(t.Context(), sid)
			if err != nil {
				t.Fatal(err)
			}
			if m.Metadata.IdempotencyToken != c.kept {
				t.Fatalf("kept token of %d bytes, want %q", len(m.Metadata.IdempotencyToken), truncated(c.kept))
			}
		})
	}
}

func truncated(s string) string { return s[:min(len(s), 20)] }
