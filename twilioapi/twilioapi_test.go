package twilioapi_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"inbox/internal/twiliotest"
	"inbox/twilioapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	account = "AC0123456789abcdef0123456789abcdef"
	token   = "0123456789abcdef0123456789abcdef"
)

func sid(i int) string { return fmt.Sprintf("SM%032x", i) }

func standIn(t *testing.T, n int, now time.Time) *twiliotest.Server {
	t.Helper()
	s := twiliotest.New()
	t.Cleanup(s.Close)
	s.AddAccount(account, token)
	var ms []twiliotest.Message
	for i := range n {
		ms = append(ms, twiliotest.Message{SID: sid(i), AccountSID: account, From: "+15550000001", To: "+15550000002",
			Body: "hi", Direction: "inbound", Status: "received", Sent: now.Add(-time.Duration(i) * time.Minute)})
	}
	s.Add(ms...)
	return s
}

func client(t *testing.T, base string, opts twilioapi.Options) *twilioapi.Client {
	t.Helper()
	c, err := twilioapi.New(base, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var cred = twilioapi.Credentials{AccountSID: account, Token: token}

// TestPagesAreFollowedToTheEnd: 250 messages in pages of 100 are three
// pages, newest first, each listed once, under the day filter.
func TestPagesAreFollowedToTheEnd(t *testing.T) {
	now := time.Now().UTC()
	s := standIn(t, 250, now)
	c := client(t, s.URL, twilioapi.Options{})
	uri := twilioapi.MessagesURI(account, twilioapi.ListQuery{Since: now.Add(-7 * 24 * time.Hour), PageSize: 100})
	var got []string
	pages := 0
	for uri != "" {
		p, err := c.MessagesPage(t.Context(), cred, uri)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			got = append(got, m.SID)
		}
		uri, pages = p.NextPageURI, pages+1
	}
	if len(got) != 250 || pages != 3 || got[0] != sid(0) || got[249] != sid(249) {
		t.Fatalf("%d messages in %d pages (first %s, last %s); want 250 in 3, newest first", len(got), pages, got[0], got[len(got)-1])
	}
	for token, n := range s.Counts().Listings {
		if n != 1 {
			t.Fatalf("page %q listed %d times", token, n)
		}
	}
}

// TestThrottlesAreRetried: a 429 (Twilio's 20429) with Retry-After is
// waited out and retried; without Retry-After, after a backoff.
func TestThrottlesAreRetried(t *testing.T) {
	now := time.Now().UTC()
	s := standIn(t, 5, now)
	s.ThrottleEvery(2, "0")
	var throttles int
	c := client(t, s.URL, twilioapi.Options{Observe: func(_ int, throttled bool) {
		if throttled {
			throttles++
		}
	}})
	for i := range 5 {
		m, err := c.FetchMessage(t.Context(), cred, sid(i))
		if err != nil || m.SID != sid(i) || m.NumMedia != "0" {
			t.Fatalf("fetch %d: %+v %v", i, m, err)
		}
		if sent, err := m.Sent(); err != nil || sent.Unix() != now.Add(-time.Duration(i)*time.Minute).Unix() {
			t.Fatalf("date_sent %q: %v %v", m.DateSent, sent, err)
		}
	}
	if throttles == 0 || s.Counts().Throttled != throttles {
		t.Fatalf("%d throttles observed, stand-in throttled %d", throttles, s.Counts().Throttled)
	}
	s.ThrottleEvery(1, "") // always, with no Retry-After
	c = client(t, s.URL, twilioapi.Options{MaxRetries: 1})
	start := time.Now()
	_, err := c.FetchMessage(t.Context(), cred, sid(0))
	var e *twilioapi.Error
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.Code != 20429 || time.Since(start) < time.Second {
		t.Fatalf("always throttled: %v after %s, want Twilio's 20429 after a backoff of a second", err, time.Since(start))
	}
}

// TestRefusalsAreTwiliosErrors: a wrong token is 401 with Twilio's code, an
// unknown sid 404; an answer over the bound, one that is not JSON, and a
// next page that leaves the account are errors too.
func TestRefusalsAreTwiliosErrors(t *testing.T) {
	now := time.Now().UTC()
	s := standIn(t, 3, now)
	c := client(t, s.URL, twilioapi.Options{MaxBody: 4096})
	var e *twilioapi.Error
	if _, err := c.FetchMessage(t.Context(), twilioapi.Credentials{AccountSID: account, Token: "wrong"}, sid(0)); !errors.As(err, &e) || e.Status != 401 || e.Code != 20003 {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := c.FetchMessage(t.Context(), cred, sid(99)); !errors.As(err, &e) || e.Status != 404 || e.Code != 20404 {
		t.Fatalf("unknown sid: %v", err)
	}
	first := twilioapi.MessagesURI(account, twilioapi.ListQuery{})
	for name, c2 := range map[string]struct {
		body string
		want string
	}{
		"too large":    {`{"messages": [` + strings.Repeat(`{"sid":"x"},`, 1000) + `{}]}`, "larger than the bound"},
		"not JSON":     {`<html>maintenance</html>`, "not the JSON expected"},
		"no list":      {`{"next_page_uri": null}`, "no messages list"},
		"another host": {`{"messages": [], "next_page_uri": "//evil.example/2010-04-01/Accounts/` + account + `/Messages.json"}`, "not a path under account"},
		"another acct": {`{"messages": [], "next_page_uri": "/2010-04-01/Accounts/ACffffffffffffffffffffffffffffffff/Messages.json?PageToken=x"}`, "not a path under account"},
	} {
		s.Fault(func(*http.Request) (int, string, bool) { return 200, c2.body, true })
		if _, err := c.MessagesPage(t.Context(), cred, first); err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("%s: %v, want %q", name, err, c2.want)
		}
	}
	s.Fault(nil)
	if _, err := c.MessagesPage(t.Context(), cred, "https://evil.example/x"); err == nil {
		t.Fatal("an absolute URL was requested with the account's credentials")
	}
}

// TestAHostileMediaListIsBounded: a Media.json whose next page is itself,
// one that never ends, and one with more media than a webhook may carry
// each end in ErrTooManyMedia after a bounded number of requests, where an
// unbounded loop grew the server to gigabytes.
func TestAHostileMediaListIsBounded(t *testing.T) {
	medium := `{"sid":"ME00000000000000000000000000000000","content_type":"image/png","uri":"/2010-04-01/Accounts/` + account + `/Messages/SM1/Media/ME1.json"}`
	cases := map[string]func(page int) string{
		"its own next page": func(int) string {
			return `{"media_list":[` + medium + `],"next_page_uri":"/2010-04-01/Accounts/` + account + `/Messages/SM1/Media.json?PageSize=100"}`
		},
		"pages without end": func(page int) string {
			return fmt.Sprintf(`{"media_list":[%s],"next_page_uri":"/2010-04-01/Accounts/%s/Messages/SM1/Media.json?Page=%d"}`, medium, account, page+1)
		},
		"a thousand media": func(int) string {
			return `{"media_list":[` + strings.TrimSuffix(strings.Repeat(medium+",", 1000), ",") + `],"next_page_uri":null}`
		},
	}
	for name, page := range cases {
		t.Run(name, func(t *testing.T) {
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := requests.Add(1)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, page(int(n)))
			}))
			t.Cleanup(srv.Close)
			_, err := client(t, srv.URL, twilioapi.Options{}).ListMedia(t.Context(), cred, "SM1")
			if !errors.Is(err, twilioapi.ErrTooManyMedia) || requests.Load() > 10 {
				t.Fatalf("%v after %d requests; want ErrTooManyMedia within 10", err, requests.Load())
			}
		})
	}
}
