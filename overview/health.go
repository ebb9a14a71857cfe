package overview

import (
	"fmt"
	"strings"
	"time"

	"inbox/tally"
)

// A Line of health is a problem in words and what to do about it.
type Line struct {
	Text string
	Do   string
	// Link, when set, is where to act or read more; LinkText names it.
	Link, LinkText string
}

// Destination is what the health and the deliveries' table need of a
// destination (routing.Summary; "default" for FORWARD_URL's).
type Destination struct {
	Name         string
	PausedReason string // "", "operator" or "breaker"
	PausedDetail string
	PausedAt     *time.Time
	Waiting      int64
	Lag          time.Duration // how long the oldest waiting delivery has waited
}

// The thresholds of the health lines.
const (
	// quietAfter: Twilio not heard from for this long, when it usually is,
	// is said.
	quietAfter = 15 * time.Minute
	// usualHours: it usually is when it was in this many of the last 24
	// hours.
	usualHours = 4
	// behindAfter: a destination whose oldest delivery has waited this
	// long is said to be behind.
	behindAfter = 5 * time.Minute
)

// ReachedSeries and ReachedLabels are what LastReached must be read over:
// a message or a status callback from Twilio itself, not a sweep's.
func ReachedSeries() []string { return []string{tally.Received, tally.Duplicate, tally.Status} }

// ReachedLabels: see ReachedSeries.
func ReachedLabels() []string {
	return []string{tally.FromWebhook, tally.FromEventStream, "new", "duplicate"}
}

// health says what is wrong, in words, from the last 24 hours' counts per
// minute (day), when Twilio last reached the service, and each
// destination's state; nothing when all is well.
func health(now time.Time, day []tally.Count, lastReached time.Time, dests []Destination) []Line {
	var ls []Line
	if l, ok := quiet(now, day, lastReached); ok {
		ls = append(ls, l)
	}
	hourAgo := now.Add(-time.Hour)
	if n := sums(day, tally.Received, hourAgo, now, nil)[tally.FromReconcile]; n > 0 {
		ls = append(ls, Line{Text: fmt.Sprintf("Reconciliation found %s whose webhooks never arrived in the last hour.", plural(n, "message", "messages")),
			Do: "Twilio could not reach the service, or was refused: check that PUBLIC_BASE_URL answers from the internet, with a valid TLS certificate (docs/troubleshooting.md)."})
	}
	ls = append(ls, refusals(now, day)...)
	for _, d := range dests {
		ls = append(ls, destinationLines(now, day, d)...)
	}
	failed := sums(day, tally.MediaFailed, hourAgo, now, nil)
	if n := total(failed); n > 0 {
		reasons := labels(failed)
		ls = append(ls, Line{Text: fmt.Sprintf("%s of media failed in the last hour (%s).", plural(n, "fetch", "fetches"), strings.Join(reasons, ", ")),
			Do: "unauthorized: the account's token is wrong; not_ready: Twilio had not made the medium yet (retried); the others are retried and given up after ten."})
	}
	return ls
}

// quiet says Twilio has not reached the service for a while, when it
// usually does.
func quiet(now time.Time, day []tally.Count, lastReached time.Time) (Line, bool) {
	hours := map[time.Time]bool{}
	for _, c := range day {
		if isReach(c) {
			hours[c.Minute.Truncate(time.Hour)] = true
		}
	}
	since := now.Sub(lastReached.Add(time.Minute)) // the minute's end
	if lastReached.IsZero() || len(hours) < usualHours || since < quietAfter {
		return Line{}, false
	}
	return Line{Text: fmt.Sprintf("Twilio has not reached the service for %s; it did in %d of the last 24 hours.", ago(since), len(hours)),
		Do: "Check Twilio's debugger (Monitor → Errors) for 11200 errors, that the number's webhook is PUBLIC_BASE_URL/twilio/messages, and that the service is reachable from the internet (docs/troubleshooting.md)."}, true
}

func isReach(c tally.Count) bool {
	switch c.Series {
	case tally.Received, tally.Duplicate:
		return c.Label == tally.FromWebhook || c.Label == tally.FromEventStream
	case tally.Status:
		return c.Label != tally.FromReconcile
	}
	return false
}

// refusals says which refusals of the last hour point at a setting.
func refusals(now time.Time, day []tally.Count) []Line {
	hourAgo := now.Add(-time.Hour)
	by := sums(day, tally.Refused, hourAgo, now, RefusalGroup)
	var ls []Line
	if n := by[RefusedSignature]; n > 0 {
		ls = append(ls, Line{Text: fmt.Sprintf("%s refused since %s.", plural(n, "signature", "signatures"), clock(firstSince(day, tally.Refused, hourAgo, RefusedSignature))),
			Do: "PUBLIC_BASE_URL is probably not the URL Twilio calls (behind a proxy: its scheme, host and path exactly as configured at Twilio), or the auth token is not the account's (docs/troubleshooting.md)."})
	}
	if n := by[RefusedAccount]; n > 0 {
		ls = append(ls, Line{Text: fmt.Sprintf("%s for an account this service does not take, since %s.", plural(n, "delivery", "deliveries"), clock(firstSince(day, tally.Refused, hourAgo, RefusedAccount))),
			Do:   "Add the account (inbox accounts add AC…), enable it, or give the service the ENCRYPTION_KEY its token was sealed with; Twilio retries meanwhile.",
			Link: "/accounts", LinkText: "Accounts"})
	}
	return ls
}

// firstSince is the first minute since from in which series counted a
// label of group.
func firstSince(day []tally.Count, series string, from time.Time, group string) time.Time {
	var first time.Time
	for _, c := range day {
		if c.Series == series && !c.Minute.Before(from) && RefusalGroup(c.Label) == group && (first.IsZero() || c.Minute.Before(first)) {
			first = c.Minute
		}
	}
	return first
}

// destinationLines says what is wrong with one destination.
func destinationLines(now time.Time, day []tally.Count, d Destination) []Line {
	var ls []Line
	link, name := "/destinations/"+d.Name, "destination "+d.Name
	if d.Name == "default" {
		link, name = "/forwarding", "forwarding to FORWARD_URL"
	}
	switch d.PausedReason {
	case "breaker":
		ls = append(ls, Line{Text: fmt.Sprintf("The %s is paused by its breaker since %s: %s", name, clockPtr(d.PausedAt), strings.TrimSuffix(d.PausedDetail, ".")+"."),
			Do: "Its app kept failing. Fix the app, then resume; the deliveries that waited are sent then.", Link: link, LinkText: "Resume it"})
	case "operator":
		ls = append(ls, Line{Text: fmt.Sprintf("The %s is paused by an operator since %s.", name, clockPtr(d.PausedAt)),
			Do: "Its deliveries wait until it is resumed.", Link: link, LinkText: "Resume it"})
	default:
		if d.Waiting > 0 && d.Lag >= behindAfter {
			ls = append(ls, Line{Text: fmt.Sprintf("The %s is %s behind: %s waiting.", name, ago(d.Lag), plural(d.Waiting, "delivery", "deliveries")),
				Do: "Its app answers slowly or fails and is retried, or its rate is too low for the traffic.", Link: link, LinkText: "See it"})
		}
	}
	if n := sums(day, tally.Failed, now.Add(-time.Hour), now, nil)[d.Name]; n > 0 {
		ls = append(ls, Line{Text: fmt.Sprintf("%s to the %s failed for good in the last hour.", plural(n, "delivery", "deliveries"), name),
			Do: "Its app refused them (4xx) or they ran out of attempts: read why in each message's story, fix, then retry them.", Link: link, LinkText: "See it"})
	}
	return ls
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("15:04") + " UTC"
}

func clockPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return clock(*t)
}

// ago says a duration as an operator reads it.
func ago(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
