package simulate

import (
	"bytes"
	"crypto/subtle"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// twilioMediaPrefix is where InboundForm's media are: Twilio's API host.
const twilioMediaPrefix = "https://api.twilio.com/2010-04-01/"

// MediaAt moves the media of an InboundForm from Twilio's API host to base
// (a MediaHost's), so a service whose TWILIO_API_URL is base fetches them
// there.
func MediaAt(form url.Values, base string) {
	for i := range 10 {
		k := "MediaUrl" + strconv.Itoa(i)
		if u := form.Get(k); strings.HasPrefix(u, twilioMediaPrefix) {
			form.Set(k, strings.TrimSuffix(base, "/")+"/2010-04-01/"+strings.TrimPrefix(u, twilioMediaPrefix))
		}
	}
}

// MediaHost plays Twilio's media host for the simulated messages, as
// ../shared/twilio-media.md describes it: a medium's path on the API wants
// the account's Basic auth (any AC sid, with the token) and redirects to a
// CDN path that wants none. InboundForm's first medium (ME…0) is a
// picture, its second (ME…1) a PDF.
type MediaHost struct {
	token   string
	picture []byte
}

// NewMediaHost serves media to whoever knows token.
func NewMediaHost(token string) *MediaHost {
	return &MediaHost{token: token, picture: picture()}
}

// mediaPathPrefix and cdnPrefix are the paths a MediaHost serves.
const (
	mediaPathPrefix = "/2010-04-01/Accounts/"
	cdnPrefix       = "/cdn/"
)

// Serves reports whether path is one of a MediaHost's.
func (m *MediaHost) Serves(path string) bool {
	return strings.HasPrefix(path, mediaPathPrefix) || strings.HasPrefix(path, cdnPrefix)
}

func (m *MediaHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, cdnPrefix); ok {
		m.serveCDN(w, r, name)
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || !strings.HasPrefix(user, "AC") || subtle.ConstantTimeCompare([]byte(pass), []byte(m.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		http.Error(w, "authenticate with the account's sid and token", http.StatusUnauthorized)
		return
	}
	me := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	if !strings.Contains(r.URL.Path, "/Media/") || !strings.HasPrefix(me, "ME") {
		http.NotFound(w, r)
		return
	}
	// Twilio's redirect is to a short-lived, pre-signed URL elsewhere.
	http.Redirect(w, r, cdnPrefix+me, http.StatusTemporaryRedirect)
}

func (m *MediaHost) serveCDN(w http.ResponseWriter, r *http.Request, me string) {
	body, ctype := m.picture, "image/png"
	if strings.HasSuffix(me, "1") {
		body, ctype = []byte(pdf), "application/pdf"
	}
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// picture is a small PNG: a gradient, something to see in the console.
func picture() []byte {
	const w, h = 240, 160
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(x), G: uint8(90 + y/2), B: uint8(220 - y), A: 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img) // into memory: cannot fail
	return b.Bytes()
}

// pdf is a one-page PDF that says what it is.
const pdf = ("%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n" +
	"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n" +
	"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R /Resources <</Font <</F1 5 0 R>>>>>> endobj\n" +
	"4 0 obj <</Length 58>> stream\nBT /F1 14 Tf 20 50 Td (A simulated MMS's document) Tj ET\nendstream endobj\n" +
	"5 0 obj <</Type /Font /Subtype /Type1 /BaseFont /Helvetica>> endobj\n" +
	"trailer <</Root 1 0 R>>\n%%EOF\n")
