package overview

import (
	"strings"
	"testing"
	"time"

	"inbox/tally"
)

var now = time.Date(2026, 12, 5, 10, 30, 20, 0, time.UTC)

func minute(ago time.Duration) time.Time { return now.Add(-ago).Truncate(time.Minute) }

// usual is a day on which Twilio reached the service every hour until
// last, minutes ago.
func usual(last time.Duration) []tally.Count {
	var cs []tally.Count
	for h := last; h < 24*time.Hour; h += time.Hour {
		cs = append(cs, tally.Count{Minute: minute(h), Series: tally.Received, Label: tally.FromWebhook, N: 3})
	}
	return cs
}

func says(t *testing.T, ls []Line, want string) {
	t.Helper()
	for _, l := range ls {
		if strings.Contains(l.Text, want) {
			return
		}
	}
	t.Errorf("the health does not say %q: %+v", want, ls)
}

// TestEachHealthLineAppearsOnlyWithItsCondition: every line of health is
// said when its condition is in the counts or the destinations' state,
// and nothing is said of a day when all was well.
func TestEachHealthLineAppearsOnlyWithItsCondition(t *testing.T) {
	if ls := health(now, usual(time.Minute), minute(time.Minute), nil); len(ls) != 0 {
		t.Fatalf("a good day: %+v", ls)
	}
	// Twilio usually reaches the service; not for 40 minutes now.
	says(t, health(now, usual(40*time.Minute), minute(40*time.Minute), nil), "Twilio has not reached the service for 39 minutes")
	// A service Twilio rarely reaches is not said to be quiet.
	rare := []tally.Count{{Minute: minute(3 * time.Hour), Series: tally.Received, Label: tally.FromWebhook, N: 1}}
	if ls := health(now, rare, minute(3*time.Hour), nil); len(ls) != 0 {
		t.Errorf("a service rarely reached: %+v", ls)
	}
	day := append(usual(time.Minute),
		tally.Count{Minute: minute(20 * time.Minute), Series: tally.Received, Label: tally.FromReconcile, N: 14},
		tally.Count{Minute: minute(50 * time.Minute), Series: tally.Refused, Label: "signature_mismatch", N: 10},
		tally.Count{Minute: minute(10 * time.Minute), Series: tally.Refused, Label: "signature_missing", N: 8},
		tally.Count{Minute: minute(5 * time.Minute), Series: tally.Refused, Label: "account_unknown", N: 2},
		tally.Count{Minute: minute(5 * time.Minute), Series: tally.MediaFailed, Label: "unauthorized", N: 3},
		tally.Count{Minute: minute(5 * time.Minute), Series: tally.Failed, Label: "orders", N: 4},
		// Over an hour ago: not said.
		tally.Count{Minute: minute(2 * time.Hour), Series: tally.Refused, Label: "malformed_form", N: 5},
	)
	since := minute(12 * time.Minute)
	ls := health(now, day, minute(time.Minute), []Destination{
		{Name: "orders", PausedReason: "breaker", PausedDetail: "its app answers 503", PausedAt: &since},
		{Name: "desk", Waiting: 40, Lag: 9 * time.Minute},
		{Name: "crm", PausedReason: "operator", PausedAt: &since},
		{Name: "fine", Waiting: 3, Lag: time.Second},
	})
	for _, want := range []string{
		"Reconciliation found 14 messages whose webhooks never arrived in the last hour",
		"18 signatures refused since 09:40 UTC",
		"2 deliveries for an account this service does not take, since 10:25 UTC",
		"3 fetches of media failed in the last hour (unauthorized)",
		"The destination orders is paused by its breaker since 10:18 UTC: its app answers 503.",
		"4 deliveries to the destination orders failed for good",
		"The destination desk is 9 minutes behind: 40 deliveries waiting.",
		"The destination crm is paused by an operator",
	} {
		says(t, ls, want)
	}
	if len(ls) != 8 {
		t.Errorf("%d lines, want 8 (nothing of the destination that is fine, nor of the refusals over an hour ago): %+v", len(ls), ls)
	}
}

// TestChartsStackTheWindowsCounts: each bar holds its bucket's counts,
// stacked by series, each series' total in the text alternative; counts
// outside the window are left out.
func TestChartsStackTheWindowsCounts(t *testing.T) {
	w, _ := WindowNamed("1h")
	cs := []tally.Count{
		{Minute: minute(0), Series: tally.Received, Label: tally.FromWebhook, N: 7},
		{Minute: minute(0), Series: tally.Received, Label: tally.FromReconcile, N: 3},
		{Minute: minute(30 * time.Minute), Series: tally.Received, Label: tally.FromEventStream, N: 5},
		{Minute: minute(2 * time.Hour), Series: tally.Received, Label: tally.FromWebhook, N: 100},
		{Minute: minute(0), Series: tally.Refused, Label: "signature_mismatch", N: 2},
		{Minute: minute(0), Series: tally.Refused, Label: "malformed_form", N: 1},
	}
	p := Build(Input{Now: now, Window: w, Counts: cs, Day: cs})
	received := p.Charts[0]
	if len(received.Buckets) != 60 || received.Series[0].Total != 7 || received.Series[1].Total != 5 || received.Series[2].Total != 3 {
		t.Fatalf("received: %d buckets, series %+v", len(received.Buckets), received.Series)
	}
	if received.Desc != "Messages received, by source, last hour, per minute: 7 webhook, 5 event-stream, 3 reconcile." {
		t.Errorf("desc: %q", received.Desc)
	}
	if len(received.Bars) != 3 || received.Bars[0].Title != "10:30: 7 webhook" || received.Bars[0].X != received.Bars[2].X || received.Bars[2].Y+received.Bars[2].H != received.Bars[0].Y {
		t.Errorf("bars: %+v", received.Bars)
	}
	refused := p.Charts[2]
	if refused.Series[0].Total != 2 || refused.Series[2].Total != 1 {
		t.Errorf("refused: %+v", refused.Series)
	}
	if !p.Charts[1].Empty || !strings.HasSuffix(p.Charts[1].Desc, "none.") {
		t.Errorf("duplicates: %+v", p.Charts[1])
	}
	if _, err := WindowNamed("2w"); err == nil || !strings.Contains(err.Error(), "1h, 24h, 7d") {
		t.Errorf("an unknown window: %v", err)
	}
}
