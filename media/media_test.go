package media_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/internal/twiliotest"
	"inbox/internal/workertest"
	"inbox/media"
	"inbox/message"
	"inbox/metrics"
	"inbox/queue"
	"inbox/store"
	"inbox/twilioapi"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	account = "AC0123456789abcdef0123456789abcdef"
	token   = "0123456789abcdef0123456789abcdef"
)

// harness is a store, a Twilio stand-in holding media, and a process
// running the media's workers against both, with a short backoff.
type harness struct {
	pool   *pgxpool.Pool
	st     *store.Store
	tw     *twiliotest.Server
	keeper *media.Keeper
}

func setup(t *testing.T, maxBytes int64) *harness { return setupWith(t, maxBytes, true) }

// setupWith is setup, without the media's workers unless workers, after
// edits to the keeper's configuration.
func setupWith(t *testing.T, maxBytes int64, workers bool, edits ...func(*media.Config)) *harness {
	t.Helper()
	pool := dbtest.Pool(t, 8)
	st := store.New(pool)
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	tw.AddAccount(account, token)
	api, err := twilioapi.New(tw.URL, twilioapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := media.Config{Store: st, API: api, MaxBytes: maxBytes, Logger: slog.New(slog.DiscardHandler),
		Credentials: func(_ context.Context, sid string) (twilioapi.Credentials, error) {
			return twilioapi.Credentials{AccountSID: sid, Token: token}, nil
		}}
	for _, edit := range edits {
		edit(&cfg)
	}
	keeper := media.New(cfg)
	h := &harness{pool: pool, st: st, tw: tw, keeper: keeper}
	if !workers {
		return h
	}
	q, err := queue.New(pool, queue.Config{Logger: slog.New(slog.DiscardHandler), Store: st,
		Queues:            map[string]int{media.Queue: media.Workers},
		Backoff:           func(int) time.Duration { return 20 * time.Millisecond },
		FetchPollInterval: 50 * time.Millisecond, JobTimeout: 30 * time.Second,
		Register: func(_ *queue.Queue, ws *queue.Workers) []queue.Periodic { keeper.Register(ws); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	workertest.Run(t, q.Run)
	return h
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// message holds at the stand-in a message with media of the given sizes
// and returns it as its webhook stores it.
func (h *harness) message(t *testing.T, sizes ...int) (message.Inbound, []twiliotest.Medium) {
	t.Helper()
	return h.messageOf(t, "image/jpeg", sizes...)
}

// messageOf is message, with media of type ct.
func (h *harness) messageOf(t *testing.T, ct string, sizes ...int) (message.Inbound, []twiliotest.Medium) {
	t.Helper()
	sid := fixture.SID()
	m := fixture.Between(sid, "+15550000001", "+15550000002", account)
	var ms []twiliotest.Medium
	for i, n := range sizes {
		md := twiliotest.Medium{SID: fmt.Sprintf("ME%030x%02d", time.Now().UnixNano()&0xffffffffffff, i), ContentType: ct, Body: randomBytes(n)}
		ms = append(ms, md)
		m.Media = append(m.Media, message.Media{URL: h.tw.MediumURL(account, sid, md.SID), ContentType: md.ContentType})
	}
	m.NumMedia = int32(len(ms))
	h.tw.Add(twiliotest.Message{SID: sid, AccountSID: account, Direction: "inbound", Status: "received", Sent: time.Now(), Media: ms})
	return m, ms
}

// medium is a medium's row.
type medium struct {
	state, reason string
	attempts      int
	size          int64
	sum           []byte
	bytes         []byte
}

func (h *harness) media(t *testing.T, sid string) []medium {
	t.Helper()
	rows, err := h.pool.Query(t.Context(), `SELECT md.id, md.state, coalesce(md.reason, ''), md.attempts, coalesce(md.size, -1), coalesce(md.sha256, '')
		FROM media md JOIN messages m ON m.id = md.message_id WHERE m.metadata->>'message_sid' = $1 ORDER BY md.position`, sid)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	var out []medium
	for rows.Next() {
		var id int64
		var m medium
		if err := rows.Scan(&id, &m.state, &m.reason, &m.attempts, &m.size, &m.sum); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		out = append(out, m)
	}
	rows.Close()
	for i, id := range ids {
		var b bytes.Buffer
		if _, err := h.st.MediumBytes(t.Context(), id, &b); err != nil {
			t.Fatal(err)
		}
		out[i].bytes = b.Bytes()
	}
	return out
}

// settled reports whether no medium of sid is still owed.
func (h *harness) settled(t *testing.T, sid string) bool {
	var owed int
	if err := h.pool.QueryRow(t.Context(), `SELECT count(*) FROM media md JOIN messages m ON m.id = md.message_id
		WHERE m.metadata->>'message_sid' = $1 AND md.state = 'fetching'`, sid).Scan(&owed); err != nil {
		t.Fatal(err)
	}
	return owed == 0
}

// TestEachMediumIsKeptOnceHoweverOftenItsMessageArrives: a message with
// three media (one over a storage piece, one of several pieces) stored by
// 20 deliveries at once: one job, each medium fetched once with the
// account's credentials (the CDN it redirects to gets none), its bytes
// kept whole, with their size and hash.
func TestEachMediumIsKeptOnceHoweverOftenItsMessageArrives(t *testing.T) {
	t.Parallel()
	h := setup(t, 0)
	m, want := h.message(t, 1000, store.MediumChunkSize+1, 3*store.MediumChunkSize+12345)
	var wg sync.WaitGroup
	var inserted atomic.Int32
	for range 20 {
		wg.Go(func() {
			_, ok, err := h.st.InsertInboundMessage(t.Context(), m)
			if err != nil {
				t.Error(err)
			}
			if ok {
				inserted.Add(1)
			}
		})
	}
	wg.Wait()
	if inserted.Load() != 1 {
		t.Fatalf("%d inserts stored the message, want 1", inserted.Load())
	}
	poll.Until(t, "every medium kept", func() bool { return h.settled(t, m.Metadata.MessageSID) })
	got := h.media(t, m.Metadata.MessageSID)
	if len(got) != len(want) {
		t.Fatalf("%d media rows, want %d", len(got), len(want))
	}
	for i, md := range got {
		sum := sha256.Sum256(want[i].Body)
		if md.state != store.MediumKept || !bytes.Equal(md.bytes, want[i].Body) || md.size != int64(len(want[i].Body)) || !bytes.Equal(md.sum, sum[:]) {
			t.Errorf("medium %d: %s (%s), %d bytes kept of %d, size %d", i, md.state, md.reason, len(md.bytes), len(want[i].Body), md.size)
		}
	}
	c := h.tw.Counts()
	for _, md := range want {
		if c.MediaFetches[md.SID] != 1 {
			t.Errorf("medium %s fetched %d times, want once", md.SID, c.MediaFetches[md.SID])
		}
	}
	if c.CDNWithAuth != 0 || c.CDNGets != len(want) {
		t.Errorf("the CDN got %d requests, %d of them with credentials; want %d, none", c.CDNGets, c.CDNWithAuth, len(want))
	}
	var jobs int
	h.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'inbox_media'`).Scan(&jobs)
	if jobs != 1 {
		t.Errorf("%d media jobs, want 1", jobs)
	}
}

// TestAMediumNotReadyIsKeptAfterARetry: Twilio answers 404 twice (the
// medium not ready yet), then the medium.
func TestAMediumNotReadyIsKeptAfterARetry(t *testing.T) {
	t.Parallel()
	h := setup(t, 0)
	h.tw.MediumAnswers(func(_ string, n int) int {
		if n <= 2 {
			return http.StatusNotFound
		}
		return 0
	})
	m, want := h.message(t, 5000)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the medium kept after its 404s", func() bool { return h.settled(t, m.Metadata.MessageSID) })
	got := h.media(t, m.Metadata.MessageSID)
	if got[0].state != store.MediumKept || !bytes.Equal(got[0].bytes, want[0].Body) || got[0].attempts != 3 {
		t.Fatalf("medium: %s (%s) after %d attempts, %d bytes", got[0].state, got[0].reason, got[0].attempts, len(got[0].bytes))
	}
}

// TestAMediumFailingTenTimesIsGivenUp: Twilio answers 500 every time: the
// tenth failure gives the medium up, with the last reason, and its job
// ends; a medium over MEDIA_MAX_BYTES is given up at once. The metrics
// count each failure by reason and each medium given up.
func TestAMediumFailingTenTimesIsGivenUp(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	h := setupWith(t, 64<<10, true, func(c *media.Config) { c.Metrics = m })
	h.tw.MediumAnswers(func(sid string, _ int) int {
		if sid[len(sid)-2:] == "00" {
			return http.StatusInternalServerError
		}
		return 0
	})
	msg, want := h.message(t, 100, 100<<10)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "both media given up", func() bool { return h.settled(t, msg.Metadata.MessageSID) })
	got := h.media(t, msg.Metadata.MessageSID)
	if got[0].state != store.MediumFailed || got[0].attempts != media.GiveUpAfter || h.tw.Counts().MediaFetches[want[0].SID] != media.GiveUpAfter ||
		got[0].reason != "twilio answered 500" {
		t.Errorf("the medium answered 500: %s (%q) after %d attempts, %d fetches", got[0].state, got[0].reason, got[0].attempts,
			h.tw.Counts().MediaFetches[want[0].SID])
	}
	if got[1].state != store.MediumFailed || got[1].attempts != 1 || len(got[1].bytes) != 0 {
		t.Errorf("the medium over the bound: %s (%q) after %d attempts, %d bytes kept", got[1].state, got[1].reason, got[1].attempts, len(got[1].bytes))
	}
	counts := map[string]float64{}
	mfs, _ := m.Gatherer().Gather()
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range mt.GetLabel() {
				name += "/" + l.GetValue()
			}
			counts[name] = mt.GetCounter().GetValue()
		}
	}
	if counts["inbox_media_failures_total/twilio_error"] != media.GiveUpAfter || counts["inbox_media_failures_total/too_large"] != 1 ||
		counts["inbox_media_given_up_total"] != 2 {
		t.Errorf("metrics: %v failures to Twilio's 500, %v too large, %v given up; want %d, 1, 2", counts["inbox_media_failures_total/twilio_error"],
			counts["inbox_media_failures_total/too_large"], counts["inbox_media_given_up_total"], media.GiveUpAfter)
	}
	poll.Until(t, "the media job finished", func() bool {
		var state string
		h.pool.QueryRow(t.Context(), `SELECT state FROM river_job WHERE kind = 'inbox_media'`).Scan(&state)
		return state == "completed"
	})
}

// TestAMediumElsewhereIsNeverFetched: a MediaUrl on another host (or
// another account's, or not a medium's path) is never requested; the
// message is stored and its medium marked refused, saying why.
func TestAMediumElsewhereIsNeverFetched(t *testing.T) {
	t.Parallel()
	h := setup(t, 0)
	var requests atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer elsewhere.Close()
	m, _ := h.message(t, 10, 10, 10)
	m.Media[0].URL = elsewhere.URL + "/2010-04-01/Accounts/" + account + "/Messages/" + m.Metadata.MessageSID + "/Media/ME0123456789abcdef0123456789abcdef"
	m.Media[1].URL = h.tw.MediumURL("ACffffffffffffffffffffffffffffffff", m.Metadata.MessageSID, "ME0123456789abcdef0123456789abcdef")
	m.Media[2].URL = h.tw.URL + "/2010-04-01/Accounts/" + account + "/Calls.json"
	if _, ok, err := h.st.InsertInboundMessage(t.Context(), m); err != nil || !ok {
		t.Fatalf("the message: stored %v, %v", ok, err)
	}
	poll.Until(t, "the media settled", func() bool { return h.settled(t, m.Metadata.MessageSID) })
	for i, md := range h.media(t, m.Metadata.MessageSID) {
		if md.state != store.MediumRefused || md.reason == "" {
			t.Errorf("medium %d: %s (%q), want refused with a reason", i, md.state, md.reason)
		}
	}
	if requests.Load() != 0 || len(h.tw.Counts().MediaFetches) != 0 {
		t.Fatalf("requests: %d to the other host, %v to the API", requests.Load(), h.tw.Counts().MediaFetches)
	}
}

// TestAMediumIsDeletedAtTwilioOnlyOnceKept: with DeleteAtTwilio, each
// medium kept (its bytes read back and checked) is deleted at Twilio once
// and recorded so; one given up is never deleted.
func TestAMediumIsDeletedAtTwilioOnlyOnceKept(t *testing.T) {
	t.Parallel()
	h := setupWith(t, 0, true, func(c *media.Config) { c.DeleteAtTwilio = true })
	h.tw.MediumAnswers(func(sid string, _ int) int {
		if sid[len(sid)-2:] == "01" {
			return http.StatusForbidden
		}
		return 0
	})
	m, want := h.message(t, 300<<10, 10)
	if _, _, err := h.st.InsertInboundMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the kept medium deleted at Twilio, the other given up", func() bool {
		var deleted int
		h.pool.QueryRow(t.Context(), `SELECT count(*) FROM media WHERE deleted_at_twilio IS NOT NULL`).Scan(&deleted)
		return deleted == 1 && h.settled(t, m.Metadata.MessageSID)
	})
	got := h.media(t, m.Metadata.MessageSID)
	c := h.tw.Counts()
	if got[0].state != store.MediumKept || !bytes.Equal(got[0].bytes, want[0].Body) || c.MediaDeleted[want[0].SID] != 1 {
		t.Errorf("the kept medium: %s, %d bytes, deleted at Twilio %d times; want kept whole and deleted once", got[0].state, len(got[0].bytes), c.MediaDeleted[want[0].SID])
	}
	if got[1].state != store.MediumFailed || c.MediaDeleted[want[1].SID] != 0 {
		t.Errorf("the medium given up: %s, deleted at Twilio %d times; want never", got[1].state, c.MediaDeleted[want[1].SID])
	}
}
