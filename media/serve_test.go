package media_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/media"
	"inbox/message"
)

// serve starts the public listener's media route over h, and returns the
// links it checks and its base URL.
func (h *harness) serve(t *testing.T) (*media.Links, string) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	links := media.NewLinks(h.st, srv.URL, 0)
	mux.Handle(media.PathPrefix, media.NewServer(links, h.st, h.keeper))
	return links, srv.URL
}

func get(t *testing.T, u string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// mediumID is the id of the medium at position of the message sid.
func (h *harness) mediumID(t *testing.T, sid string, position int) int64 {
	t.Helper()
	var id int64
	if err := h.pool.QueryRow(t.Context(), `SELECT md.id FROM media md JOIN messages m ON m.id = md.message_id
		WHERE m.metadata->>'message_sid' = $1 AND md.position = $2`, sid, position).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestADownloadLinkServesTheMediumWithoutCredentials: the link of a kept
// medium gives its bytes to a client holding no credentials at all, with
// its type and the headers that keep a browser from running anything; a
// range gives exactly those bytes.
func TestADownloadLinkServesTheMediumWithoutCredentials(t *testing.T) {
	t.Parallel()
	h := setup(t, 0)
	links, _ := h.serve(t)
	m, want := h.message(t, 700<<10)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the medium kept", func() bool { return h.settled(t, m.Metadata.MessageSID) })
	link, err := links.URL(t.Context(), h.mediumID(t, m.Metadata.MessageSID, 0))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, link, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want[0].Body) {
		t.Fatalf("GET the link: %d, %d bytes; want 200 and the %d bytes", resp.StatusCode, len(body), len(want[0].Body))
	}
	for k, v := range map[string]string{"Content-Type": "image/jpeg", "X-Content-Type-Options": "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox", "Accept-Ranges": "bytes"} {
		if resp.Header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") {
		t.Errorf("an image's Content-Disposition: %q, want inline", resp.Header.Get("Content-Disposition"))
	}
	resp, body = get(t, link, http.Header{"Range": {"bytes=300000-300099"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[0].Body[300000:300100]) {
		t.Fatalf("a range: %d, %d bytes; want 206 and those 100 bytes", resp.StatusCode, len(body))
	}
}

// TestTamperedExpiredAndForeignLinksAreRefusedAlike: a signature changed,
// a link of one medium used for another, one expired (signed as the
// service signs, with the database's key), and one for a medium that does
// not exist signed wrongly are each 403 with the same words: nothing says
// whether the medium exists.
func TestTamperedExpiredAndForeignLinksAreRefusedAlike(t *testing.T) {
	t.Parallel()
	h := setup(t, 0)
	links, base := h.serve(t)
	m, _ := h.message(t, 1000, 1000)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the media kept", func() bool { return h.settled(t, m.Metadata.MessageSID) })
	first, second := h.mediumID(t, m.Metadata.MessageSID, 0), h.mediumID(t, m.Metadata.MessageSID, 1)
	link, _ := links.URL(t.Context(), first)
	u, _ := url.Parse(link)
	q := u.Query()
	key, err := h.st.MediaLinkKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expired := time.Now().Add(-time.Minute).Unix()
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "inbox media link v1|%d|%d", first, expired)
	tampered := []byte(q.Get("sig"))
	tampered[3] ^= 1
	bad := map[string]string{
		"tampered":              fmt.Sprintf("%s%s%d?expires=%s&sig=%s", base, media.PathPrefix, first, q.Get("expires"), tampered),
		"another medium's link": fmt.Sprintf("%s%s%d?%s", base, media.PathPrefix, second, u.RawQuery),
		"expired":               fmt.Sprintf("%s%s%d?expires=%d&sig=%s", base, media.PathPrefix, first, expired, base64.RawURLEncoding.EncodeToString(mac.Sum(nil))),
		"no such medium":        fmt.Sprintf("%s%s%d?%s", base, media.PathPrefix, first+1000, u.RawQuery),
		"no signature":          fmt.Sprintf("%s%s%d", base, media.PathPrefix, first),
		"not an id":             base + media.PathPrefix + "1e3?" + u.RawQuery,
	}
	var bodies []string
	for name, link := range bad {
		resp, body := get(t, link, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %q, want 403", name, resp.StatusCode, body)
		}
		bodies = append(bodies, string(body))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("refusals differ: %q and %q", bodies[0], b)
		}
	}
	if resp, _ := get(t, link, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the link itself: %d", resp.StatusCode)
	}
}

// TestADocumentABrowserWouldRenderIsAnAttachment: HTML, SVG, XML and PDF
// are served as attachments, with nosniff and a sandboxing CSP, never in
// place.
func TestADocumentABrowserWouldRenderIsAnAttachment(t *testing.T) {
	t.Parallel()
	h := setup(t, 0)
	links, _ := h.serve(t)
	for _, ct := range []string{"text/html", "image/svg+xml", "application/xml", "application/pdf", "text/plain"} {
		m, _ := h.messageOf(t, ct, 200)
		if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "the medium kept", func() bool { return h.settled(t, m.Metadata.MessageSID) })
		link, _ := links.URL(t.Context(), h.mediumID(t, m.Metadata.MessageSID, 0))
		resp, _ := get(t, link, nil)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: %d, Content-Disposition %q, %v", ct, resp.StatusCode, resp.Header.Get("Content-Disposition"), resp.Header)
		}
	}
}

// TestALinkWorksBeforeTheJobKeptItsMedium: with no worker running, the
// first request of a link fetches the medium itself, once, and serves it.
func TestALinkWorksBeforeTheJobKeptItsMedium(t *testing.T) {
	t.Parallel()
	h := setupWith(t, 0, false)
	links, _ := h.serve(t)
	m, want := h.message(t, 300<<10)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	link, _ := links.URL(t.Context(), h.mediumID(t, m.Metadata.MessageSID, 0))
	for range 2 {
		if resp, body := get(t, link, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, want[0].Body) {
			t.Fatalf("GET before the job ran: %d, %d bytes", resp.StatusCode, len(body))
		}
	}
	if n := h.tw.Counts().MediaFetches[want[0].SID]; n != 1 {
		t.Fatalf("fetched %d times, want once", n)
	}
}

// TestForwardsCarryEachMediumsLink: the payload of a received message
// with media gains each medium's download_url beside Twilio's url; one
// without media is left byte for byte.
func TestForwardsCarryEachMediumsLink(t *testing.T) {
	t.Parallel()
	h := setupWith(t, 0, false)
	links, _ := h.serve(t)
	m, _ := h.message(t, 10, 10)
	sms := fixtureSMS(t, h)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	payloads, err := h.st.MessageReceivedPayloads(t.Context(), []string{m.Metadata.MessageSID, sms})
	if err != nil {
		t.Fatal(err)
	}
	smsBefore := bytes.Clone(payloads[sms])
	if err := links.Decorate(t.Context(), payloads); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payloads[sms], smsBefore) {
		t.Fatalf("an SMS's payload changed:\n%s\n%s", smsBefore, payloads[sms])
	}
	var p message.Payload
	if err := json.Unmarshal(payloads[m.Metadata.MessageSID], &p); err != nil {
		t.Fatal(err)
	}
	for i, md := range p.Message.Media {
		id := h.mediumID(t, m.Metadata.MessageSID, i)
		if md.URL != m.Media[i].URL || !strings.Contains(md.DownloadURL, media.PathPrefix+strconv.FormatInt(id, 10)+"?expires=") {
			t.Errorf("medium %d: url %q, download_url %q", i, md.URL, md.DownloadURL)
		}
	}
}

// fixtureSMS stores an SMS and returns its sid.
func fixtureSMS(t *testing.T, h *harness) string {
	t.Helper()
	sid := fixture.SID()
	if _, _, err := h.st.InsertInboundMessage(t.Context(), fixture.Inbound(sid)); err != nil {
		t.Fatal(err)
	}
	return sid
}
