package admin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/account"
	"inbox/admin"
	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/workertest"
	"inbox/keyring"
	"inbox/message"
	"inbox/metrics"
	"inbox/routing"
	"inbox/store"
	"inbox/story"
)

type harness struct {
	pool  *pgxpool.Pool
	store *store.Store
	url   string
}

func setup(t *testing.T) *harness { return setupWith(t, nil) }

// setupWith serves the admin edge over a fresh database, with the
// operator's controls, after edit changes its configuration.
func setupWith(t *testing.T, edit func(*admin.Config)) *harness {
	t.Helper()
	pool := dbtest.Pool(t, 8)
	// Group commit, as serve writes: many messages of a batch share one
	// received_at, which the keyset order must break by id.
	st := store.NewWith(pool, store.Options{Writers: 2, MaxBatch: 16})
	t.Cleanup(st.Close)
	logger := slog.New(slog.DiscardHandler)
	controls, q := workertest.Controls(t, pool, 5)
	keys, err := keyring.Parse("0000000000000000000000000000000000000000000000000000000000000002")
	if err != nil {
		t.Fatal(err)
	}
	cfg := admin.Config{Logger: logger, Metrics: metrics.New().Handler(), Stories: story.New(st, q), Controls: controls,
		Accounts: &account.Manager{Store: st}, Destinations: &routing.Manager{Store: st, Deliveries: q, Keys: keys}}
	if edit != nil {
		edit(&cfg)
	}
	srv := httptest.NewServer(admin.NewServer(cfg))
	t.Cleanup(srv.Close)
	return &harness{pool: pool, store: st, url: srv.URL}
}

const (
	accountA = "AC0123456789abcdef0123456789abcdef"
	accountB = "ACfedcba9876543210fedcba9876543210"
)

// insert stores an inbound message from, to, in account and returns its sid.
func (f *harness) insert(t *testing.T, from, to, account string) string {
	t.Helper()
	sid := fixture.SID()
	_, inserted, err := f.store.InsertInboundMessage(t.Context(), fixture.Between(sid, from, to, account))
	if err != nil || !inserted {
		t.Fatalf("insert: %v %v", inserted, err)
	}
	return sid
}

type page struct {
	Messages []struct {
		SID        string    `json:"sid"`
		Direction  string    `json:"direction"`
		From       string    `json:"from"`
		To         string    `json:"to"`
		AccountSID string    `json:"account_sid"`
		Status     string    `json:"status"`
		ReceivedAt time.Time `json:"received_at"`
	} `json:"messages"`
	NextCursor *string `json:"next_cursor"`
}

func (f *harness) get(t *testing.T, query string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(f.url + "/api/messages?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// all pages through query and returns every sid, in order.
func (f *harness) all(t *testing.T, query url.Values) []string {
	t.Helper()
	var sids []string
	for {
		st, _, body := f.get(t, query.Encode())
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", query.Encode(), st, body)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			sids = append(sids, m.SID)
		}
		if p.NextCursor == nil {
			return sids
		}
		query.Set("cursor", *p.NextCursor)
	}
}

// TestPagingWhileMessagesArriveSkipsAndRepeatsNothing: 300 messages, paged
// 7 at a time while another 300 arrive: every one of the first 300 is seen
// exactly once, in newest-first order.
func TestPagingWhileMessagesArriveSkipsAndRepeatsNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var before []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			sid := f.insert(t, fmt.Sprintf("+1555000%04d", i), "+15550009999", accountA)
			mu.Lock()
			before = append(before, sid)
			mu.Unlock()
		})
	}
	wg.Wait()

	ctx, stop := context.WithCancel(t.Context())
	var arrived atomic.Int64
	var arrivals sync.WaitGroup
	for range 4 {
		arrivals.Go(func() {
			for ctx.Err() == nil && arrived.Add(1) <= 300 {
				f.insert(t, "+15551112222", "+15550009999", accountA)
			}
		})
	}
	seen := f.all(t, url.Values{"limit": {"7"}})
	stop()
	arrivals.Wait()

	count := map[string]int{}
	for _, sid := range seen {
		count[sid]++
		if count[sid] > 1 {
			t.Fatalf("%s seen twice", sid)
		}
	}
	for _, sid := range before {
		if count[sid] != 1 {
			t.Fatalf("%s, stored before paging began, seen %d times", sid, count[sid])
		}
	}
	// Newest first: (received_at, id) never rises along the pages.
	var rows []struct {
		at time.Time
		id int64
	}
	for _, sid := range seen {
		var r struct {
			at time.Time
			id int64
		}
		if err := f.pool.QueryRow(t.Context(), `SELECT received_at, id FROM messages WHERE metadata->>'message_sid' = $1`, sid).Scan(&r.at, &r.id); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		if b.at.After(a.at) || b.at.Equal(a.at) && b.id > a.id {
			t.Fatalf("row %d (%v, %d) is newer than row %d (%v, %d)", i, b.at, b.id, i-1, a.at, a.id)
		}
	}
}

// TestEachFilterSelectsExactlyItsMessages: each filter alone and some
// together, against the sids they must return, across pages.
func TestEachFilterSelectsExactlyItsMessages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	a1 := f.insert(t, "+15550000001", "+15550000100", accountA)
	a2 := f.insert(t, "+15550000002", "+15550000100", accountA)
	a3 := f.insert(t, "+15550000001", "+15550000200", accountB)
	wa := f.insert(t, "whatsapp:+15550000003", "whatsapp:+15550000100", accountB)
	out := fixture.SID()
	if _, err := f.store.RecordStatus(ctx, message.StatusCallback{MessageSID: out, Status: "delivered", Params: message.Params{},
		AccountSID: accountA, From: "+15550000100", To: "+15550000001"}); err != nil {
		t.Fatal(err)
	}
	// Spread the arrivals an hour apart, a1 the oldest, out the newest.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, sid := range []string{a1, a2, a3, wa, out} {
		if _, err := f.pool.Exec(ctx, `UPDATE messages SET received_at = $2 WHERE metadata->>'message_sid' = $1`, sid, base.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.pool.Exec(ctx, `UPDATE messages SET metadata = jsonb_set(metadata, '{source}', '"reconcile"') WHERE metadata->>'message_sid' = $1`, a2); err != nil {
		t.Fatal(err)
	}
	at := func(i int) string { return base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339) }
	cases := []struct {
		query url.Values
		want  []string // newest first
	}{
		{url.Values{}, []string{out, wa, a3, a2, a1}},
		{url.Values{"direction": {"inbound"}}, []string{wa, a3, a2, a1}},
		{url.Values{"direction": {"outbound"}}, []string{out}},
		{url.Values{"status": {"delivered"}}, []string{out}},
		{url.Values{"status": {"received"}}, []string{wa, a3, a2, a1}},
		{url.Values{"from": {"+15550000001"}}, []string{a3, a1}},
		{url.Values{"from": {"whatsapp:+15550000003"}}, []string{wa}},
		{url.Values{"to": {"+15550000100"}}, []string{a2, a1}},
		{url.Values{"to": {"+15550000001"}}, []string{out}},
		{url.Values{"account_sid": {accountB}}, []string{wa, a3}},
		{url.Values{"account_sid": {accountA}, "direction": {"inbound"}}, []string{a2, a1}},
		{url.Values{"from": {"+15550000001"}, "account_sid": {accountA}}, []string{a1}},
		{url.Values{"from": {"+15550000001"}, "to": {"+15550000200"}}, []string{a3}},
		{url.Values{"to": {"+15550000100"}, "account_sid": {accountB}}, []string{}},
		{url.Values{"since": {at(1)}}, []string{out, wa, a3, a2}},
		{url.Values{"until": {at(1)}}, []string{a1}},
		{url.Values{"since": {at(1)}, "until": {at(3)}}, []string{a3, a2}},
		{url.Values{"from": {"+15550000001"}, "since": {at(1)}}, []string{a3}},
		{url.Values{"from": {"+19999999999"}}, []string{}},
		{url.Values{"number": {"+15550000001"}}, []string{out, a3, a1}},
		{url.Values{"number": {"+15550000100"}}, []string{out, a2, a1}},
		{url.Values{"number": {"+15550000001"}, "account_sid": {accountB}}, []string{a3}},
		{url.Values{"number": {"+15550000001"}, "until": {at(3)}}, []string{a3, a1}},
		{url.Values{"source": {"reconcile"}}, []string{a2}},
		{url.Values{"source": {"webhook"}}, []string{out, wa, a3, a1}},
		{url.Values{"source": {"reconcile"}, "number": {"+15550000002"}}, []string{a2}},
		{url.Values{"forward": {"none"}}, []string{out, wa, a3, a2, a1}},
		{url.Values{"forward": {"failed"}}, []string{}},
	}
	for _, c := range cases {
		for _, limit := range []string{"1", "2", "500"} {
			q := url.Values{"limit": {limit}}
			for k, v := range c.query {
				q[k] = v
			}
			got := f.all(t, q)
			if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Errorf("%s: got %v, want %v", q.Encode(), got, c.want)
			}
		}
	}
}

// TestBadParametersAre400ProblemsNamingTheParameter, and change nothing.
func TestBadParametersAre400ProblemsNamingTheParameter(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cases := map[string]string{
		"colour=red":                 "colour",
		"limit=0":                    "limit",
		"limit=501":                  "limit",
		"limit=ten":                  "limit",
		"limit=5&limit=6":            "limit",
		"direction=sideways":         "direction",
		"status=Delivered":           "status",
		"account_sid=AC123":          "account_sid",
		"from=":                      "from",
		"since=yesterday":            "since",
		"until=2026-13-01T00:00:00Z": "until",
		"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z": "until",
		"cursor=not-a-cursor":         "cursor",
		"cursor=" + "bm9wZQ":          "cursor",
		"from=%zz":                    "from",
		"from=%00":                    "from",
		"to=%2B1555%00":               "to",
		"number=%2B1555&from=%2B1556": "number",
		"source=api":                  "source",
		"forward=lost":                "forward",
		"forward=failed,,cancelled":   "forward",
		// PostgreSQL's timestamps end in 294276 AD and start in 4713 BC.
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("-9223372036854775807.1")): "cursor",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("9223372036854775807.1")):  "cursor",
	}
	for query, param := range cases {
		st, h, body := f.get(t, query)
		var p struct {
			Status int    `json:"status"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
			Param  string `json:"param"`
		}
		if err := json.Unmarshal(body, &p); err != nil || st != http.StatusBadRequest || h.Get("Content-Type") != "application/problem+json" ||
			p.Status != 400 || p.Param != param || p.Detail == "" {
			t.Errorf("?%s: %d %s %s, want 400 problem+json about %q", query, st, h.Get("Content-Type"), body, param)
		}
	}
	for path, want := range map[string]int{
		"/api/messages/SM1": 400,
		"/api/messages/SMffffffffffffffffffffffffffffffff": 404,
		"/api/nothing": 404,
	} {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: %d %s, want %d problem+json", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
}
