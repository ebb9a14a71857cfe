package overview

import (
	"fmt"
	"strings"
	"time"

	"inbox/tally"
)

// A Chart is a stacked bar chart of some series over a window's bars, laid
// out for admin's template to draw as SVG; its Series are also its legend
// and the table of its numbers, for whoever cannot see it. Each series has
// a pattern as well as a colour, so it reads without colour too.
type Chart struct {
	ID     string // unique in the page: its patterns are named after it
	Title  string
	Desc   string // the text alternative: what the chart says, in a sentence
	Unit   string // what a bar counts: "per minute", "per hour"
	Series []Series
	Bars   []Bar
	XTicks []Tick
	YTicks []Tick
	// Buckets are the bars' starts, for the table.
	Buckets []time.Time
	Width   int
	Height  int
	Empty   bool // nothing counted in the window
}

// Series is one stacked layer: its name, pattern (0 to Patterns-1), total
// over the window and value per bar.
type Series struct {
	Name    string
	Pattern int
	Total   int64
	Values  []int64
}

// Bar is one series' part of one bar, in the SVG's coordinates.
type Bar struct {
	X, Y, W, H float64
	Pattern    int
	Title      string // "09:41: 12 webhook"
}

// Tick is a labelled position on an axis.
type Tick struct {
	Pos   float64
	Label string
}

// Patterns is how many fills a chart has (admin's template defines them).
const Patterns = 5

// The chart's layout, in SVG units.
const (
	chartWidth  = 720
	chartHeight = 180
	padLeft     = 48
	padRight    = 8
	padTop      = 8
	padBottom   = 22
)

// values returns, for series, each label's (through group, when set) count
// per bar of w ending at now.
func values(cs []tally.Count, w Window, now time.Time, series string, group func(string) string) map[string][]int64 {
	since := w.Since(now)
	n := int(w.Span / w.Bucket)
	out := map[string][]int64{}
	for _, c := range cs {
		if c.Series != series || c.Minute.Before(since) {
			continue
		}
		i := int(c.Minute.Sub(since) / w.Bucket)
		if i >= n {
			continue
		}
		l := c.Label
		if group != nil {
			l = group(l)
		}
		if out[l] == nil {
			out[l] = make([]int64, n)
		}
		out[l][i] += c.N
	}
	return out
}

// newChart lays out the stacked bars of series over w's bars ending at
// now; names are the series in stacking order, each given its values
// (missing: none counted).
func newChart(id, title string, w Window, now time.Time, names []string, vals map[string][]int64) Chart {
	buckets := w.Buckets(now)
	c := Chart{ID: id, Title: title, Unit: "per " + unitOf(w.Bucket), Buckets: buckets, Width: chartWidth, Height: chartHeight}
	stack := make([]int64, len(buckets))
	for i, name := range names {
		v := vals[name]
		if v == nil {
			v = make([]int64, len(buckets))
		}
		s := Series{Name: name, Pattern: i % Patterns, Values: v}
		for j, x := range v {
			s.Total += x
			stack[j] += x
		}
		c.Series = append(c.Series, s)
	}
	top := niceCeil(max(slicesMax(stack), 1))
	plotW, plotH := float64(chartWidth-padLeft-padRight), float64(chartHeight-padTop-padBottom)
	slot := plotW / float64(len(buckets))
	gap := 0.0
	if slot > 4 {
		gap = slot * 0.15
	}
	base := make([]float64, len(buckets))
	for _, s := range c.Series {
		for j, x := range s.Values {
			if x == 0 {
				continue
			}
			h := float64(x) / float64(top) * plotH
			base[j] += h
			c.Bars = append(c.Bars, Bar{X: padLeft + float64(j)*slot + gap/2, Y: padTop + plotH - base[j], W: slot - gap, H: h,
				Pattern: s.Pattern, Title: fmt.Sprintf("%s: %d %s", stamp(buckets[j], w), x, s.Name)})
		}
	}
	for _, f := range []int64{0, top / 2, top} {
		c.YTicks = append(c.YTicks, Tick{Pos: padTop + plotH - float64(f)/float64(top)*plotH, Label: fmt.Sprint(f)})
	}
	every := max(1, len(buckets)/6)
	for j := 0; j < len(buckets); j += every {
		c.XTicks = append(c.XTicks, Tick{Pos: padLeft + float64(j)*slot, Label: stamp(buckets[j], w)})
	}
	c.Empty, c.Desc = describe(c, w)
	return c
}

// describe says what c shows in a sentence, and whether it is empty.
func describe(c Chart, w Window) (bool, string) {
	var parts []string
	var all int64
	for _, s := range c.Series {
		parts = append(parts, fmt.Sprintf("%d %s", s.Total, s.Name))
		all += s.Total
	}
	if all == 0 {
		return true, fmt.Sprintf("%s, %s: none.", c.Title, strings.ToLower(w.Label))
	}
	return false, fmt.Sprintf("%s, %s, %s: %s.", c.Title, strings.ToLower(w.Label), c.Unit, strings.Join(parts, ", "))
}

// stamp is how a bar's start reads on the axis and in its title.
func stamp(t time.Time, w Window) string {
	if w.Bucket >= time.Hour {
		return t.Format("Mon 15:04")
	}
	return t.Format("15:04")
}

func unitOf(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	}
	return fmt.Sprintf("%d minutes", int(d/time.Minute))
}

// niceCeil is the least of 1, 2, 5 × 10ⁿ at or above n, so the axis reads
// in round numbers.
func niceCeil(n int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

func slicesMax(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
