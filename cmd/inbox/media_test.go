package main

import (
	"bytes"
	"crypto/rand"
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
	s := startServe(t, databaseURL, vars)
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
}
