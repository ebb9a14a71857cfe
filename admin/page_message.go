package admin

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/gorilla/mux"

	"inbox/media"
	"inbox/store"
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

// Media reads the media kept (store.Store), for the console.
type Media interface {
	MediaOf(ctx context.Context, sid string) ([]store.Medium, error)
	MediumToServe(ctx context.Context, id int64) (store.MediumToServe, error)
	MediumReader(ctx context.Context, id, size int64) io.ReadSeeker
}

// mediumPage answers GET /messages/{sid}/media/{position}: a kept
// medium's bytes, through the session, as the public listener serves
// them to apps (media.ServeKept): the console never sends the browser to
// Twilio, nor needs its credentials.
func (c *console) mediumPage(w http.ResponseWriter, r *http.Request) error {
	sid, err := sidParam(r)
	if err != nil {
		return err
	}
	pos, err := strconv.ParseInt(mux.Vars(r)["position"], 10, 16)
	if err != nil || c.cfg.Media == nil {
		return &apiError{status: http.StatusNotFound, detail: "no such medium"}
	}
	ms, err := c.cfg.Media.MediaOf(r.Context(), sid)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if int64(m.Position) != pos {
			continue
		}
		if m.State != store.MediumKept {
			return &apiError{status: http.StatusNotFound, detail: fmt.Sprintf("medium %d of %s is not kept (%s)", pos, sid, m.State)}
		}
		kept, err := c.cfg.Media.MediumToServe(r.Context(), m.ID)
		if err != nil {
			return err
		}
		media.ServeKept(w, r, kept, c.cfg.Media.MediumReader(r.Context(), m.ID, kept.Size))
		return nil
	}
	return &apiError{status: http.StatusNotFound, detail: fmt.Sprintf("%s has no medium %d", sid, pos)}
}
