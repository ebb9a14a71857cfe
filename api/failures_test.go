package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestFailureLogSummarisesAnOutage: the first failure is logged in full,
// the rest of an interval's failures in one summary, and the end of the
// outage in one line that counts them all.
func TestFailureLogSummarisesAnOutage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := &failureLog{interval: 10 * time.Second, now: func() time.Time { return clock }}
	ctx := context.Background()

	f.succeeded(ctx, logger) // no outage: nothing to say
	for i := range 1000 {
		f.failed(ctx, logger, 503, "database unavailable", errors.New("dial: refused "+string(rune('a'+i%26))))
		clock = clock.Add(15 * time.Millisecond) // 1000 failures over 15 s
	}
	f.succeeded(ctx, logger)
	f.succeeded(ctx, logger)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines for a 15 s outage, want 3 (first, one summary, recovery):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{`"msg":"request failed"`, `"msg":"requests still failing"`, `"msg":"database reachable again"`} {
		if !strings.Contains(lines[i], want) {
			t.Fatalf("line %d = %s, want %s", i, lines[i], want)
		}
	}
	// 10 s after the first failure: the 667 that followed it, then 332 more.
	if !strings.Contains(lines[1], `"failed":667`) || !strings.Contains(lines[1], `"last_err":"dial: refused`) {
		t.Fatalf("summary %s: want the count since the first line and the last error", lines[1])
	}
	if !strings.Contains(lines[2], `"failed_during_outage":1000`) || !strings.Contains(lines[2], `"not_logged":332`) {
		t.Fatalf("recovery line %s: want all 1000 counted, 332 not yet logged", lines[2])
	}
}
