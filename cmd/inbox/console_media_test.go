package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/twiliotest"
	"inbox/simulate"
)

// TestMediaConsoleInABrowser: an operator opens the story of an MMS whose
// picture and PDF are kept, and sees the picture itself, loaded by the
// browser from the console (it has no Twilio credentials), and the PDF as
// a link with its type and size.
func TestMediaConsoleInABrowser(t *testing.T) {
	t.Parallel()
	chromium(t)
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	tw.AddAccount(simulate.AccountSID, testToken)
	sid := simulate.NewMessageSID(simulate.MMS)
	pdf := make([]byte, 48<<10)
	rand.Read(pdf)
	media := []twiliotest.Medium{
		{SID: fmt.Sprintf("ME%032x", 1), ContentType: "image/png", Body: picture(t)},
		{SID: fmt.Sprintf("ME%032x", 2), ContentType: "application/pdf", Body: pdf},
	}
	tw.Add(twiliotest.Message{SID: sid, AccountSID: simulate.AccountSID, Direction: "inbound", Status: "received", Sent: time.Now(), Media: media})
	databaseURL := dbtest.URL(t)
	s, base := startAdmin(t, databaseURL, map[string]string{"TWILIO_API_URL": tw.URL})
	form := simulate.InboundForm(simulate.MMS, sid, 1)
	for i, m := range media {
		form.Set("MediaUrl"+strconv.Itoa(i), tw.MediumURL(simulate.AccountSID, sid, m.SID))
		form.Set("MediaContentType"+strconv.Itoa(i), m.ContentType)
	}
	if st := deliverAll(t, []string{s.addr}, api.PathMessages, form, 1)[0]; st != http.StatusOK {
		t.Fatalf("webhook: %d", st)
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "both media kept", func() bool {
		var kept int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM media WHERE state = 'kept'`).Scan(&kept); err != nil {
			t.Fatal(err)
		}
		return kept == 2
	})

	p := openBrowser(t, base)
	p.navigate("/messages")
	p.fill("textbox", "Token", adminToken)
	p.press("Log in")
	p.navigate("/messages/" + sid)
	p.shows("image/png", "application/pdf", "48.0 KiB")
	const loaded = `(() => { const i = document.querySelector('main img'); return !!i && i.complete && i.naturalWidth === 480 })()`
	if !get(p, "the picture drawn", chromedp.Poll[bool](loaded)) {
		t.Fatal("the picture is not drawn")
	}
	p.screenshot("message-media")
	if got := tw.Counts().CDNWithAuth; got != 0 {
		t.Errorf("the CDN was sent credentials %d times", got)
	}
}

// picture is a 480×320 PNG with something to see in it.
func picture(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 480, 320))
	for y := range 320 {
		for x := range 480 {
			img.Set(x, y, color.RGBA{R: uint8(x / 2), G: uint8(100 + y/4), B: uint8(200 - y/2), A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
