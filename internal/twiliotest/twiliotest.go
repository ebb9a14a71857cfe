// Package twiliotest is a stand-in for the part of Twilio's REST API that
// reconciliation uses, as a real HTTP server, for tests and the benchmark.
// It is faithful to the shapes of ../shared/twilio-rest.md's findings
// (kept in docs/design.md): messages newest first by date_sent, DateSent
// filters by day (GMT), a string num_media, RFC 2822 dates, a relative
// next_page_uri that keeps the filters and adds Page and PageToken,
// media under media_list, HTTP Basic auth per account, errors as {code,
// message, more_info, status}. It holds as many messages as a test gives
// it, answers 429 on demand, and counts what it was asked.
package twiliotest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Message is one message the stand-in holds.
type Message struct {
	SID                 string
	AccountSID          string
	MessagingServiceSID string // "": null
	From, To, Body      string
	Direction           string // inbound, outbound-api, …
	Status              string
	ErrorCode           int // 0: null
	Sent                time.Time
	NumSegments         int
	Media               []Medium
}

// Medium is one medium of a message.
type Medium struct {
	SID         string
	ContentType string
	// Body is what fetching it gives (through the CDN), when not nil.
	Body []byte
}

// Server is a running stand-in.
type Server struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	tokens   map[string]string // account sid → token
	messages []Message         // newest first
	bySID    map[string]int    // index into messages
	// throttleEvery, when > 0, answers every n-th request 429.
	throttleEvery int
	retryAfter    string
	fault         func(r *http.Request) (status int, body string, ok bool)
	requests      int
	throttled     int
	listings      map[string]int // successful listings, by page (its PageToken; "" the first)
	mediaLists    int
	fetches       int
	// The media's: fetches at the API by medium sid, the requests the CDN
	// got with credentials (there must be none), deletions by medium sid,
	// and, when set, an answer of the API's own to the n-th fetch of a
	// medium (0: the redirect).
	mediaFetches map[string]int
	cdnWithAuth  int
	cdnGets      int
	mediaDeleted map[string]int
	mediumAnswer func(mediumSID string, n int) int
	cdn          *httptest.Server
	mediaBySID   map[string]Medium
	// holdAfter, when > 0, makes the CDN stop after that many bytes of a
	// medium until release is closed (a fetch cut mid-way); holding says
	// that a request reached the hold.
	holdAfter int
	release   chan struct{}
	holding   chan struct{}
}

// HoldCDN makes the CDN send the first after bytes of each medium, then
// wait until release is called (or its client goes): a fetch that stops
// mid-medium. held receives when a request waits there.
func (s *Server) HoldCDN(after int) (held <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdAfter, s.release, s.holding = after, make(chan struct{}), make(chan struct{}, 64)
	rel := s.release
	return s.holding, sync.OnceFunc(func() { close(rel) })
}

// New starts a stand-in, closed when the test ends (Close, for the
// benchmark).
func New() *Server {
	s := &Server{tokens: map[string]string{}, bySID: map[string]int{}, listings: map[string]int{},
		mediaFetches: map[string]int{}, mediaDeleted: map[string]int{}, mediaBySID: map[string]Medium{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages.json", s.list)
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages/{file}", s.message)
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages/{sid}/Media.json", s.media)
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages/{sid}/Media/{medium}", s.medium)
	mux.HandleFunc("DELETE /2010-04-01/Accounts/{account}/Messages/{sid}/Media/{medium}", s.deleteMedium)
	s.srv = httptest.NewServer(s.guard(mux))
	s.URL = s.srv.URL
	// The CDN a medium's URL redirects to: another host (localhost, where
	// the API is 127.0.0.1), serving whoever has the URL.
	s.cdn = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.srv.Close()
	s.cdn.Close()
}

// AddAccount makes sid an account whose requests authenticate with token.
func (s *Server) AddAccount(sid, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[sid] = token
}

// Add holds ms, keeping the list newest first (then by sid, as a tie).
func (s *Server) Add(ms ...Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, ms...)
	for _, m := range ms {
		for _, md := range m.Media {
			s.mediaBySID[md.SID] = md
		}
	}
	slices.SortStableFunc(s.messages, func(a, b Message) int {
		if c := b.Sent.Compare(a.Sent); c != 0 {
			return c
		}
		return strings.Compare(a.SID, b.SID)
	})
	for i, m := range s.messages {
		s.bySID[m.SID] = i
	}
}

// SetStatus changes a held message's status and error code.
func (s *Server) SetStatus(sid, status string, errorCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &s.messages[s.bySID[sid]]
	m.Status, m.ErrorCode = status, errorCode
}

// ThrottleEvery answers every n-th request (0: none) 429 with Twilio's
// error 20429 and, when retryAfter is not "", that Retry-After.
func (s *Server) ThrottleEvery(n int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleEvery, s.retryAfter = n, retryAfter
}

// Fault, when set, answers a request itself when it returns ok: a status
// and a body, to play a broken or hostile API.
func (s *Server) Fault(f func(r *http.Request) (status int, body string, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// MediumAnswers, when set, answers the n-th fetch of a medium (from 1)
// with the status it returns, or the redirect when it returns 0.
func (s *Server) MediumAnswers(f func(mediumSID string, n int) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mediumAnswer = f
}

// MediumURL is where a webhook says a medium of message sid is.
func (s *Server) MediumURL(account, sid, mediumSID string) string {
	return s.URL + "/2010-04-01/Accounts/" + account + "/Messages/" + sid + "/Media/" + mediumSID
}

// Counts is what the stand-in was asked.
type Counts struct {
	Requests, Throttled, MediaLists, Fetches int
	// MediaFetches counts the fetches of each medium at the API, and
	// MediaDeleted its deletions; CDNGets the CDN's requests, and
	// CDNWithAuth those that carried credentials (there must be none).
	MediaFetches, MediaDeleted map[string]int
	CDNGets, CDNWithAuth       int
	// Listings counts the pages answered 200, by PageToken ("" the
	// first page of a list).
	Listings map[string]int
}

// Counts returns what it was asked so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make(map[string]int, len(s.listings))
	for k, v := range s.listings {
		l[k] = v
	}
	return Counts{Requests: s.requests, Throttled: s.throttled, MediaLists: s.mediaLists, Fetches: s.fetches, Listings: l,
		MediaFetches: maps.Clone(s.mediaFetches), MediaDeleted: maps.Clone(s.mediaDeleted), CDNGets: s.cdnGets, CDNWithAuth: s.cdnWithAuth}
}

// medium answers a medium's URL, as Twilio does: a redirect to a
// pre-signed URL on the CDN.
func (s *Server) medium(w http.ResponseWriter, r *http.Request) {
	sid := r.PathValue("medium")
	s.mu.Lock()
	md, known := s.mediaBySID[sid]
	s.mediaFetches[sid]++
	n, answer := s.mediaFetches[sid], s.mediumAnswer
	_, deleted := s.mediaDeleted[sid]
	s.mu.Unlock()
	if answer != nil {
		if st := answer(sid, n); st != 0 {
			writeError(w, st, 20000+st, "an answer of the test's")
			return
		}
	}
	if !known || md.Body == nil || deleted {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	cdn := strings.Replace(s.cdn.URL, "127.0.0.1", "localhost", 1)
	http.Redirect(w, r, cdn+"/v1/"+sid+"?Expires=1&Signature=x", http.StatusTemporaryRedirect)
}

// serveCDN serves a medium's bytes to whoever has its URL.
func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	sid := strings.TrimPrefix(r.URL.Path, "/v1/")
	s.mu.Lock()
	s.cdnGets++
	if r.Header.Get("Authorization") != "" {
		s.cdnWithAuth++
	}
	md, known := s.mediaBySID[sid]
	after, release, holding := s.holdAfter, s.release, s.holding
	s.mu.Unlock()
	if !known || md.Body == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", md.ContentType)
	if after > 0 && after < len(md.Body) {
		w.Header().Set("Content-Length", strconv.Itoa(len(md.Body)))
		w.Write(md.Body[:after])
		w.(http.Flusher).Flush()
		holding <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(md.Body[after:])
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(md.Body))
}

// deleteMedium deletes a medium: its URL answers 404 after.
func (s *Server) deleteMedium(w http.ResponseWriter, r *http.Request) {
	sid := strings.TrimSuffix(r.PathValue("medium"), ".json")
	s.mu.Lock()
	s.mediaDeleted[sid]++
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// guard counts, throttles, plays faults and checks Basic auth against the
// account in the path.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		n, every, after, fault := s.requests, s.throttleEvery, s.retryAfter, s.fault
		if every > 0 && n%every == 0 {
			s.throttled++
		}
		s.mu.Unlock()
		if fault != nil {
			if status, body, ok := fault(r); ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				w.Write([]byte(body))
				return
			}
		}
		if every > 0 && n%every == 0 {
			if after != "" {
				w.Header().Set("Retry-After", after)
			}
			writeError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
			return
		}
		user, pass, ok := r.BasicAuth()
		account := strings.Split(strings.TrimPrefix(r.URL.Path, "/2010-04-01/Accounts/"), "/")[0]
		s.mu.Lock()
		token, known := s.tokens[account]
		s.mu.Unlock()
		if !ok || !known || user != account || pass != token {
			writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": message, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

// list answers ListMessage: the account's messages matching the filters,
// newest first, a page at a time.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	account := r.PathValue("account")
	q := r.URL.Query()
	size := 50
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid PageSize")
			return
		}
		size = n
	}
	match, err := listFilter(account, q)
	if err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Invalid DateSent")
		return
	}
	token := q.Get("PageToken")
	page, more, ok := s.page(token, size, match)
	if !ok {
		writeError(w, http.StatusBadRequest, 21481, "Invalid PageToken")
		return
	}
	items := make([]map[string]any, len(page))
	for i, m := range page {
		items[i] = s.render(m)
	}
	var next any
	if more {
		nq := url.Values{}
		for k, v := range q {
			if k != "Page" && k != "PageToken" {
				nq[k] = v
			}
		}
		pageNo, _ := strconv.Atoi(q.Get("Page"))
		nq.Set("Page", strconv.Itoa(pageNo+1))
		nq.Set("PageToken", "PA"+page[len(page)-1].SID)
		next = "/2010-04-01/Accounts/" + account + "/Messages.json?" + nq.Encode()
	}
	writeJSON(w, map[string]any{
		"messages": items, "next_page_uri": next, "page": q.Get("Page"), "page_size": size,
		"first_page_uri": r.URL.Path + "?PageSize=" + strconv.Itoa(size), "previous_page_uri": nil,
		"uri": r.URL.RequestURI(),
	})
}

// listFilter is ListMessage's filter: the account's messages sent on,
// after or before a day, to or from a number.
func listFilter(account string, q url.Values) (func(Message) bool, error) {
	day := func(key string) (time.Time, bool, error) {
		v := q.Get(key)
		if v == "" {
			return time.Time{}, false, nil
		}
		t, err := time.Parse("2006-01-02", v)
		return t, true, err
	}
	after, hasAfter, err1 := day("DateSent>")
	before, hasBefore, err2 := day("DateSent<")
	on, hasOn, err3 := day("DateSent")
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return func(m Message) bool {
		d := m.Sent.UTC().Truncate(24 * time.Hour)
		return m.AccountSID == account && (!hasAfter || !d.Before(after)) && (!hasBefore || !d.After(before)) &&
			(!hasOn || d.Equal(on)) && (q.Get("To") == "" || m.To == q.Get("To")) && (q.Get("From") == "" || m.From == q.Get("From"))
	}, nil
}

// page returns the next size matches after token's message, and whether
// any follows them; ok is false for a token this server did not give.
func (s *Server) page(token string, size int, match func(Message) bool) (page []Message, more, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := 0
	if token != "" {
		i, known := s.bySID[strings.TrimPrefix(token, "PA")]
		if !known || !strings.HasPrefix(token, "PA") || !match(s.messages[i]) {
			return nil, false, false
		}
		start = i + 1
	}
	for _, m := range s.messages[start:] {
		if !match(m) {
			continue
		}
		if len(page) == size {
			more = true
			break
		}
		page = append(page, m)
	}
	s.listings[token]++
	return page, more, true
}

// message answers FetchMessage: …/Messages/{sid}.json.
func (s *Server) message(w http.ResponseWriter, r *http.Request) {
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	s.mu.Lock()
	i, known := s.bySID[sid]
	var m Message
	if known {
		m = s.messages[i]
	}
	s.fetches++
	s.mu.Unlock()
	if !ok || !known || m.AccountSID != r.PathValue("account") {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	writeJSON(w, s.render(m))
}

// media answers ListMedia, in one page.
func (s *Server) media(w http.ResponseWriter, r *http.Request) {
	sid := r.PathValue("sid")
	s.mu.Lock()
	i, known := s.bySID[sid]
	var m Message
	if known {
		m = s.messages[i]
	}
	s.mediaLists++
	s.mu.Unlock()
	if !known || m.AccountSID != r.PathValue("account") {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	list := make([]map[string]any, len(m.Media))
	for i, md := range m.Media {
		list[i] = map[string]any{
			"sid": md.SID, "account_sid": m.AccountSID, "parent_sid": m.SID, "content_type": md.ContentType,
			"date_created": m.Sent.Format(time.RFC1123Z), "date_updated": m.Sent.Format(time.RFC1123Z),
			"uri": "/2010-04-01/Accounts/" + m.AccountSID + "/Messages/" + m.SID + "/Media/" + md.SID + ".json",
		}
	}
	writeJSON(w, map[string]any{"media_list": list, "next_page_uri": nil, "page": 0, "page_size": 100, "uri": r.URL.RequestURI()})
}

// render is a message as Twilio's API shows it.
func (s *Server) render(m Message) map[string]any {
	nullable := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	var code any
	if m.ErrorCode != 0 {
		code = m.ErrorCode
	}
	segments := m.NumSegments
	if segments == 0 {
		segments = 1
	}
	base := "/2010-04-01/Accounts/" + m.AccountSID + "/Messages/" + m.SID
	return map[string]any{
		"sid": m.SID, "account_sid": m.AccountSID, "messaging_service_sid": nullable(m.MessagingServiceSID),
		"from": m.From, "to": m.To, "body": m.Body, "num_media": strconv.Itoa(len(m.Media)), "num_segments": strconv.Itoa(segments),
		"direction": m.Direction, "status": m.Status, "error_code": code, "error_message": nil,
		"date_created": m.Sent.Format(time.RFC1123Z), "date_sent": m.Sent.Format(time.RFC1123Z), "date_updated": m.Sent.Format(time.RFC1123Z),
		"price": nil, "price_unit": "USD", "api_version": "2010-04-01", "uri": base + ".json",
		"subresource_uris": map[string]string{"media": base + "/Media.json", "feedback": base + "/Feedback.json"},
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
