package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

const adminToken = "admin-test-token-0123456789"

// startAdmin runs serve with its admin listener on a loopback port the
// kernel picks, behind adminToken, and returns the server and the admin
// base URL.
func startAdmin(t *testing.T, databaseURL string, extra map[string]string) (*server, string) {
	t.Helper()
	vars := map[string]string{"ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": adminToken}
	maps.Copy(vars, extra)
	s := startServe(t, databaseURL, vars)
	return s, "http://" + s.adminAddr
}

// adminDo sends method to url with the given Authorization header ("" for
// none), as docs/operating.md tells curl users to (a POST says
// application/json), and returns the status and body.
func adminDo(t *testing.T, method, url, auth string) (int, http.Header, []byte) {
	t.Helper()
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	if method == http.MethodPost {
		h.Set("Content-Type", "application/json")
	}
	return adminSend(t, method, url, h, "")
}

// adminSend sends method to url with exactly the headers and body given,
// as a browser or a script would, and returns the status and body.
func adminSend(t *testing.T, method, url string, h http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host := h.Get("Host"); host != "" {
		req.Host = host
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, got
}

// TestAdminRoutesNeedTheToken: every admin route answers 401 without the
// token or with a wrong one, and serves with it, as a bearer token or as
// Basic auth's password.
func TestAdminRoutesNeedTheToken(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, dbtest.URL(t), nil)
	sid := simulate.NewMessageSID(simulate.SMS)
	routes := []struct{ method, path string }{
		{"GET", "/metrics"},
		{"GET", "/api/messages"},
		{"GET", "/api/messages/" + sid},
		{"POST", "/api/messages/" + sid + "/forward"},
		{"GET", "/riverui/"},
		{"GET", "/debug/pprof/"},
		{"GET", "/no/such/route"},
	}
	basic := func(pass string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth("ops", pass)
		return req.Header.Get("Authorization")
	}
	for _, r := range routes {
		for _, auth := range []string{"", "Bearer wrong-token", "Bearer " + adminToken + "x", basic("wrong"), "Token " + adminToken} {
			st, h, body := adminDo(t, r.method, base+r.path, auth)
			// After ten wrong tokens from this address, the rest are
			// refused before they are compared (admin/throttle.go).
			presents := strings.HasPrefix(auth, "Bearer ") || strings.HasPrefix(auth, "Basic ")
			if presents && st == http.StatusTooManyRequests && h.Get("Retry-After") != "" {
				continue
			}
			if st != http.StatusUnauthorized || h.Get("Content-Type") != "application/problem+json" || len(h.Values("WWW-Authenticate")) != 2 {
				t.Fatalf("%s %s with %q: %d %s %v, want 401 problem+json with two challenges", r.method, r.path, auth, st, h.Get("Content-Type"), h.Values("WWW-Authenticate"))
			}
			if strings.Contains(string(body), adminToken) {
				t.Fatalf("a 401 body shows the token: %s", body)
			}
		}
		for _, auth := range []string{"Bearer " + adminToken, basic(adminToken)} {
			st, _, _ := adminDo(t, r.method, base+r.path, auth)
			if st == http.StatusUnauthorized {
				t.Fatalf("%s %s with the token: 401", r.method, r.path)
			}
		}
	}
}

// TestServeRefusesAPublicAdminWithoutToken: an admin listener other hosts
// can reach needs a token; loopback or off does not.
func TestServeRefusesAPublicAdminWithoutToken(t *testing.T) {
	t.Parallel()
	base := map[string]string{"TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://hooks.example.com"}
	for _, addr := range []string{":9090", "0.0.0.0:9090", "[::]:9090", "10.1.2.3:9090", "hooks.example.com:9090"} {
		vars := maps.Clone(base)
		vars["ADMIN_ADDR"] = addr
		err := run(t.Context(), []string{"serve"}, env(vars), nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "ADMIN_TOKEN is not set") {
			t.Fatalf("ADMIN_ADDR %s without a token: err = %v, want a refusal naming ADMIN_TOKEN", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:9090", "localhost:9090", "[::1]:9090", "off"} {
		c := adminConfig{addr: addr}
		if err := c.validate(); err != nil {
			t.Fatalf("ADMIN_ADDR %s without a token: %v, want it allowed", addr, err)
		}
	}
}

// scrape reads the admin /metrics and parses it as Prometheus does.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	st, _, body := adminDo(t, "GET", base+"/metrics", "Bearer "+adminToken)
	if st != http.StatusOK {
		t.Fatalf("/metrics: %d", st)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value returns the value of the counter or gauge name with exactly the
// labels given, and whether the series exists.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		match := len(m.GetLabel()) == len(labels)
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsCountWhatWasSent: after a storm of identical deliveries, new
// messages, Twilio's retries of them, refusals of several kinds and status
// callbacks, every counter equals what was sent.
func TestMetricsCountWhatWasSent(t *testing.T) {
	t.Parallel()
	s, base := startAdmin(t, dbtest.URL(t), nil)
	target := "http://" + s.addr
	public := publicURL

	send := func(path, token string, form map[string][]string, mutate func(*http.Request)) int {
		req, err := simulate.NewRequest(t.Context(), target+path, public+path, token, form)
		if err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			mutate(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	expect := func(got, want int, what string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %d, want %d", what, got, want)
		}
	}

	// A storm: 50 identical deliveries at once: 1 new, 49 duplicates.
	storm := simulate.NewMessageSID(simulate.SMS)
	for i, st := range deliverAt(t, []string{s.addr}, storm, 50) {
		expect(st, 200, fmt.Sprintf("storm delivery %d", i))
	}
	// 10 new messages, each retried twice: 10 new, 20 duplicates.
	for range 10 {
		form := simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1)
		for range 3 {
			expect(send("/twilio/messages", testToken, form, nil), 200, "new or retry")
		}
	}
	// Refusals: 3 wrong signatures, 2 unsigned, 2 malformed sids, 1 not a form.
	good := simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1)
	for range 3 {
		expect(send("/twilio/messages", "wrong-token", good, nil), 403, "wrong signature")
	}
	for range 2 {
		expect(send("/twilio/messages", testToken, good, func(r *http.Request) { r.Header.Del("X-Twilio-Signature") }), 403, "unsigned")
	}
	bad := simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1)
	bad["MessageSid"] = []string{"SM123"}
	bad["SmsSid"], bad["SmsMessageSid"] = bad["MessageSid"], bad["MessageSid"]
	for range 2 {
		expect(send("/twilio/messages", testToken, bad, nil), 400, "malformed sid")
	}
	expect(send("/twilio/messages", testToken, good, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }), 415, "not a form")
	// Status callbacks: 3 statuses of one message, the last repeated: 3 new, 1 duplicate.
	out := simulate.NewMessageSID(simulate.SMS)
	for _, status := range []string{"queued", "sent", "delivered", "delivered"} {
		expect(send("/twilio/status", testToken, simulate.StatusForm(out, status, ""), nil), 200, "status callback")
	}
	// Unknown paths are counted under one route label, not one each.
	for i := range 3 {
		st, _, _ := adminDo(t, "GET", fmt.Sprintf("%s/probe/%d", target, i), "")
		expect(st, 404, "probe")
	}

	m := scrape(t, base)
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"inbox_deliveries_total", map[string]string{"kind": "message", "result": "new"}, 11},
		{"inbox_deliveries_total", map[string]string{"kind": "message", "result": "duplicate"}, 49 + 20},
		{"inbox_deliveries_total", map[string]string{"kind": "message", "result": "refused"}, 8},
		{"inbox_deliveries_total", map[string]string{"kind": "message", "result": "unavailable"}, 0},
		{"inbox_deliveries_total", map[string]string{"kind": "status", "result": "new"}, 3},
		{"inbox_deliveries_total", map[string]string{"kind": "status", "result": "duplicate"}, 1},
		{"inbox_deliveries_total", map[string]string{"kind": "status", "result": "refused"}, 0},
		{"inbox_refusals_total", map[string]string{"reason": "signature_mismatch"}, 3},
		{"inbox_refusals_total", map[string]string{"reason": "signature_missing"}, 2},
		{"inbox_refusals_total", map[string]string{"reason": "message_sid_invalid"}, 2},
		{"inbox_refusals_total", map[string]string{"reason": "content_type"}, 1},
		{"inbox_http_requests_total", map[string]string{"route": "/twilio/messages", "code": "200"}, 50 + 30},
		{"inbox_http_requests_total", map[string]string{"route": "/twilio/messages", "code": "403"}, 5},
		{"inbox_http_requests_total", map[string]string{"route": "/twilio/messages", "code": "400"}, 2},
		{"inbox_http_requests_total", map[string]string{"route": "/twilio/messages", "code": "415"}, 1},
		{"inbox_http_requests_total", map[string]string{"route": "/twilio/status", "code": "200"}, 4},
		{"inbox_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 3},
		{"inbox_http_request_duration_seconds", map[string]string{"route": "/twilio/messages"}, 50 + 30 + 8},
		// Every insert that reached the database went through a group commit.
		{"inbox_write_batch_size", nil, -1},
		{"inbox_pool_max_connections", nil, defaultPoolMaxConns},
		{"inbox_jobs_scrape_success", nil, 1},
		{"inbox_jobs", map[string]string{"state": "available"}, 0},
	}
	for _, w := range want {
		got, ok := value(m, w.name, w.labels)
		if !ok {
			t.Errorf("%s%v: no such series", w.name, w.labels)
			continue
		}
		if w.value >= 0 && got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	// The histogram of batches counts every delivery that reached the
	// database once: its sum of sizes is 50 + 30 (the refusals never did).
	if f := m["inbox_write_batch_size"]; f == nil || f.GetMetric()[0].GetHistogram().GetSampleSum() != 80 {
		t.Errorf("inbox_write_batch_size sum = %v, want 80 deliveries", f.GetMetric()[0].GetHistogram().GetSampleSum())
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := m[name]; !ok {
			t.Errorf("%s missing: the runtime and process collectors are registered", name)
		}
	}
	for name := range m {
		if strings.HasPrefix(name, "inbox_http_requests_total") {
			for _, s := range m[name].GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "route" && strings.HasPrefix(l.GetValue(), "/probe") {
						t.Errorf("a raw path became a label: %s", l.GetValue())
					}
				}
			}
		}
	}
}

// TestReplayForwardsAgainWithTheSameID: POST /api/messages/{sid}/forward
// enqueues a new job, which forwards the message once more under the same
// webhook-id; 200 replays asked for at once, while that replay is still
// running, make that one job; once it has finished, the next replay makes
// another. The message's detail lists the jobs; the River UI serves its
// page behind the same token.
func TestReplayForwardsAgainWithTheSameID(t *testing.T) {
	t.Parallel()
	// Each forward waits in the app until the test lets it go, so a
	// replay is still running while the others are asked for.
	a := teamapp.New(t, teamapp.Options{Hold: true})
	s, base := startAdmin(t, dbtest.URL(t), a.Env())
	sid := simulate.NewMessageSID(simulate.SMS)
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
		t.Fatalf("delivery: %d", st)
	}
	a.Held()
	a.Release()
	poll.Until(t, "the first forward", func() bool { return a.Deliveries(sid) == 1 })

	type answer struct {
		status int
		job    int64
	}
	replay := func() answer {
		st, h, body := adminDo(t, "POST", base+"/api/messages/"+sid+"/forward", "Bearer "+adminToken)
		var job struct {
			ID   int64  `json:"id"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(body, &job); err != nil || h.Get("Content-Type") != "application/json" || job.ID == 0 || job.Kind != "inbox_message" {
			t.Errorf("replay: %d %s %s", st, h.Get("Content-Type"), body)
		}
		return answer{st, job.ID}
	}
	answers := make([]answer, 200)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = replay() })
	}
	wg.Wait()
	created := 0
	for _, a := range answers {
		if a.status == http.StatusAccepted {
			created++
		} else if a.status != http.StatusOK {
			t.Fatalf("replay answered %d, want 202 or 200", a.status)
		}
		if a.job != answers[0].job {
			t.Fatalf("replays answered jobs %d and %d, want one", answers[0].job, a.job)
		}
	}
	pool := dbtest.Connect(t, s.env["DATABASE_URL"], 1)
	if _, jobs := counts(t, pool, sid); created != 1 || jobs != 2 {
		t.Fatalf("200 replays at once: %d answered 202, %d jobs for the sid; want 1 and 2 (the first forward and one replay)", created, jobs)
	}
	a.Held() // the replay's forward, in the app
	a.Release()
	poll.Until(t, "the replayed forward", func() bool { return a.Deliveries(sid) == 2 })

	// Finished, so the next replay is a new job.
	poll.Until(t, "the replay's job to complete", func() bool {
		var state string
		pool.QueryRow(t.Context(), `SELECT state FROM river_job WHERE id = $1`, answers[0].job).Scan(&state)
		return state == "completed"
	})
	if next := replay(); next.status != http.StatusAccepted || next.job == answers[0].job {
		t.Fatalf("a replay after the last one finished: %+v, want 202 with a new job", next)
	}
	a.Held()
	a.Release()
	poll.Until(t, "the third forward", func() bool { return a.Deliveries(sid) == 3 })
	if a.Distinct() != 1 {
		t.Fatalf("forwards went out under %d webhook-ids, want 1 (the sid)", a.Distinct())
	}
	var detail struct {
		Message struct {
			SID string `json:"sid"`
		} `json:"message"`
		Jobs []struct {
			State string `json:"state"`
		} `json:"jobs"`
	}
	poll.Until(t, "every job to complete", func() bool {
		_, _, body := adminDo(t, "GET", base+"/api/messages/"+sid, "Bearer "+adminToken)
		if err := json.Unmarshal(body, &detail); err != nil {
			t.Fatalf("detail: %v: %s", err, body)
		}
		done := 0
		for _, j := range detail.Jobs {
			if j.State == "completed" {
				done++
			}
		}
		return done == 3
	})
	if detail.Message.SID != sid || len(detail.Jobs) != 3 || a.Deliveries(sid) != 3 {
		t.Fatalf("detail %+v, forwards %d: want the message, 3 jobs and 3 forwards", detail, a.Deliveries(sid))
	}

	for path, want := range map[string]int{"/api/messages/SMffffffffffffffffffffffffffffffff/forward": 404, "/api/messages/SM1/forward": 400} {
		if st, h, _ := adminDo(t, "POST", base+path, "Bearer "+adminToken); st != want || h.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("POST %s: %d %s, want %d problem+json", path, st, h.Get("Content-Type"), want)
		}
	}

	st, h, body := adminDo(t, "GET", base+"/riverui/", "Bearer "+adminToken)
	if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<html") {
		t.Fatalf("/riverui/ with the token: %d %s %.200s", st, h.Get("Content-Type"), body)
	}
	if st, _, _ := adminDo(t, "GET", base+"/riverui/", ""); st != http.StatusUnauthorized {
		t.Fatalf("/riverui/ without the token: %d, want 401", st)
	}
	st, _, body = adminDo(t, "GET", base+"/riverui/api/jobs?state=completed&limit=10", "Bearer "+adminToken)
	if st != http.StatusOK || !strings.Contains(string(body), "inbox_message") {
		t.Fatalf("River UI's job API: %d %.300s", st, body)
	}
}

// TestCrossSiteRequestsAreRefused: the forms a web page could make an
// operator's browser send (the exact bodies, to the replay API and
// to River UI's retry, cancel and delete) are refused and change nothing,
// on the default listener with no token (any browser on the host reaches
// it) and behind a token sent as Basic auth, which a browser adds by
// itself; the same requests as curl sends them pass; and a Host that is not
// this listener's (DNS rebinding) is refused even for a read.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	t.Parallel()
	a := teamapp.New(t, teamapp.Options{})
	for _, token := range []string{"", adminToken} {
		databaseURL := dbtest.URL(t)
		vars := a.Env()
		vars["ADMIN_TOKEN"] = token
		s, base := startAdmin(t, databaseURL, vars)
		sid := simulate.NewMessageSID(simulate.SMS)
		if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
			t.Fatalf("delivery: %d", st)
		}
		poll.Until(t, "the first forward", func() bool { return a.Deliveries(sid) == 1 })
		pool := dbtest.Connect(t, databaseURL, 1)
		var jobID int64
		if err := pool.QueryRow(t.Context(), `SELECT id FROM river_job WHERE args->>'sid' = $1`, sid).Scan(&jobID); err != nil {
			t.Fatal(err)
		}
		jobState := func() (state string, jobs int) {
			pool.QueryRow(t.Context(), `SELECT (SELECT state::text FROM river_job WHERE id = $1), (SELECT count(*) FROM river_job)`, jobID).Scan(&state, &jobs)
			return state, jobs
		}
		poll.Until(t, "the first job to complete", func() bool { st, _ := jobState(); return st == "completed" })

		browser := func(contentType string, extra ...string) http.Header {
			h := http.Header{"Content-Type": {contentType}}
			if token != "" {
				req, _ := http.NewRequest("GET", "/", nil)
				req.SetBasicAuth("ops", token)
				h.Set("Authorization", req.Header.Get("Authorization"))
			}
			for i := 0; i+1 < len(extra); i += 2 {
				h.Set(extra[i], extra[i+1])
			}
			return h
		}
		// River UI reads any body as JSON: this text/plain form field
		// sends {"ids":["<id>"],"x":"="}.
		riverBody := fmt.Sprintf(`{"ids":["%d"],"x":"=`+`"}`, jobID)
		forms := []struct {
			name, path string
			h          http.Header
			body       string
			want       int
		}{
			{"urlencoded form to the API", "/api/messages/" + sid + "/forward", browser("application/x-www-form-urlencoded", "Origin", "http://evil.example"), "a=b", 403},
			{"text/plain form to the API", "/api/messages/" + sid + "/forward", browser("text/plain", "Origin", "http://evil.example"), "a=b", 403},
			{"Sec-Fetch-Site cross-site, no Origin", "/api/messages/" + sid + "/forward", browser("application/json", "Sec-Fetch-Site", "cross-site"), "", 403},
			{"a form from an old browser (no Origin)", "/api/messages/" + sid + "/forward", browser("text/plain"), "a=b", 415},
			{"no content type, no Origin", "/api/messages/" + sid + "/forward", browser(""), "", 415},
			{"null Origin", "/api/messages/" + sid + "/forward", browser("application/json", "Origin", "null"), "", 403},
		}
		for _, verb := range []string{"retry", "cancel", "delete"} {
			path := "/riverui/api/jobs/" + verb
			forms = append(forms,
				struct {
					name, path string
					h          http.Header
					body       string
					want       int
				}{"text/plain form to River UI's " + verb, path, browser("text/plain", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"), riverBody, 403},
				struct {
					name, path string
					h          http.Header
					body       string
					want       int
				}{"River UI's " + verb + " from an old browser (no Origin)", path, browser("text/plain"), riverBody, 415},
			)
		}
		for _, f := range forms {
			st, _, body := adminSend(t, "POST", base+f.path, f.h, f.body)
			if st != f.want {
				t.Errorf("token %v, %s: %d %s, want %d", token != "", f.name, st, body, f.want)
			}
			if state, jobs := jobState(); state != "completed" || jobs != 1 {
				t.Fatalf("token %v, after %s: the job is %q, %d jobs; want it completed and alone", token != "", f.name, state, jobs)
			}
		}
		if got := a.Deliveries(sid); got != 1 {
			t.Fatalf("refused requests forwarded the message: %d forwards", got)
		}
		for _, host := range []string{"evil.example", "evil.example:9090", "127.0.0.1.nip.io"} {
			for _, path := range []string{"/api/messages", "/metrics", "/riverui/"} {
				if st, _, _ := adminSend(t, "GET", base+path, browser("", "Host", host), ""); st != http.StatusForbidden {
					t.Errorf("token %v, GET %s with Host %s: %d, want 403", token != "", path, host, st)
				}
			}
		}

		// curl: JSON, no Origin, the token if there is one: allowed.
		curl := http.Header{"Content-Type": {"application/json"}}
		if token != "" {
			curl.Set("Authorization", "Bearer "+token)
		}
		if st, _, body := adminSend(t, "POST", base+"/api/messages/"+sid+"/forward", curl, ""); st != http.StatusAccepted {
			t.Fatalf("token %v, replay as curl sends it: %d %s, want 202", token != "", st, body)
		}
		poll.Until(t, "the replay", func() bool { return a.Deliveries(sid) == 2 })
		// The browser's own page: same origin, Sec-Fetch-Site same-origin.
		own := browser("application/json", "Origin", base, "Sec-Fetch-Site", "same-origin")
		if st, _, body := adminSend(t, "POST", base+"/riverui/api/jobs/delete", own, fmt.Sprintf(`{"ids":["%d"]}`, jobID)); st != http.StatusOK {
			t.Fatalf("token %v, River UI's own delete: %d %s, want 200", token != "", st, body)
		}
		if state, _ := jobState(); state != "" {
			t.Fatalf("token %v, River UI's own delete left the job %q", token != "", state)
		}
	}
}

// TestReplayWithProcessingOffIsRefused: without FORWARD_URL there is no
// forward to repeat: 409, and no job.
func TestReplayWithProcessingOffIsRefused(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	s, base := startAdmin(t, databaseURL, nil)
	sid := simulate.NewMessageSID(simulate.SMS)
	if st := deliverAt(t, []string{s.addr}, sid, 1)[0]; st != http.StatusOK {
		t.Fatalf("delivery: %d", st)
	}
	st, _, body := adminDo(t, "POST", base+"/api/messages/"+sid+"/forward", "Bearer "+adminToken)
	if st != http.StatusConflict || !strings.Contains(string(body), "FORWARD_URL") {
		t.Fatalf("replay with processing off: %d %s, want 409 naming FORWARD_URL", st, body)
	}
	if rows, jobs := counts(t, dbtest.Connect(t, databaseURL, 1), sid); rows != 1 || jobs != 0 {
		t.Fatalf("rows = %d, jobs = %d; want 1 and 0", rows, jobs)
	}
}
