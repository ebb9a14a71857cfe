package twilioapi_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"inbox/twilioapi"
)

// mediaStandIn is Twilio's media as the docs describe it: the API answers
// a medium's URL, with the account's Basic credentials only, by a
// redirect to a pre-signed URL on another host (the CDN), which serves
// the bytes to anyone holding the URL. It records what each host saw.
type mediaStandIn struct {
	api, cdn *httptest.Server
	mu       sync.Mutex
	apiAuth  []string // the Authorization of each API request
	cdnAuth  []string // likewise at the CDN: must stay empty
	deleted  []string
	answer   func(n int) (status int, retryAfter string) // the API's n-th answer (from 1); nil: 307
	apiCalls int
	body     []byte
	ctype    string
}

func newMediaStandIn(t *testing.T, body []byte, ctype string) *mediaStandIn {
	t.Helper()
	s := &mediaStandIn{body: body, ctype: ctype}
	s.cdn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.cdnAuth = append(s.cdnAuth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", s.ctype)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.body))
	}))
	t.Cleanup(s.cdn.Close)
	s.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.apiAuth = append(s.apiAuth, r.Header.Get("Authorization"))
		s.apiCalls++
		n := s.apiCalls
		answer := s.answer
		if r.Method == http.MethodDelete {
			s.deleted = append(s.deleted, r.URL.Path)
		}
		s.mu.Unlock()
		if user, pass, ok := r.BasicAuth(); !ok || user != account || pass != token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if answer != nil {
			if st, after := answer(n); st != http.StatusTemporaryRedirect {
				w.Header().Set("Retry-After", after)
				w.WriteHeader(st)
				return
			}
		}
		// The CDN's URL is pre-signed, on another host (another port of
		// 127.0.0.1 is another origin; a client keyed on names would
		// still see "127.0.0.1"): localhost, so any credential forwarded
		// by host would show.
		http.Redirect(w, r, strings.Replace(s.cdn.URL, "127.0.0.1", "localhost", 1)+"/signed/"+r.URL.Path[len(r.URL.Path)-34:]+"?Expires=1&Signature=x",
			http.StatusTemporaryRedirect)
	}))
	t.Cleanup(s.api.Close)
	return s
}

func mediumURL(base, message, medium string) string {
	return base + "/2010-04-01/Accounts/" + account + "/Messages/" + message + "/Media/" + medium
}

const (
	mmsSID = "MM0123456789abcdef0123456789abcdef"
	meSID  = "ME0123456789abcdef0123456789abcdef"
)

// TestAMediumIsFetchedWithTheAccountsCredentialsAndNotTheCDNs: the bytes
// arrive whole, with their type, size and hash; the API got the
// account's Basic credentials, the CDN it redirected to got none.
func TestAMediumIsFetchedWithTheAccountsCredentialsAndNotTheCDNs(t *testing.T) {
	t.Parallel()
	body := make([]byte, 3<<20+17)
	rand.Read(body)
	s := newMediaStandIn(t, body, "image/jpeg")
	c := client(t, s.api.URL, twilioapi.Options{})
	m, err := c.ParseMedium(mediumURL(s.api.URL, mmsSID, meSID), account)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	f, err := c.FetchMedium(t.Context(), cred, m, &got, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), body) || f.Size != int64(len(body)) || f.SHA256 != sha256.Sum256(body) || f.ContentType != "image/jpeg" {
		t.Fatalf("fetched %d bytes, %+v; want the %d bytes served", got.Len(), f, len(body))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.apiAuth) != 1 || !strings.HasPrefix(s.apiAuth[0], "Basic ") {
		t.Fatalf("the API saw %q, want the account's Basic credentials once", s.apiAuth)
	}
	if len(s.cdnAuth) != 1 || s.cdnAuth[0] != "" {
		t.Fatalf("the CDN saw Authorization %q: the credentials followed the redirect", s.cdnAuth)
	}
}

// TestOnlyTheAPIsMediaPathsAreFetched: a MediaUrl on another host, scheme
// or port, with credentials, a query or another shape of path, or under
// another account, is refused before any request is made.
func TestOnlyTheAPIsMediaPathsAreFetched(t *testing.T) {
	t.Parallel()
	var requests int
	var mu sync.Mutex
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { mu.Lock(); requests++; mu.Unlock() }))
	defer elsewhere.Close()
	s := newMediaStandIn(t, []byte("x"), "image/png")
	c := client(t, s.api.URL, twilioapi.Options{})
	good := mediumURL(s.api.URL, mmsSID, meSID)
	if _, err := c.ParseMedium(good, account); err != nil {
		t.Fatalf("%s: %v", good, err)
	}
	if _, err := c.ParseMedium(good+".json", account); err != nil {
		t.Fatalf("%s.json: %v", good, err)
	}
	for _, bad := range []string{
		mediumURL(elsewhere.URL, mmsSID, meSID),
		strings.Replace(good, "http://", "https://", 1),
		strings.Replace(good, "127.0.0.1", "localhost", 1),
		strings.Replace(good, "http://", "http://"+account+":"+token+"@", 1),
		good + "?x=1",
		good + "#f",
		mediumURL(s.api.URL, mmsSID, meSID) + "/../../../../Calls",
		s.api.URL + "/2010-04-01/Accounts/" + account + "/Calls/" + meSID,
		mediumURL(s.api.URL, mmsSID, "ME0123"),
		strings.Replace(good, account, "ACffffffffffffffffffffffffffffffff", 1),
		"javascript:alert(1)",
		"",
	} {
		if _, err := c.ParseMedium(bad, account); !errors.Is(err, twilioapi.ErrNotAMedium) {
			t.Errorf("%q: %v, want ErrNotAMedium", bad, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 0 {
		t.Fatalf("the other host got %d requests", requests)
	}
}

// TestAMediumsFailuresSayWhatHappened: 404 (not ready, or deleted), 429
// with Retry-After, 500, a body over the bound (said by Content-Length,
// or found while reading), a redirect loop.
func TestAMediumsFailuresSayWhatHappened(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status     int
		retryAfter string
		wantAfter  time.Duration
	}{{http.StatusNotFound, "", -1}, {http.StatusTooManyRequests, "7", 7 * time.Second}, {http.StatusInternalServerError, "", -1}} {
		s := newMediaStandIn(t, []byte("x"), "image/png")
		s.answer = func(int) (int, string) { return c.status, c.retryAfter }
		api := client(t, s.api.URL, twilioapi.Options{})
		m, _ := api.ParseMedium(mediumURL(s.api.URL, mmsSID, meSID), account)
		_, err := api.FetchMedium(t.Context(), cred, m, &bytes.Buffer{}, 1<<20)
		var me *twilioapi.MediumError
		if !errors.As(err, &me) || me.Status != c.status || !me.AtAPI || me.RetryAfter != c.wantAfter {
			t.Errorf("the API answering %d: %v (%+v)", c.status, err, me)
		}
	}
	big := newMediaStandIn(t, make([]byte, 2<<20), "video/mp4")
	api := client(t, big.api.URL, twilioapi.Options{})
	m, _ := api.ParseMedium(mediumURL(big.api.URL, mmsSID, meSID), account)
	var got bytes.Buffer
	if _, err := api.FetchMedium(t.Context(), cred, m, &got, 1<<20); !errors.Is(err, twilioapi.ErrMediumTooLarge) || got.Len() != 0 {
		t.Errorf("2 MiB said by Content-Length, bound 1 MiB: %v, %d bytes written", err, got.Len())
	}
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Redirect(w, r, "/cdn", http.StatusFound)
			return
		}
		for range 64 { // 2 MiB without a Content-Length
			w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
		}
	}))
	defer chunked.Close()
	api = client(t, chunked.URL, twilioapi.Options{})
	m, _ = api.ParseMedium(mediumURL(chunked.URL, mmsSID, meSID), account)
	got.Reset()
	if _, err := api.FetchMedium(t.Context(), cred, m, &got, 1<<20); !errors.Is(err, twilioapi.ErrMediumTooLarge) || got.Len() > 1<<20+1 {
		t.Errorf("2 MiB unannounced, bound 1 MiB: %v, %d bytes written", err, got.Len())
	}
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	defer loop.Close()
	api = client(t, loop.URL, twilioapi.Options{})
	m, _ = api.ParseMedium(mediumURL(loop.URL, mmsSID, meSID), account)
	if _, err := api.FetchMedium(t.Context(), cred, m, &bytes.Buffer{}, 1<<20); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("a redirect loop: %v", err)
	}
	// The CDN's URL is pre-signed: an error, which goes to the log, never
	// carries it, whether the CDN is down or the location is not a URL.
	for _, location := range []string{"http://127.0.0.1:1/cdn/ME1?X-Amz-Signature=presigned-secret", "ftp://cdn/ME1?X-Amz-Signature=presigned-secret"} {
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", location)
			w.WriteHeader(http.StatusTemporaryRedirect)
		}))
		api = client(t, down.URL, twilioapi.Options{})
		m, _ = api.ParseMedium(mediumURL(down.URL, mmsSID, meSID), account)
		if _, err := api.FetchMedium(t.Context(), cred, m, &bytes.Buffer{}, 1<<20); err == nil || strings.Contains(err.Error(), "presigned-secret") {
			t.Errorf("a redirect to %s: %v; want an error without the pre-signed URL", location, err)
		}
		down.Close()
	}
}

// TestAMediumIsDeletedAtTwilioOnce: DELETE …/Media/ME….json with the
// account's credentials; one already gone is not an error.
func TestAMediumIsDeletedAtTwilioOnce(t *testing.T) {
	t.Parallel()
	s := newMediaStandIn(t, []byte("x"), "image/png")
	c := client(t, s.api.URL, twilioapi.Options{})
	m, _ := c.ParseMedium(mediumURL(s.api.URL, mmsSID, meSID), account)
	if err := c.DeleteMedium(t.Context(), cred, m); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	deleted := fmt.Sprint(s.deleted)
	s.mu.Unlock()
	if deleted != "["+m.Path()+".json]" {
		t.Fatalf("deleted %s, want %s.json", deleted, m.Path())
	}
	s.answer = func(int) (int, string) { return http.StatusNotFound, "" }
	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	c = client(t, gone.URL, twilioapi.Options{})
	m, _ = c.ParseMedium(mediumURL(gone.URL, mmsSID, meSID), account)
	if err := c.DeleteMedium(t.Context(), cred, m); err != nil {
		t.Fatalf("deleting a medium already gone: %v", err)
	}
}
