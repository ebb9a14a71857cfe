package admin

import (
	"maps"
	"net/http"
	"slices"

	"inbox/story"
)

// messageView is what a message's page shows: its story, its parameters
// in name order, and whether it can be forwarded again.
type messageView struct {
	story.Story
	Params     [][2]string
	Processing bool
}

// messagePage answers GET /messages/{sid}: the message's story.
func (c *console) messagePage(w http.ResponseWriter, r *http.Request) error {
	sid, err := sidParam(r)
	if err != nil {
		return err
	}
	s, err := c.cfg.Stories.Tell(r.Context(), sid)
	if err != nil {
		return err
	}
	v := messageView{Story: s, Processing: c.cfg.Controls.Processing()}
	params := s.Message.Metadata.Params
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v.Params = append(v.Params, [2]string{k, params[k]})
	}
	c.render(w, r, http.StatusOK, "message", "messages", sid, v)
	return nil
}

// forwardAgain answers POST /messages/{sid}/forward, a Forward again
// button (of a delivery: its form names the destination): a replay, as
// POST /api/messages/{sid}/forward makes.
func (c *console) forwardAgain(w http.ResponseWriter, r *http.Request) error {
	sid, err := sidParam(r)
	if err != nil {
		return err
	}
	_, created, err := c.cfg.Controls.Replay(r.Context(), sid, r.PostFormValue("destination"))
	if err != nil {
		return err
	}
	return back(w, r, "/messages/"+sid, doneIf(created, "forwarded", "pending"))
}
