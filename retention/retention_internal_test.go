package retention

import (
	"testing"
	"time"
)

func TestParseRetentionInDaysOrDurationsOfADayOrMore(t *testing.T) {
	for v, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "36h": 36 * time.Hour} {
		if got, err := ParseRetention(v); err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %s, %v; want %s", v, got, err, want)
		}
	}
	for _, v := range []string{"0d", "12h", "-1d", "ninety days", "d", "99999999d"} {
		if _, err := ParseRetention(v); err == nil {
			t.Errorf("ParseRetention(%q) accepted", v)
		}
	}
}
