package admin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"inbox/routing"
)

// call sends method to path with a JSON body (nil: none) and returns the
// status and the body.
func (f *harness) call(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDestinationsAPI: the operations of the CLI, through the API, with
// the same checks: a made secret is answered once and never again, a URL's
// password never, bad input is a 400 naming the field, a taken name 409,
// a missing one 404, and what is refused changes nothing.
func TestDestinationsAPI(t *testing.T) {
	f := setup(t)
	status, body := f.call(t, http.MethodPost, "/api/destinations", map[string]any{
		"name": "orders", "url": "https://bot:pa55word@orders.example/hook", "to": []string{"+15550000001"}, "events": []string{"inbound"}})
	var made struct {
		Name   string `json:"name"`
		URL    string `json:"url"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(body), &made); status != http.StatusCreated || err != nil || made.Name != "orders" {
		t.Fatalf("POST /api/destinations: %d %s", status, body)
	}
	if routing.CheckSecret(made.Secret) != nil || strings.Contains(body, "pa55word") || made.URL != "https://bot:xxxxx@orders.example/hook" {
		t.Errorf("the answer to an add: %s; want a made secret once and the URL redacted", body)
	}
	for _, path := range []string{"/api/destinations", "/api/destinations/orders"} {
		status, body := f.call(t, http.MethodGet, path, nil)
		if status != http.StatusOK || !strings.Contains(body, `"orders"`) || strings.Contains(body, made.Secret[6:]) || strings.Contains(body, "pa55word") {
			t.Errorf("GET %s: %d %s; want it without its secret", path, status, body)
		}
	}
	refused := []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{http.MethodPost, "/api/destinations", map[string]any{"name": "orders", "url": "https://x.example/"}, http.StatusConflict, "exists"},
		{http.MethodPost, "/api/destinations", map[string]any{"name": "bot", "url": "https://x.example/", "events": []string{"outbound"}}, http.StatusBadRequest, "-events"},
		{http.MethodPost, "/api/destinations", map[string]any{"name": "bot", "url": "ftp://x.example/"}, http.StatusBadRequest, "-url"},
		{http.MethodPost, "/api/destinations", map[string]any{"name": "Bot", "url": "https://x.example/"}, http.StatusBadRequest, "not a destination name"},
		{http.MethodPost, "/api/destinations", map[string]any{"name": "bot", "url": "https://x.example/", "secret": "nope"}, http.StatusBadRequest, "Standard Webhooks"},
		{http.MethodPost, "/api/destinations", "not an object", http.StatusBadRequest, "not the JSON"},
		{http.MethodPatch, "/api/destinations/orders", map[string]any{"to": []string{"555-1234"}}, http.StatusBadRequest, "-to"},
		{http.MethodPatch, "/api/destinations/orders", map[string]any{"rate_per_second": -1}, http.StatusBadRequest, "-rate"},
		{http.MethodPatch, "/api/destinations/nope", map[string]any{}, http.StatusNotFound, "no such destination"},
		{http.MethodDelete, "/api/destinations/nope", nil, http.StatusNotFound, "no such destination"},
		{http.MethodPost, "/api/destinations/nope/pause", map[string]any{}, http.StatusNotFound, "no such destination"},
		{http.MethodPost, "/api/destinations/orders/backfill", map[string]any{"since": "yesterday"}, http.StatusBadRequest, "since must be a duration"},
		{http.MethodPost, "/api/destinations/orders/backfill", map[string]any{"since": "-1h"}, http.StatusBadRequest, "-since"},
		{http.MethodPost, "/api/destinations/orders/backfill", map[string]any{"since": "9000h"}, http.StatusBadRequest, "-since"},
		{http.MethodPost, "/api/destinations/nope/backfill", map[string]any{"since": "1h"}, http.StatusNotFound, "no such destination"},
		{http.MethodGet, "/api/destinations/nope/backfills", nil, http.StatusNotFound, "no such destination"},
		{http.MethodGet, "/api/messages?forward=failed&destination=Not-A-Name", nil, http.StatusBadRequest, "destination must be"},
		{http.MethodPost, "/api/messages/SM00000000000000000000000000000000/forward?destination=nope", nil, http.StatusNotFound, "no destination nope"},
	}
	for _, c := range refused {
		status, body := f.call(t, c.method, c.path, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s; want %d saying %q", c.method, c.path, status, body, c.status, c.want)
		}
	}
	if status, body := f.call(t, http.MethodPatch, "/api/destinations/orders", map[string]any{"to": []string{}, "rate_per_second": 5}); status != http.StatusOK ||
		!strings.Contains(body, `"to":[]`) || !strings.Contains(body, `"events":["inbound"]`) || !strings.Contains(body, `"rate_per_second":5`) {
		t.Errorf("PATCH: %d %s; want the numbers cleared, the events kept, the rate set", status, body)
	}
	// A note that is not printable text (a NUL PostgreSQL refuses, a
	// bidirectional override that would disguise it) is a 400 naming the
	// field, and pauses nothing.
	for _, note := range []string{"dep\x00loy", "deploy \u202egnol"} {
		if status, body := f.call(t, http.MethodPost, "/api/destinations/orders/pause", map[string]any{"note": note}); status != http.StatusBadRequest ||
			!strings.Contains(body, "-note") {
			t.Errorf("pause with note %q: %d %s; want 400 naming the note", note, status, body)
		}
	}
	if _, body := f.call(t, http.MethodGet, "/api/destinations/orders", nil); !strings.Contains(body, `"paused":false`) {
		t.Errorf("a refused pause paused it: %s", body)
	}
	// Pauses at once from several operators: one changes it, the first note stands.
	var wg sync.WaitGroup
	changed := make(chan bool, 8)
	for range 8 {
		wg.Go(func() {
			status, body := f.call(t, http.MethodPost, "/api/destinations/orders/pause", map[string]any{"note": "deploy"})
			if status != http.StatusOK {
				t.Errorf("pause: %d %s", status, body)
			}
			changed <- strings.Contains(body, `"changed":true`)
		})
	}
	wg.Wait()
	close(changed)
	n := 0
	for c := range changed {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of 8 concurrent pauses say they paused it; want 1", n)
	}
	if status, body := f.call(t, http.MethodPost, "/api/destinations/orders/resume", nil); status != http.StatusOK || !strings.Contains(body, `"paused":false`) {
		t.Errorf("resume: %d %s", status, body)
	}
	// A delivery waiting for it: shown, and removing refuses until forced.
	if _, err := f.pool.Exec(t.Context(), `INSERT INTO river_job (args, kind, max_attempts, queue)
		VALUES ('{"sid": "SM00000000000000000000000000000001", "destination": "orders"}', 'inbox_message', 25, 'orders')`); err != nil {
		t.Fatal(err)
	}
	if status, body := f.call(t, http.MethodGet, "/api/destinations/orders", nil); status != http.StatusOK || !strings.Contains(body, `"waiting":1`) {
		t.Errorf("GET with a delivery waiting: %d %s", status, body)
	}
	if status, body := f.call(t, http.MethodDelete, "/api/destinations/orders?force=maybe", nil); status != http.StatusBadRequest {
		t.Errorf("DELETE ?force=maybe: %d %s, want 400", status, body)
	}
	if status, body := f.call(t, http.MethodDelete, "/api/destinations/orders", nil); status != http.StatusConflict || !strings.Contains(body, "1 to orders") {
		t.Errorf("DELETE with a delivery waiting: %d %s, want 409 saying how many", status, body)
	}
	if status, body := f.call(t, http.MethodDelete, "/api/destinations/orders?force=true", nil); status != http.StatusOK || !strings.Contains(body, `"cancelled":1`) {
		t.Errorf("DELETE ?force=true: %d %s", status, body)
	}
	if status, body := f.call(t, http.MethodGet, "/api/destinations", nil); status != http.StatusOK || body != `{"destinations":[]}`+"\n" {
		t.Errorf("after DELETE: %d %q", status, body)
	}
}
