package media

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"inbox/store"
)

// ServeStore is what serving media needs of the store.
type ServeStore interface {
	MediumToServe(ctx context.Context, id int64) (store.MediumToServe, error)
	MediumReader(ctx context.Context, id, size int64) io.ReadSeeker
}

// fetchOnRequest bounds the fetch a request makes of a medium not kept yet.
const fetchOnRequest = 60 * time.Second

// Server serves media by their download links (GET and HEAD
// PathPrefix+id?expires=…&sig=…), to anyone holding a valid link and to
// no one else: a link tampered with, expired, or of another medium is
// answered 403, the same words whatever the medium, before anything of it
// is read. A medium its job has not kept yet is fetched now (or, when its
// job is fetching it, waited for), so a link works the moment the forward
// carrying it arrives. Served with its stored type, nosniff, a CSP that
// runs nothing, and as an attachment unless it is an image, audio or video
// a browser only displays; ranges are served for large files.
type Server struct {
	links  *Links
	store  ServeStore
	keeper *Keeper
}

// NewServer returns the server of media: links checks them, keeper
// fetches what is not kept yet.
func NewServer(links *Links, st ServeStore, keeper *Keeper) *Server {
	return &Server{links: links, store: st, keeper: keeper}
}

const refused = "this link is not valid, or has expired"

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, PathPrefix), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, refused, http.StatusForbidden)
		return
	}
	ok, err := s.links.valid(r.Context(), id, r.URL.Query().Get("expires"), r.URL.Query().Get("sig"))
	switch {
	case err != nil:
		http.Error(w, "the database is not available: try again", http.StatusServiceUnavailable)
		return
	case !ok:
		http.Error(w, refused, http.StatusForbidden)
		return
	}
	m, err := s.kept(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "this medium is no longer kept (its message was deleted)", http.StatusGone)
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "this medium is not kept yet: try again shortly", http.StatusServiceUnavailable)
		return
	case m.State != store.MediumKept:
		http.Error(w, fmt.Sprintf("this medium was not kept (%s)", m.State), http.StatusNotFound)
		return
	}
	ServeKept(w, r, m, s.store.MediumReader(r.Context(), id, m.Size))
}

// ServeKept serves the kept medium m, read from body: with its stored
// type, nosniff, a CSP that runs nothing, as an attachment unless a
// browser only decodes it (Inline), and ranges. The one way a medium is
// served, on the public listener and the console's.
func ServeKept(w http.ResponseWriter, r *http.Request, m store.MediumToServe, body io.ReadSeeker) {
	h := w.Header()
	h.Set("Content-Type", m.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "private, max-age=3600")
	h.Set("ETag", `"`+hex.EncodeToString(m.SHA256)+`"`)
	disposition := "attachment"
	if Inline(m.ContentType) {
		disposition = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": fmt.Sprintf("medium-%d", m.ID)}))
	http.ServeContent(w, r, "", m.KeptAt, body)
}

// kept returns the medium id, fetching it first when its job has not
// kept it yet.
func (s *Server) kept(ctx context.Context, id int64) (store.MediumToServe, error) {
	m, err := s.store.MediumToServe(ctx, id)
	if err != nil || m.State != store.MediumFetching {
		return m, err
	}
	fctx, cancel := context.WithTimeout(ctx, fetchOnRequest)
	defer cancel()
	if err := s.keeper.keepOne(fctx, m.MediumToKeep); err != nil && !errors.Is(err, store.ErrNotOwed) {
		return m, err // the job will try again
	}
	m, err = s.store.MediumToServe(ctx, id)
	if err == nil && m.State == store.MediumFetching {
		return m, errors.New("not kept yet")
	}
	return m, err
}

// Inline reports whether a browser may show a medium of type ct in
// place: images, audio and video it only decodes. Anything it could run,
// or render as a document (HTML, SVG, XML, PDF, text), is an attachment.
func Inline(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp":
		return true
	}
	return strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")
}
