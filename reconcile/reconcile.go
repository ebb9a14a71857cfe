// Package reconcile makes the service gap-free: a sweep lists an account's
// messages on Twilio's REST API and stores every inbound one that no
// webhook stored, through the same statement and job as a webhook
// delivery, so a message found by a sweep and delivered by a late webhook
// at once is still one row, one job, one forward. It also asks Twilio for
// the status of outbound messages whose status callbacks may have been
// lost, and applies it as a callback would.
//
// A sweep lists its whole window (every day Twilio's day filter names:
// from the account's watermark minus an overlap, or the lookback on its
// first sweep, to the sweep's start) and never stops early on the dates it
// sees, so it is correct whatever order Twilio lists in (newest first by
// date_sent, as reported). It records where it stands after every page,
// so one cut short resumes there, and moves the watermark only once the
// window was listed whole.
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"inbox/internal/clip"
	"inbox/message"
	"inbox/metrics"
	"inbox/store"
	"inbox/twilio"
	"inbox/twilioapi"
)

// Defaults of Config.
const (
	DefaultOverlap     = 10 * time.Minute
	DefaultLookback    = 24 * time.Hour
	DefaultStatusAfter = 10 * time.Minute
	// DefaultStatusChecks bounds the outbound messages one sweep asks
	// Twilio about: one request each.
	DefaultStatusChecks = 100
)

// Config is what a Sweeper needs.
type Config struct {
	// Store is where found messages go: with JobAttempts when processing
	// is on, so each gets its job, as a webhook's does.
	Store *store.Store
	API   *twilioapi.Client
	// Accounts returns the accounts to sweep, with their tokens.
	Accounts func(ctx context.Context) ([]twilioapi.Credentials, error)
	// Overlap is how far before the watermark a sweep starts again;
	// Lookback how far back an account's first sweep looks.
	Overlap, Lookback time.Duration
	// StatusAfter is how long an outbound message's status must not have
	// moved before a sweep asks Twilio for it; StatusChecks how many a
	// sweep asks about at most.
	StatusAfter  time.Duration
	StatusChecks int
	// PageSize is the messages asked for a page (default 1000, Twilio's
	// most).
	PageSize int
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
}

// Sweeper sweeps accounts.
type Sweeper struct {
	cfg Config
	now func() time.Time
}

// New returns a Sweeper; zero fields of cfg take the defaults.
func New(cfg Config) *Sweeper {
	cfg.Overlap = cmp.Or(cfg.Overlap, DefaultOverlap)
	cfg.Lookback = cmp.Or(cfg.Lookback, DefaultLookback)
	cfg.StatusAfter = cmp.Or(cfg.StatusAfter, DefaultStatusAfter)
	cfg.StatusChecks = cmp.Or(cfg.StatusChecks, DefaultStatusChecks)
	cfg.PageSize = cmp.Or(cfg.PageSize, twilioapi.DefaultPageSize)
	return &Sweeper{cfg: cfg, now: time.Now}
}

// Result counts what a sweep did.
type Result struct {
	Pages        int // pages listed
	Listed       int // messages listed
	Stored       int // inbound messages in the window that were stored already
	Found        int // inbound messages stored now: no webhook had
	MediaFetched int // media lists asked for
	Invalid      int // listed messages that could not be stored as they were (logged)
	Statuses     int // outbound messages whose status was asked for
	StatusMoved  int // of them, those whose status moved: a callback was lost
	// MediaCompleted counts messages an event stored first whose media
	// the sweep added.
	MediaCompleted int
}

// Accounts returns the sids of the accounts to sweep.
func (s *Sweeper) Accounts(ctx context.Context) ([]string, error) {
	creds, err := s.cfg.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	sids := make([]string, len(creds))
	for i, c := range creds {
		sids[i] = c.AccountSID
	}
	return sids, nil
}

// SweepAccount runs (or resumes) the sweep of one account, recording its
// progress, then asks for the statuses that may be stuck: what the
// periodic job runs.
func (s *Sweeper) SweepAccount(ctx context.Context, accountSID string) error {
	cred, err := s.credentials(ctx, accountSID)
	if err != nil {
		return err
	}
	unlock, ok, err := s.cfg.Store.LockSweep(ctx, accountSID)
	if err != nil {
		return err
	}
	if !ok {
		s.cfg.Logger.DebugContext(ctx, "reconciliation sweep already under way elsewhere", "account_sid", accountSID)
		return nil
	}
	defer unlock()
	res, err := s.Sweep(ctx, cred)
	s.cfg.Metrics.ReconcileSweep(err == nil)
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "reconciliation sweep stopped short; the next resumes where it stood", "account_sid", accountSID,
			"pages", res.Pages, "listed", res.Listed, "found", res.Found, "err", err)
		return err
	}
	s.cfg.Metrics.ReconcileSucceeded(accountSID, s.now())
	level := slog.LevelDebug
	if res.Found > 0 || res.StatusMoved > 0 || res.Invalid > 0 || res.MediaCompleted > 0 {
		level = slog.LevelInfo
	}
	s.cfg.Logger.Log(ctx, level, "reconciliation sweep done", "account_sid", accountSID, "pages", res.Pages, "listed", res.Listed,
		"found", res.Found, "invalid", res.Invalid, "statuses", res.Statuses, "status_moved", res.StatusMoved, "media_completed", res.MediaCompleted)
	return nil
}

func (s *Sweeper) credentials(ctx context.Context, accountSID string) (twilioapi.Credentials, error) {
	creds, err := s.cfg.Accounts(ctx)
	if err != nil {
		return twilioapi.Credentials{}, err
	}
	for _, c := range creds {
		if c.AccountSID == accountSID {
			return c, nil
		}
	}
	return twilioapi.Credentials{}, fmt.Errorf("account %s: no token to call Twilio's API with (removed, disabled, or unreadable)", accountSID)
}

// Sweep runs, or resumes, the recorded sweep of cred's account: from its
// watermark minus the overlap (the lookback, the first time) to now; it
// moves the watermark when the window is listed whole. Then it asks for the
// statuses that may be stuck.
func (s *Sweeper) Sweep(ctx context.Context, cred twilioapi.Credentials) (Result, error) {
	var res Result
	sw, err := s.cfg.Store.Sweep(ctx, cred.AccountSID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	w := window{persist: true, listed: sw.Listed, found: sw.Found}
	if sw.To != nil && sw.NextPageURI != "" { // a sweep under way: resume it
		w.from, w.to, w.page = *sw.From, *sw.To, sw.NextPageURI
	} else if w, err = s.start(ctx, cred, sw); err != nil {
		return res, err
	}
	res, err = s.list(ctx, cred, w, nil)
	if err != nil {
		if ferr := s.cfg.Store.FailSweep(context.WithoutCancel(ctx), cred.AccountSID, err.Error()); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return res, err
	}
	if err := s.statuses(ctx, cred, &res); err != nil {
		return res, err
	}
	if err := s.awaitedMedia(ctx, cred, &res); err != nil {
		return res, err
	}
	return res, nil
}

// start records a new sweep of the account.
func (s *Sweeper) start(ctx context.Context, cred twilioapi.Credentials, sw store.Sweep) (window, error) {
	now := s.now()
	w := window{persist: true, to: now, from: now.Add(-s.cfg.Lookback)}
	if sw.Watermark != nil {
		w.from = sw.Watermark.Add(-s.cfg.Overlap)
	}
	w.page = twilioapi.MessagesURI(cred.AccountSID, twilioapi.ListQuery{Since: w.from, PageSize: s.cfg.PageSize})
	return w, s.cfg.Store.StartSweep(ctx, cred.AccountSID, w.from, w.to, w.page)
}

// SweepSince lists cred's account's messages sent since since, once, and
// stores what is missing, without touching the recorded sweep (what
// `inbox reconcile` runs: a backfill). progress, when set, is told after
// each page.
func (s *Sweeper) SweepSince(ctx context.Context, cred twilioapi.Credentials, since time.Time, progress func(Result)) (Result, error) {
	w := window{from: since, to: s.now()}
	w.page = twilioapi.MessagesURI(cred.AccountSID, twilioapi.ListQuery{Since: since, PageSize: s.cfg.PageSize})
	res, err := s.list(ctx, cred, w, progress)
	if err != nil {
		return res, err
	}
	err = s.statuses(ctx, cred, &res)
	return res, err
}

// window is what a sweep lists: messages sent in [from, to], from page on.
type window struct {
	from, to      time.Time
	page          string
	persist       bool  // record progress (the periodic sweep)
	listed, found int64 // before page
}

// ErrPageLoop is a listing that comes back on itself: a next page listed
// already in this sweep, or a page listing only what the page before it
// listed. Twilio's API never does; followed, it would run for the whole
// sweep, storing nothing new.
var ErrPageLoop = errors.New("a listing that comes back on itself")

// list lists w's pages to the end, each once: a listing that comes back on
// itself stops with ErrPageLoop, and a recorded sweep starts its window
// over next time rather than resume at the looping page.
func (s *Sweeper) list(ctx context.Context, cred twilioapi.Credentials, w window, progress func(Result)) (Result, error) {
	var res Result
	restarted := false
	first := w.page
	listed := map[string]bool{}
	var previous map[string]bool // the sids of the page before
	for w.page != "" {
		if listed[w.page] {
			return res, s.loop(ctx, cred, w, first, "its next page is one it listed already")
		}
		listed[w.page] = true
		page, err := s.cfg.API.MessagesPage(ctx, cred, w.page)
		if te, ok := errors.AsType[*twilioapi.Error](err); ok && te.Code == 21481 && w.persist && !restarted {
			// The page token of a resumed sweep expired: list the window again.
			restarted = true
			w.page = twilioapi.MessagesURI(cred.AccountSID, twilioapi.ListQuery{Since: w.from, PageSize: s.cfg.PageSize})
			if err := s.cfg.Store.StartSweep(ctx, cred.AccountSID, w.from, w.to, w.page); err != nil {
				return res, err
			}
			w.listed, w.found = 0, 0
			first, listed, previous = w.page, map[string]bool{}, nil
			continue
		}
		if err != nil {
			return res, fmt.Errorf("list messages of %s: %w", cred.AccountSID, err)
		}
		res.Pages++
		if repeatsPage(previous, page) {
			return res, s.loop(ctx, cred, w, first, "a page lists only what the page before it listed")
		}
		previous = sidsOf(page)
		if err := s.page(ctx, cred, &w, page, &res); err != nil {
			return res, err
		}
		if progress != nil {
			progress(res)
		}
		w.page = page.NextPageURI
	}
	if w.persist {
		return res, s.cfg.Store.FinishSweep(ctx, cred.AccountSID, w.listed, w.found)
	}
	return res, nil
}

// loop stops a listing that came back on itself: a recorded sweep is set
// to list its window from the first page next time.
func (s *Sweeper) loop(ctx context.Context, cred twilioapi.Credentials, w window, first, why string) error {
	err := fmt.Errorf("list messages of %s: %w: %s (at %s)", cred.AccountSID, ErrPageLoop, why, clip.Clip(w.page))
	if w.persist {
		if serr := s.cfg.Store.StartSweep(ctx, cred.AccountSID, w.from, w.to, first); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}

// repeatsPage reports whether page lists messages and all of them were on
// the page before (previous).
func repeatsPage(previous map[string]bool, page twilioapi.Page) bool {
	if len(previous) == 0 || len(page.Messages) == 0 {
		return false
	}
	for _, m := range page.Messages {
		if !previous[m.SID] {
			return false
		}
	}
	return true
}

func sidsOf(page twilioapi.Page) map[string]bool {
	sids := make(map[string]bool, len(page.Messages))
	for _, m := range page.Messages {
		sids[m.SID] = true
	}
	return sids
}

// page stores what one page lists that is missing: one statement asks
// which are (and records the progress), one batch stores them.
func (s *Sweeper) page(ctx context.Context, cred twilioapi.Credentials, w *window, page twilioapi.Page, res *Result) error {
	candidates := s.candidates(ctx, cred, w, page, res)
	sids := make([]string, len(candidates))
	for i, m := range candidates {
		sids[i] = m.SID
	}
	var p *store.Progress
	if w.persist {
		p = &store.Progress{AccountSID: cred.AccountSID, Page: w.page, Listed: w.listed, Found: w.found}
	}
	missing, err := s.cfg.Store.MissingMessages(ctx, sids, p)
	if err != nil {
		return err
	}
	res.Listed += len(page.Messages)
	s.cfg.Metrics.ReconcileListed(len(page.Messages))
	w.listed += int64(len(page.Messages))
	res.Stored += len(candidates) - len(missing)
	if len(missing) == 0 {
		return nil
	}
	bySID := make(map[string]twilioapi.Message, len(candidates))
	for _, m := range candidates {
		bySID[m.SID] = m
	}
	found := make([]message.Inbound, 0, len(missing))
	for _, sid := range missing {
		in, fetched, err := s.inbound(ctx, cred, bySID[sid])
		res.MediaFetched += fetched
		if err != nil {
			return err
		}
		found = append(found, in)
	}
	inserted, err := s.cfg.Store.InsertInboundMessages(ctx, found)
	if err != nil {
		return err
	}
	now := s.now()
	for i, r := range inserted {
		if !r.Inserted {
			res.Stored++ // a webhook stored it meanwhile
			continue
		}
		res.Found++
		w.found++
		s.cfg.Metrics.ReconcileFound(metrics.KindMessage)
		sent, _ := bySID[found[i].Metadata.MessageSID].Sent()
		s.cfg.Logger.InfoContext(ctx, "message found by reconciliation: no webhook had stored it", "account_sid", cred.AccountSID,
			"sid", found[i].Metadata.MessageSID, "id", r.ID, "age", now.Sub(sent).Round(time.Second).String())
	}
	return nil
}

// candidates are the page's inbound messages of the window, to store if
// missing; those that cannot be stored as they are are counted and logged.
func (s *Sweeper) candidates(ctx context.Context, cred twilioapi.Credentials, w *window, page twilioapi.Page, res *Result) []twilioapi.Message {
	var candidates []twilioapi.Message
	for _, m := range page.Messages {
		if ok, why := s.candidate(cred, w, m); why != "" {
			res.Invalid++
			s.cfg.Metrics.ReconcileInvalid()
			s.cfg.Logger.WarnContext(ctx, "reconciliation skipped a listed message", "account_sid", cred.AccountSID, "sid", clip.Clip(m.SID), "reason", why)
		} else if ok {
			candidates = append(candidates, m)
		}
	}
	return candidates
}

// candidate says whether a listed message is an inbound one of the window
// to store if missing; why is set when it cannot be stored as it is.
func (s *Sweeper) candidate(cred twilioapi.Credentials, w *window, m twilioapi.Message) (ok bool, why string) {
	switch m.Direction {
	case "inbound":
	case "outbound-api", "outbound-call", "outbound-reply":
		return false, "" // the status sweep's, not this one's
	default:
		return false, fmt.Sprintf("direction %q is not one Twilio documents", clip.Clip(m.Direction))
	}
	sent, err := m.Sent()
	switch {
	case !twilio.IsMessageSID(m.SID):
		return false, "sid is not a message sid (SM or MM and 32 lower-case hex digits)"
	case m.AccountSID != cred.AccountSID:
		return false, "listed under another account"
	case err != nil:
		return false, err.Error()
	case m.Status == "receiving":
		return false, "" // media still arriving: a later sweep takes it, within the overlap
	case sent.Before(w.from):
		return false, "" // the day filter lists more than the window: outside it, retention may have deleted it
	case m.From == "" || m.To == "":
		return false, "no from or to"
	case !message.Storable(m.Body) || !message.Storable(m.From) || !message.Storable(m.To):
		return false, "text PostgreSQL cannot store exactly (invalid UTF-8 or NUL)"
	}
	if _, err := count(m.NumMedia, 0); err != nil {
		return false, "num_media: " + err.Error()
	}
	if _, err := count(m.NumSegments, 1); err != nil {
		return false, "num_segments: " + err.Error()
	}
	return true, ""
}

// inbound is a found message as it is stored: the columns a webhook's
// has, its media from the media list, and the parameters a webhook would
// have carried that Twilio's API has too (not the webhook-only ones: the
// From*/To* geography, WhatsApp's ProfileName and WaId).
func (s *Sweeper) inbound(ctx context.Context, cred twilioapi.Credentials, m twilioapi.Message) (message.Inbound, int, error) {
	numMedia, _ := count(m.NumMedia, 0)
	numSegments, _ := count(m.NumSegments, 1)
	params := message.Params{
		"MessageSid": m.SID, "SmsMessageSid": m.SID, "SmsSid": m.SID, "AccountSid": m.AccountSID,
		"From": m.From, "To": m.To, "Body": m.Body, "NumMedia": strconv.Itoa(numMedia),
		"NumSegments": strconv.Itoa(numSegments), "SmsStatus": "received", "ApiVersion": "2010-04-01",
	}
	if m.APIVersion != "" {
		params["ApiVersion"] = m.APIVersion
	}
	if m.MessagingServiceSID != nil && *m.MessagingServiceSID != "" {
		params["MessagingServiceSid"] = *m.MessagingServiceSID
	}
	media := message.MediaList{}
	fetched := 0
	if numMedia > 0 {
		list, mediaParams, err := s.mediaOf(ctx, cred, m.SID)
		fetched = 1
		if err != nil {
			return message.Inbound{}, fetched, err
		}
		media = list
		maps.Copy(params, mediaParams)
		numMedia = len(media)
		params["NumMedia"] = strconv.Itoa(numMedia)
	}
	in := message.Inbound{
		AccountSID: m.AccountSID, MessagingServiceSID: params.Optional("MessagingServiceSid"),
		From: m.From, To: m.To, Body: m.Body, NumMedia: int32(numMedia), NumSegments: int32(numSegments), Media: media,
		Metadata: message.Metadata{MessageSID: m.SID, Source: message.SourceReconcile, Params: params},
	}
	return in, fetched, nil
}

// mediaOf lists the message sid's media on Twilio's API: as stored, and
// as the parameters a webhook carries for them (MediaUrlN,
// MediaContentTypeN).
func (s *Sweeper) mediaOf(ctx context.Context, cred twilioapi.Credentials, sid string) (message.MediaList, message.Params, error) {
	list, err := s.cfg.API.ListMedia(ctx, cred, sid)
	if err != nil {
		return nil, nil, fmt.Errorf("media of %s: %w", sid, err)
	}
	media, params := message.MediaList{}, message.Params{}
	for i, md := range list {
		u := s.cfg.API.MediaURL(md)
		media = append(media, message.Media{URL: u, ContentType: md.ContentType})
		params["MediaUrl"+strconv.Itoa(i)] = u
		params["MediaContentType"+strconv.Itoa(i)] = md.ContentType
	}
	return media, params, nil
}

// DefaultMediaChecks bounds the messages awaiting media one sweep asks
// Twilio about: one request each.
const DefaultMediaChecks = 100

// awaitedMedia completes the account's messages that an Event Streams
// event stored first with media it does not list (docs/event-streams.md):
// their media from Twilio's API, as a sweep stores a found message's. The
// webhook that completes one instead, or a later sweep, finds nothing to
// do. A message Twilio no longer has is left as it is.
func (s *Sweeper) awaitedMedia(ctx context.Context, cred twilioapi.Credentials, res *Result) error {
	sids, err := s.cfg.Store.MessagesAwaitingMedia(ctx, cred.AccountSID, DefaultMediaChecks)
	if err != nil {
		return err
	}
	for _, sid := range sids {
		media, params, err := s.mediaOf(ctx, cred, sid)
		if te, ok := errors.AsType[*twilioapi.Error](err); ok && te.Status == 404 {
			continue
		} else if err != nil {
			return err
		}
		if len(media) == 0 {
			continue
		}
		changed, err := s.cfg.Store.EnrichMessage(ctx, store.Enrichment{SID: sid, Params: params, Media: media, OnlySource: message.SourceEventStream})
		if err != nil {
			return err
		}
		if changed {
			res.MediaCompleted++
			s.cfg.Logger.InfoContext(ctx, "media of a message its event stored first, from Twilio's API", "account_sid", cred.AccountSID,
				"sid", sid, "media", len(media))
		}
	}
	return nil
}

// maxCount bounds num_media and num_segments, as the webhook's checks do.
const maxCount = 1000

// count parses a count Twilio's API gives as a string; empty is def.
func count(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxCount {
		return 0, fmt.Errorf("%q is not a whole number from 0 to %d", clip.Clip(s), maxCount)
	}
	return n, nil
}

// markChecked records, when a status check stops short, the messages it
// did check, so the next starts with the others; it outlives ctx, which
// may be what stopped it.
func (s *Sweeper) markChecked(ctx context.Context, checked []string) error {
	if err := s.cfg.Store.MarkStatusChecked(context.WithoutCancel(ctx), checked); err != nil {
		return fmt.Errorf("record the statuses checked: %w", err)
	}
	return nil
}

// statuses asks Twilio for the status of the account's outbound messages
// that may be stuck, and applies what moved as the callback would have:
// through the same monotonic upsert and job.
func (s *Sweeper) statuses(ctx context.Context, cred twilioapi.Credentials, res *Result) error {
	stuck, err := s.cfg.Store.UnfinishedOutbound(ctx, cred.AccountSID, s.now().Add(-s.cfg.StatusAfter), int32(s.cfg.StatusChecks))
	if err != nil || len(stuck) == 0 {
		return err
	}
	checked := make([]string, 0, len(stuck))
	for _, u := range stuck {
		m, err := s.cfg.API.FetchMessage(ctx, cred, u.SID)
		if te, ok := errors.AsType[*twilioapi.Error](err); ok && te.Status == 404 {
			checked = append(checked, u.SID) // Twilio no longer has it: nothing to learn
			continue
		} else if err != nil {
			return errors.Join(fmt.Errorf("status of %s: %w", u.SID, err), s.markChecked(ctx, checked))
		}
		checked = append(checked, u.SID)
		res.Statuses++
		if m.Status == u.Status || !twilio.IsStatus(m.Status) || m.SID != u.SID {
			continue
		}
		cb := message.StatusCallback{MessageSID: u.SID, Status: m.Status, AccountSID: m.AccountSID, From: m.From, To: m.To,
			Params: message.Params{"MessageSid": u.SID, "MessageStatus": m.Status, "AccountSid": m.AccountSID, "From": m.From, "To": m.To}}
		if m.ErrorCode != nil {
			code := strconv.Itoa(*m.ErrorCode)
			cb.ErrorCode, cb.Params["ErrorCode"] = &code, code
		}
		if m.MessagingServiceSID != nil && *m.MessagingServiceSID != "" {
			cb.MessagingServiceSID, cb.Params["MessagingServiceSid"] = m.MessagingServiceSID, *m.MessagingServiceSID
		}
		r, err := s.cfg.Store.RecordStatus(ctx, cb)
		if err != nil {
			return errors.Join(err, s.markChecked(ctx, checked))
		}
		if r.Moved {
			res.StatusMoved++
			s.cfg.Metrics.ReconcileFound(metrics.KindStatus)
			s.cfg.Logger.InfoContext(ctx, "status found by reconciliation: its callback was lost", "account_sid", cred.AccountSID,
				"sid", u.SID, "was", u.Status, "status", m.Status)
		}
	}
	return s.cfg.Store.MarkStatusChecked(ctx, checked)
}
