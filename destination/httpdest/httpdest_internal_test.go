package httpdest

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfterParsesSecondsAndDatesWithinADay(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"0":         0,
		"5":         5 * time.Second,
		"3600":      time.Hour,
		"999999999": MaxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
		now.Add(72 * time.Hour).Format(http.TimeFormat):   MaxRetryAfter,
	} {
		if got, ok := retryAfter(h, now); !ok || got != want {
			t.Errorf("Retry-After %q: %s %v, want %s", h, got, ok, want)
		}
	}
	for _, h := range []string{"", "-1", "soon", "1.5"} {
		if got, ok := retryAfter(h, now); ok {
			t.Errorf("Retry-After %q: %s, want none", h, got)
		}
	}
}
