package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"inbox/api"
	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/internal/twiliotest"
	"inbox/simulate"
)

// TestMediaAreKeptFromWebhooksAndSweeps: with the defaults (every process
// with workers keeps media), an MMS delivered by its webhook ten times at
// once and one only a sweep of Twilio's API finds each have their medium
// fetched once, with the account's credentials and none at the CDN, and
// kept byte for byte; an MMS whose MediaUrl0 is on another host is stored
// and forwarded, its medium never requested, and marked refused.
func TestMediaAreKeptFromWebhooksAndSweeps(t *testing.T) {
	t.Parallel()
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	tw.AddAccount(simulate.AccountSID, testToken)
	body := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	webhookSID, sweptSID, elsewhereSID := simulate.NewMessageSID(simulate.MMS), simulate.NewMessageSID(simulate.MMS), simulate.NewMessageSID(simulate.MMS)
	webhookMedium := twiliotest.Medium{SID: fmt.Sprintf("ME%032x", 1), ContentType: "image/jpeg", Body: body(600 << 10)}
	sweptMedium := twiliotest.Medium{SID: fmt.Sprintf("ME%032x", 2), ContentType: "application/pdf", Body: body(70 << 10)}
	tw.Add(
		twiliotest.Message{SID: webhookSID, AccountSID: simulate.AccountSID, From: "+15550000001", To: "+15550009999", Direction: "inbound",
			Status: "received", Sent: time.Now(), Media: []twiliotest.Medium{webhookMedium}},
		twiliotest.Message{SID: sweptSID, AccountSID: simulate.AccountSID, From: "+15550000002", To: "+15550009999", Direction: "inbound",
			Status: "received", Sent: time.Now(), Media: []twiliotest.Medium{sweptMedium}})
	var elsewhereRequests atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhereRequests.Add(1) }))
	defer elsewhere.Close()

	databaseURL := dbtest.URL(t)
	app := teamapp.New(t, teamapp.Options{})
	vars := map[string]string{"TWILIO_API_URL": tw.URL, "TWILIO_ACCOUNT_SID": simulate.AccountSID, "RECONCILE_INTERVAL": "1s"}
	maps.Copy(vars, app.Env())
	s, base := startAdmin(t, databaseURL, vars)
	form := simulate.InboundForm(simulate.MMS, webhookSID, 1)
	form.Set("NumMedia", "1")
	form.Set("MediaUrl0", tw.MediumURL(simulate.AccountSID, webhookSID, webhookMedium.SID))
	form.Set("MediaContentType0", webhookMedium.ContentType)
	for _, st := range deliverAll(t, []string{s.addr}, api.PathMessages, form, 10) {
		if st != http.StatusOK {
			t.Fatalf("webhook: %d", st)
		}
	}
	form = simulate.InboundForm(simulate.MMS, elsewhereSID, 2)
	form.Set("NumMedia", "1")
	form.Set("MediaUrl0", elsewhere.URL+"/2010-04-01/Accounts/"+simulate.AccountSID+"/Messages/"+elsewhereSID+"/Media/"+fmt.Sprintf("ME%032x", 3))
	if st := deliverAll(t, []string{s.addr}, api.PathMessages, form, 1)[0]; st != http.StatusOK {
		t.Fatalf("the webhook with a medium elsewhere: %d", st)
	}

	pool := dbtest.Connect(t, databaseURL, 2)
	state := func(sid string) (state string, kept []byte) {
		var id int64
		pool.QueryRow(t.Context(), `SELECT md.id, md.state FROM media md JOIN messages m ON m.id = md.message_id
			WHERE m.metadata->>'message_sid' = $1`, sid).Scan(&id, &state)
		pool.QueryRow(t.Context(), `SELECT coalesce(string_agg(data, ''::bytea ORDER BY n), '') FROM media_chunks WHERE media_id = $1`, id).Scan(&kept)
		return state, kept
	}
	poll.Until(t, "both media kept and the third refused", func() bool {
		a, _ := state(webhookSID)
		b, _ := state(sweptSID)
		c, _ := state(elsewhereSID)
		return a == "kept" && b == "kept" && c == "refused"
	})
	for sid, want := range map[string]twiliotest.Medium{webhookSID: webhookMedium, sweptSID: sweptMedium} {
		if _, kept := state(sid); !bytes.Equal(kept, want.Body) {
			t.Errorf("%s: %d bytes kept, want the %d served", sid, len(kept), len(want.Body))
		}
	}
	c := tw.Counts()
	if c.MediaFetches[webhookMedium.SID] != 1 || c.MediaFetches[sweptMedium.SID] != 1 || c.CDNWithAuth != 0 {
		t.Errorf("fetches %v, %d CDN requests with credentials; want each medium once, none", c.MediaFetches, c.CDNWithAuth)
	}
	if elsewhereRequests.Load() != 0 {
		t.Errorf("the other host got %d requests", elsewhereRequests.Load())
	}
	poll.Until(t, "the three messages forwarded", func() bool {
		return app.Deliveries(webhookSID) == 1 && app.Deliveries(sweptSID) == 1 && app.Deliveries(elsewhereSID) == 1
	})
	// Each kept medium's forward names its download link, which gives the
	// bytes on the public listener to a client with no credentials; the
	// refused one has none.
	for sid, want := range map[string][]byte{webhookSID: webhookMedium.Body, sweptSID: sweptMedium.Body} {
		item := app.Payloads(sid)[0].Message.Media[0]
		if !strings.HasPrefix(item.DownloadURL, publicURL+api.PathMedia) || !strings.HasPrefix(item.URL, tw.URL) {
			t.Fatalf("%s's medium as forwarded: %+v\n%s", sid, item, app.Raw(sid))
		}
		resp, err := http.Get(strings.Replace(item.DownloadURL, publicURL, "http://"+s.addr, 1))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			t.Errorf("%s's download link: %d, %d bytes; want the %d kept", sid, resp.StatusCode, len(got), len(want))
		}
	}
	if item := app.Payloads(elsewhereSID)[0].Message.Media[0]; item.DownloadURL != "" {
		t.Errorf("the refused medium has a download link: %+v", item)
	}

	// The console's story shows the image in place, from the console
	// itself, the PDF as a link, the refused medium with its reason; the
	// API lists each medium's state.
	auth := "Bearer " + adminToken
	if _, _, page := adminDo(t, http.MethodGet, base+"/messages/"+webhookSID, auth); !strings.Contains(string(page), `<img src="/messages/`+webhookSID+`/media/0"`) {
		t.Errorf("the story of the MMS does not show its image in place:\n%s", page)
	}
	st, h, got := adminDo(t, http.MethodGet, base+"/messages/"+webhookSID+"/media/0", auth)
	if st != http.StatusOK || !bytes.Equal(got, webhookMedium.Body) || h.Get("Content-Type") != "image/jpeg" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the console's image: %d, %d bytes, %v", st, len(got), h)
	}
	if st, h, _ := adminDo(t, http.MethodGet, base+"/messages/"+sweptSID+"/media/0", auth); st != http.StatusOK ||
		!strings.HasPrefix(h.Get("Content-Disposition"), "attachment") {
		t.Errorf("the console's PDF: %d, %v; want an attachment", st, h)
	}
	if _, _, page := adminDo(t, http.MethodGet, base+"/messages/"+elsewhereSID, auth); !strings.Contains(string(page), "not fetched") ||
		strings.Contains(string(page), "<img") {
		t.Errorf("the story of the refused medium:\n%s", page)
	}
	_, _, apiBody := adminDo(t, http.MethodGet, base+"/api/messages/"+webhookSID, auth)
	var story struct {
		Media []struct{ State, ContentType string } `json:"media_kept"`
	}
	if err := json.Unmarshal(apiBody, &story); err != nil || len(story.Media) != 1 || story.Media[0].State != "kept" {
		t.Errorf("the API's story: %v %s", err, apiBody)
	}
}

// TestKillMidFetchKeepsEachMediumOnce: `kill -9` of the real binary while
// it is halfway through a medium's bytes (the CDN holds the rest), with
// MEDIA_DELETE_AT_TWILIO on. Nothing of the medium is kept and it is not
// deleted at Twilio; started again, the service keeps it whole, once, and
// only then deletes it at Twilio, once.
func TestKillMidFetchKeepsEachMediumOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for River's rescuer (about half a minute)")
	}
	t.Parallel()
	bin := buildInbox(t)
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	tw.AddAccount(simulate.AccountSID, testToken)
	sid := simulate.NewMessageSID(simulate.MMS)
	medium := twiliotest.Medium{SID: fmt.Sprintf("ME%032x", 7), ContentType: "video/mp4", Body: make([]byte, 2<<20)}
	rand.Read(medium.Body)
	tw.Add(twiliotest.Message{SID: sid, AccountSID: simulate.AccountSID, Direction: "inbound", Status: "received", Sent: time.Now(),
		Media: []twiliotest.Medium{medium}})
	held, release := tw.HoldCDN(700 << 10)
	defer release()
	databaseURL := dbtest.URL(t)
	// The dead process's fetch is taken up once its bound has passed, and
	// River's rescuer looks every 30 s: short bounds make that seconds.
	vars := map[string]string{"TWILIO_API_URL": tw.URL, "MEDIA_DELETE_AT_TWILIO": "true", "MEDIA_FETCH_TIMEOUT": "5s", "FORWARD_TIMEOUT": "1s"}
	p := startServeProcess(t, bin, databaseURL, vars)
	form := simulate.InboundForm(simulate.MMS, sid, 1)
	form.Set("NumMedia", "1")
	form.Set("MediaUrl0", tw.MediumURL(simulate.AccountSID, sid, medium.SID))
	form.Set("MediaContentType0", medium.ContentType)
	for _, st := range deliverAll(t, []string{p.addr}, api.PathMessages, form, 5) {
		if st != http.StatusOK {
			t.Fatalf("webhook: %d", st)
		}
	}
	<-held // a fetch is halfway through the medium
	p.kill()
	pool := dbtest.Connect(t, databaseURL, 2)
	var state string
	var chunks int
	pool.QueryRow(t.Context(), `SELECT state, (SELECT count(*) FROM media_chunks) FROM media`).Scan(&state, &chunks)
	if state != "fetching" || chunks != 0 || tw.Counts().MediaDeleted[medium.SID] != 0 {
		t.Fatalf("after the kill: %s, %d pieces kept, deleted at Twilio %d times; want still owed, nothing kept, nothing deleted",
			state, chunks, tw.Counts().MediaDeleted[medium.SID])
	}
	release()
	p2 := startServeProcess(t, bin, databaseURL, vars)
	t.Cleanup(func() {
		if t.Failed() {
			var jobs string
			pool.QueryRow(context.Background(), `SELECT string_agg(state || ' ' || attempt || ' ' || coalesce(errors::text, ''), '; ') FROM river_job WHERE kind = 'inbox_media'`).Scan(&jobs)
			t.Logf("media jobs: %s; state %s\nthe restarted service's log:\n%s", jobs, state, p2.stderr)
		}
	})
	poll.Within(t, 3*time.Minute, "the medium kept and deleted at Twilio after the restart", func() bool {
		var deleted bool
		pool.QueryRow(t.Context(), `SELECT state, deleted_at_twilio IS NOT NULL FROM media`).Scan(&state, &deleted)
		return state == "kept" && deleted
	})
	var rows int
	var kept []byte
	pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM media), (SELECT string_agg(data, ''::bytea ORDER BY n) FROM media_chunks)`).Scan(&rows, &kept)
	if rows != 1 || !bytes.Equal(kept, medium.Body) || tw.Counts().MediaDeleted[medium.SID] != 1 {
		t.Fatalf("%d media rows, %d bytes kept of %d, deleted at Twilio %d times; want one, whole, once", rows, len(kept), len(medium.Body),
			tw.Counts().MediaDeleted[medium.SID])
	}
}
