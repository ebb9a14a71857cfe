package admin

import (
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"inbox/destination"
	"inbox/message"
	"inbox/routing"
	"inbox/store"
	"inbox/story"
)

// destinationView is what a destination's page shows.
type destinationView struct {
	routing.Summary
	// LastHour counts its deliveries of the last hour's messages, by state.
	LastHour map[string]int64
	// Failed are its failed and cancelled deliveries' messages, newest
	// first; MoreFailed whether more are.
	Failed     []story.Row
	MoreFailed bool
	Backfills  []store.Backfill
}

// destinationsPage answers GET /destinations: every destination, its
// state, rules, rate and backlog.
func (c *console) destinationsPage(w http.ResponseWriter, r *http.Request) error {
	ds, err := c.cfg.Destinations.List(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "destinations", "destinations", "Destinations", ds)
	return nil
}

// destinationPage answers GET /destinations/{name}: one destination, its
// last hour, its failed deliveries with Retry all failed, its backfills,
// and Pause or Resume.
func (c *console) destinationPage(w http.ResponseWriter, r *http.Request) error {
	ctx, name := r.Context(), mux.Vars(r)["name"]
	d, err := c.cfg.Destinations.Get(ctx, name)
	if err != nil {
		return err
	}
	v := destinationView{Summary: d}
	if v.LastHour, err = c.cfg.Destinations.Recent(ctx, name, time.Hour); err != nil {
		return err
	}
	f := message.Filter{Forward: []string{destination.ForwardFailed, destination.ForwardCancelled}, Destination: name, Limit: failingShown + 1}
	if v.Failed, err = c.cfg.Stories.List(ctx, f); err != nil {
		return err
	}
	if len(v.Failed) > failingShown {
		v.Failed, v.MoreFailed = v.Failed[:failingShown], true
	}
	if v.Backfills, err = c.cfg.Destinations.Backfills(ctx, name, 5); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "destination", "destinations", name, v)
	return nil
}

// pauseDestination answers POST /destinations/{name}/pause.
func (c *console) pauseDestination(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	changed, err := c.cfg.Destinations.Pause(r.Context(), name, strings.TrimSpace(r.PostForm.Get("note")))
	if err != nil {
		return err
	}
	return back(w, r, "/destinations/"+name, doneIf(changed, "destination-paused", "unchanged"))
}

// resumeDestination answers POST /destinations/{name}/resume.
func (c *console) resumeDestination(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	changed, err := c.cfg.Destinations.Resume(r.Context(), name)
	if err != nil {
		return err
	}
	return back(w, r, "/destinations/"+name, doneIf(changed, "destination-resumed", "unchanged"))
}
