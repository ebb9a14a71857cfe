package simulate_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"inbox/simulate"
	"inbox/twilio"
)

// TestOverridesRetryAsTwilioWould: with rc=2&rp=5xx in the configured URL's
// fragment, a delivery answered 503 is sent again, signed over the URL
// without the fragment (Twilio leaves it out of the signature); without
// overrides, the 503 is the last word.
func TestOverridesRetryAsTwilioWould(t *testing.T) {
	t.Parallel()
	const token = "simulate-test-token"
	validator, err := twilio.NewValidator(token, "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		form := twilio.FormFromValues(r.PostForm)
		if !validator.Valid("http://hooks.example.com"+r.URL.Path, form, r.Header.Get(twilio.SignatureHeader)) {
			t.Errorf("signature does not cover the URL without its fragment")
			w.WriteHeader(http.StatusForbidden)
			return
		}
		mu.Lock()
		seen[r.PostForm.Get("MessageSid")]++
		first := seen[r.PostForm.Get("MessageSid")] == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	opts := simulate.Options{BaseURL: srv.URL, PublicBaseURL: "http://hooks.example.com", Token: token,
		Messages: 6, Repeats: 1, Concurrency: 3, Overrides: "rc=2&rp=5xx"}
	res, err := simulate.Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Statuses[200] != 6 || res.Retries != 6 {
		t.Fatalf("with rc=2&rp=5xx: answers %v, %d retries; want 6 × 200 after 6 retries", res.Statuses, res.Retries)
	}

	opts.Overrides = ""
	res, err = simulate.Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Statuses[503] != 6 || res.Retries != 0 {
		t.Fatalf("without overrides: answers %v, %d retries; want 6 × 503 and none retried", res.Statuses, res.Retries)
	}

	for _, bad := range []string{"rc=9", "rp=3xx", "retry=1"} {
		opts.Overrides = bad
		if _, err := simulate.Run(t.Context(), opts); err == nil {
			t.Fatalf("overrides %q accepted", bad)
		}
	}
}
