// Package overview turns the per-minute counts (package tally) and the
// state of forwarding and of each destination into what the console's
// first page shows: health, in words, each line with what to do, and the
// charts of a window. It reads nothing itself and renders nothing: admin
// asks the store and draws the result.
package overview

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"inbox/tally"
)

// A Window is a span the overview charts, with the width of its bars.
type Window struct {
	Name   string // as in the URL: 1h, 24h, 7d
	Label  string // as on the page
	Span   time.Duration
	Bucket time.Duration
}

// Windows are the spans offered, the first the default.
func Windows() []Window {
	return []Window{
		{Name: "1h", Label: "Last hour", Span: time.Hour, Bucket: time.Minute},
		{Name: "24h", Label: "Last 24 hours", Span: 24 * time.Hour, Bucket: 15 * time.Minute},
		{Name: "7d", Label: "Last 7 days", Span: 7 * 24 * time.Hour, Bucket: time.Hour},
	}
}

// WindowNamed returns the window called name, or an error that lists the
// names offered.
func WindowNamed(name string) (Window, error) {
	ws := Windows()
	if name == "" {
		return ws[0], nil
	}
	names := make([]string, len(ws))
	for i, w := range ws {
		if w.Name == name {
			return w, nil
		}
		names[i] = w.Name
	}
	return Window{}, fmt.Errorf("window %q: want one of %s", name, strings.Join(names, ", "))
}

// Since is the start of the window's first bar when the window ends at
// now: the bars are whole buckets, the last one holding now.
func (w Window) Since(now time.Time) time.Time {
	return now.UTC().Truncate(w.Bucket).Add(w.Bucket - w.Span)
}

// Buckets are the starts of the window's bars.
func (w Window) Buckets(now time.Time) []time.Time {
	since := w.Since(now)
	n := int(w.Span / w.Bucket)
	bs := make([]time.Time, n)
	for i := range bs {
		bs[i] = since.Add(time.Duration(i) * w.Bucket)
	}
	return bs
}

// The refusal groups charted, from the api's refusal codes.
const (
	RefusedSignature = "signature"
	RefusedAccount   = "unknown account"
	RefusedRequest   = "bad request"
)

// RefusalGroup is the group a refusal code is charted in: the signature's
// (signature_…), the account's (account_unknown, _disabled, _unreadable),
// or a request Twilio would not send (every other).
func RefusalGroup(code string) string {
	switch {
	case strings.HasPrefix(code, "signature_"):
		return RefusedSignature
	case strings.HasPrefix(code, "account_") && code != "account_sid_invalid":
		return RefusedAccount
	}
	return RefusedRequest
}

// sums adds counts of series by label (through group, when set) over
// [from, to).
func sums(cs []tally.Count, series string, from, to time.Time, group func(string) string) map[string]int64 {
	out := map[string]int64{}
	for _, c := range cs {
		if c.Series != series || c.Minute.Before(from) || !c.Minute.Before(to) {
			continue
		}
		l := c.Label
		if group != nil {
			l = group(l)
		}
		out[l] += c.N
	}
	return out
}

// total adds the values of m.
func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// labels returns m's keys, sorted.
func labels(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Input is what Build needs: the counts, read by the caller, and the
// destinations' state.
type Input struct {
	Now    time.Time
	Window Window
	// Counts are the window's, per Window.Bucket (store.Counts).
	Counts []tally.Count
	// Day is the last 24 hours', per minute: the health is computed from it.
	Day []tally.Count
	// LastReached is the last minute Twilio reached the service, over the
	// last eight days (ReachedSeries); zero: not in that time.
	LastReached time.Time
	// Destinations are every destination's state, FORWARD_URL's as
	// "default" when it is set.
	Destinations []Destination
}

// Page is the overview.
type Page struct {
	Window  Window
	Windows []Window
	Health  []Line
	Charts  []Chart
	// Deliveries are the charts of each destination's deliveries, with
	// each destination's row of figures.
	Deliveries []DestinationChart
}

// DestinationChart is a destination's deliveries: its chart, how many
// wait and since when, and the mean lag of its deliveries in the window.
type DestinationChart struct {
	Destination
	Chart    Chart
	MeanLag  time.Duration
	Received int64 // delivered in the window
}

// maxDestinationCharts bounds the charts of the page, whatever the number
// of destinations: the rest are on the Destinations page.
const maxDestinationCharts = 20

// Build makes the overview of in.
func Build(in Input) Page {
	w, now := in.Window, in.Now
	p := Page{Window: w, Windows: Windows(), Health: health(now, in.Day, in.LastReached, in.Destinations)}
	sources := []string{tally.FromWebhook, tally.FromEventStream, tally.FromReconcile}
	p.Charts = []Chart{
		newChart("received", "Messages received, by source", w, now, sources, values(in.Counts, w, now, tally.Received, nil)),
		newChart("duplicates", "Duplicate deliveries dropped", w, now, sources[:2], values(in.Counts, w, now, tally.Duplicate, nil)),
		newChart("refused", "Deliveries refused, by reason", w, now, []string{RefusedSignature, RefusedAccount, RefusedRequest},
			values(in.Counts, w, now, tally.Refused, RefusalGroup)),
		newChart("statuses", "Status callbacks", w, now, []string{"new", "duplicate", tally.FromReconcile}, values(in.Counts, w, now, tally.Status, nil)),
		newChart("media", "Media", w, now, []string{"kept", "failed"}, map[string][]int64{
			"kept":   values(in.Counts, w, now, tally.MediaKept, nil)[""],
			"failed": merged(values(in.Counts, w, now, tally.MediaFailed, nil)),
		}),
	}
	outcomes := []string{tally.Delivered, tally.Retrying, tally.Failed}
	byOutcome := map[string]map[string][]int64{} // by destination, once for all of them
	for _, s := range outcomes {
		byOutcome[s] = values(in.Counts, w, now, s, nil)
	}
	lags := sums(in.Counts, tally.LagMS, w.Since(now), now.Add(w.Bucket), nil)
	for i, d := range in.Destinations {
		if i == maxDestinationCharts {
			break
		}
		vals := map[string][]int64{}
		for _, s := range outcomes {
			vals[s] = byOutcome[s][d.Name]
		}
		dc := DestinationChart{Destination: d, Chart: newChart("deliveries-"+d.Name, "Deliveries to "+d.Name, w, now, outcomes, vals)}
		dc.Received = dc.Chart.Series[0].Total
		if dc.Received > 0 {
			dc.MeanLag = time.Duration(lags[d.Name]/dc.Received) * time.Millisecond
		}
		p.Deliveries = append(p.Deliveries, dc)
	}
	return p
}

// merged adds every label's values into one.
func merged(by map[string][]int64) []int64 {
	var out []int64
	for _, v := range by {
		if out == nil {
			out = make([]int64, len(v))
		}
		for i, x := range v {
			out[i] += x
		}
	}
	return out
}
