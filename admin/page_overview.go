package admin

import (
	"context"
	"net/http"
	"time"

	"inbox/overview"
	"inbox/store"
	"inbox/tally"
)

// Counts are the per-minute counts the overview charts (store.Store).
type Counts interface {
	Counts(ctx context.Context, since time.Time, bucket time.Duration) ([]tally.Count, error)
	LastCounted(ctx context.Context, since time.Time, series, labels []string) (time.Time, error)
}

// overviewView is what the Overview page shows.
type overviewView struct {
	overview.Page
	Error string
}

// overviewPage answers GET /: health in words, and the window's charts
// (?window=1h, 24h or 7d).
func (c *console) overviewPage(w http.ResponseWriter, r *http.Request) error {
	win, err := overview.WindowNamed(r.URL.Query().Get("window"))
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "overview", "overview", "Overview",
			overviewView{Page: overview.Page{Windows: overview.Windows()}, Error: "The window is " + err.Error() + "."})
		return nil
	}
	in, err := c.overviewInput(r.Context(), win, time.Now())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "overview", "overview", "Overview", overviewView{Page: overview.Build(in)})
	return nil
}

// overviewInput reads what the overview is built from: the window's counts,
// the last day's per minute, when Twilio was last heard from, and each
// destination's state.
func (c *console) overviewInput(ctx context.Context, win overview.Window, now time.Time) (overview.Input, error) {
	in := overview.Input{Now: now, Window: win}
	var err error
	if in.Counts, err = c.cfg.Counts.Counts(ctx, win.Since(now), win.Bucket); err != nil {
		return in, err
	}
	day := overview.Window{Span: 24 * time.Hour, Bucket: time.Minute}
	if in.Day, err = c.cfg.Counts.Counts(ctx, day.Since(now), time.Minute); err != nil {
		return in, err
	}
	if in.LastReached, err = c.cfg.Counts.LastCounted(ctx, now.Add(-8*24*time.Hour), overview.ReachedSeries(), overview.ReachedLabels()); err != nil {
		return in, err
	}
	if c.cfg.Controls.Processing() {
		st, err := c.cfg.Controls.State(ctx)
		if err != nil {
			return in, err
		}
		var waiting int64
		for _, n := range st.Unfinished {
			waiting += n
		}
		in.Destinations = append(in.Destinations, overview.Destination{Name: store.DefaultDestination, PausedReason: st.PausedReason,
			PausedDetail: st.PausedDetail, PausedAt: st.PausedAt, Waiting: waiting, Lag: st.Lag})
	}
	ds, err := c.cfg.Destinations.List(ctx)
	if err != nil {
		return in, err
	}
	for _, d := range ds {
		in.Destinations = append(in.Destinations, overview.Destination{Name: d.Name, PausedReason: d.PausedReason,
			PausedDetail: d.PausedDetail, PausedAt: d.PausedAt, Waiting: d.Waiting, Lag: d.Lag})
	}
	return in, nil
}
