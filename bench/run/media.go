package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/bench"
	"inbox/media"
	"inbox/simulate"
	"inbox/store"
)

// mediaStandIn is Twilio's media host as ../shared/twilio-media.md says it
// behaves: the API's media path wants the account's Basic auth and
// redirects to a CDN path (here on the same server) that wants none. Every
// medium is the same bytes.
type mediaStandIn struct {
	url  string
	body []byte
	gets atomic.Int64 // the CDN's: bytes sent to the service, once per fetch
}

func startMediaStandIn(size int) (*mediaStandIn, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	m := &mediaStandIn{url: "http://" + ln.Addr().String(), body: make([]byte, size)}
	rand.Read(m.body) // incompressible, as pictures are: the database stores them as they are
	srv := &http.Server{Handler: m}
	go srv.Serve(ln)
	return m, func() { srv.Close() }, nil
}

func (m *mediaStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/cdn/") {
		m.gets.Add(1)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(m.body)))
		w.Write(m.body)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != simulate.AccountSID || pass != token {
		http.Error(w, "authenticate", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/cdn"+r.URL.Path, http.StatusTemporaryRedirect)
}

// mediumURL is the MediaUrl0 of the message sid: its one medium.
func (m *mediaStandIn) mediumURL(sid string) string {
	return fmt.Sprintf("%s/2010-04-01/Accounts/%s/Messages/%s/Media/ME%032x", m.url, simulate.AccountSID, sid, 0)
}

// mmsResult is one MMS run of the all-new mix: the ingest, how long after
// the load the last medium was kept, and what the media cost the database.
type mmsResult struct {
	res          bench.Result
	keptBy       time.Duration // after the load ended
	bytesPerMMS  float64       // media and media_chunks, per medium kept
	bytesPerText float64       // messages, per message
}

// mmsIngest runs the all-new mix at concurrency c with every message an MMS
// carrying one medium of size bytes, each fetched from a stand-in for
// Twilio by the service's media jobs (WORKERS as by default), and waits
// until all are kept. With elsewhere, the service runs no workers
// (WORKERS=0, as beside an `inbox work`): the run measures what storing an
// MMS costs ingest, and ends with the load.
func (h *harness) mmsIngest(ctx context.Context, c, size int, elsewhere bool) (mmsResult, error) {
	tw, stop, err := startMediaStandIn(size)
	if err != nil {
		return mmsResult{}, err
	}
	defer stop()
	var out mmsResult
	l := bench.Load{Mix: bench.AllNew, Concurrency: c, Duration: h.cfg.duration, Kinds: []simulate.Kind{simulate.MMS}, MediaURL: tw.mediumURL}
	env := []string{"TWILIO_API_URL=" + tw.url}
	if elsewhere {
		env = append(env, "WORKERS=0")
	}
	res, _, err := h.serviceWith(ctx, l, env, nil,
		func(ctx context.Context, pool *pgxpool.Pool, res bench.Result, _ runCost) error {
			if elsewhere {
				return nil
			}
			end := time.Now()
			if err := waitKept(ctx, pool, len(res.SIDs), 5*time.Minute); err != nil {
				return err
			}
			out.keptBy = time.Since(end)
			var mediaBytes, textBytes, kept, msgs float64
			err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('media') + pg_total_relation_size('media_chunks'),
				pg_total_relation_size('messages'), (SELECT count(*) FROM media), (SELECT count(*) FROM messages)`).Scan(&mediaBytes, &textBytes, &kept, &msgs)
			out.bytesPerMMS, out.bytesPerText = mediaBytes/kept, textBytes/msgs
			if got := tw.gets.Load(); err == nil && got != int64(len(res.SIDs)) {
				err = fmt.Errorf("MMS at %d: %d media fetched for %d messages", c, got, len(res.SIDs))
			}
			return err
		})
	out.res = res
	return out, err
}

// waitKept waits until n media are kept.
func waitKept(ctx context.Context, pool *pgxpool.Pool, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var kept, failed int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'kept'), count(*) FILTER (WHERE state NOT IN ('kept', 'fetching')) FROM media`).Scan(&kept, &failed); err != nil {
			return err
		}
		switch {
		case kept == n:
			return nil
		case failed > 0:
			return fmt.Errorf("%d media not kept", failed)
		case time.Now().After(deadline):
			return fmt.Errorf("%d of %d media kept after %s", kept, n, within)
		}
		time.Sleep(50 * time.Millisecond) // polls the database, as an operator would
	}
}

// mediaRSS stores n messages of one medium of size bytes each, then at once
// downloads every medium through its download_url while the media jobs
// fetch them too, then downloads them all again from the database, and
// returns the service's peak RSS in MiB (VmHWM over its whole life).
func (h *harness) mediaRSS(ctx context.Context, n, size int) (float64, error) {
	tw, stop, err := startMediaStandIn(size)
	if err != nil {
		return 0, err
	}
	defer stop()
	var peak float64
	l := bench.Load{Mix: bench.Storm, Concurrency: 1, Storms: n, Kinds: []simulate.Kind{simulate.MMS}, MediaURL: tw.mediumURL}
	_, _, err = h.serviceWith(ctx, l, []string{"TWILIO_API_URL=" + tw.url}, nil,
		func(ctx context.Context, pool *pgxpool.Pool, res bench.Result, run runCost) error {
			links := media.NewLinks(store.New(pool), run.base, 0)
			var urls []string
			rows, err := pool.Query(ctx, `SELECT id FROM media ORDER BY id`)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			for _, id := range ids {
				u, err := links.URL(ctx, id)
				if err != nil {
					return err
				}
				urls = append(urls, u)
			}
			if len(urls) != n {
				return fmt.Errorf("%d media rows for %d messages", len(urls), n)
			}
			if err := downloadAll(ctx, urls, size); err != nil {
				return fmt.Errorf("while fetched: %w", err)
			}
			if err := waitKept(ctx, pool, n, 5*time.Minute); err != nil {
				return err
			}
			if err := downloadAll(ctx, urls, size); err != nil {
				return fmt.Errorf("once kept: %w", err)
			}
			peak = peakRSS(run.pid)
			return nil
		})
	return peak, err
}

// downloadAll GETs every url at once and checks each body's size.
func downloadAll(ctx context.Context, urls []string, size int) error {
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			got, err := io.Copy(io.Discard, resp.Body)
			if err == nil && (resp.StatusCode != http.StatusOK || got != int64(size)) {
				err = fmt.Errorf("GET %d: %d bytes of %d", resp.StatusCode, got, size)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// mediaRuns alternates, at concurrency c, the all-new mix of SMS only and
// of MMS with one medium of 200 KB each, h.cfg.rounds times (the medians
// are reported), then measures the peak RSS of ten 16 MB media fetched and
// served at once.
func (h *harness) mediaRuns(ctx context.Context, c int) (mediaReport, error) {
	var rep mediaReport
	for r := range h.cfg.rounds {
		sms, _, err := h.service(ctx, bench.Load{Mix: bench.AllNew, Concurrency: c, Duration: h.cfg.duration, Kinds: []simulate.Kind{simulate.SMS}})
		if err != nil {
			return rep, err
		}
		mms, err := h.mmsIngest(ctx, c, 200<<10, false)
		if err != nil {
			return rep, err
		}
		bare, err := h.mmsIngest(ctx, c, 200<<10, true)
		if err != nil {
			return rep, err
		}
		fmt.Fprintf(os.Stderr, "media round %d at %d: SMS %.0f req/s, MMS %.0f req/s (every medium kept %s after the load), MMS with the media kept elsewhere %.0f req/s\n",
			r+1, c, sms.RPS(), mms.res.RPS(), mms.keptBy.Round(time.Millisecond), bare.res.RPS())
		rep.sms, rep.mms, rep.bare = append(rep.sms, sms), append(rep.mms, mms), append(rep.bare, bare.res)
	}
	var err error
	rep.rssMB, err = h.mediaRSS(ctx, 10, 16<<20)
	return rep, err
}

// mediaReport is what mediaRuns measured.
type mediaReport struct {
	sms   []bench.Result
	mms   []mmsResult
	bare  []bench.Result // MMS, WORKERS=0
	rssMB float64
}

// render is the report's section on media; nothing when not run.
func (r *mediaReport) render() string {
	if r == nil || len(r.mms) == 0 {
		return ""
	}
	byRate := func(a, b bench.Result) int { return cmp.Compare(a.RPS(), b.RPS()) }
	sms := slices.SortedFunc(slices.Values(r.sms), byRate)[len(r.sms)/2]
	bare := slices.SortedFunc(slices.Values(r.bare), byRate)[len(r.bare)/2]
	mms := slices.SortedFunc(slices.Values(r.mms), func(a, b mmsResult) int { return cmp.Compare(a.res.RPS(), b.res.RPS()) })[len(r.mms)/2]
	var b strings.Builder
	fmt.Fprintf(&b, "\nMedia: the all-new mix at concurrency %d, SMS only; MMS with one 200 KB medium each, fetched by the service's media jobs (as by default) from a stand-in for Twilio that wants Basic auth and redirects to a CDN path, on the same two cores; and the same MMS with no workers in the service (`WORKERS=0`, as when `inbox work` runs on another machine). Alternating %d times (medians).\n\n",
		sms.Concurrency, len(r.mms))
	b.WriteString("| messages | req/s | p50 ms | p99 ms | MMS / SMS | every medium kept, after the load | database per medium kept | `messages` per message |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| SMS | %.0f | %s | %s | | | | |\n", sms.RPS(), ms(sms.P50), ms(sms.P99))
	fmt.Fprintf(&b, "| MMS, 1 × 200 KB | %.0f | %s | %s | %.2f | %s | %.0f KiB | %.0f B |\n", mms.res.RPS(), ms(mms.res.P50), ms(mms.res.P99),
		mms.res.RPS()/sms.RPS(), mms.keptBy.Round(100*time.Millisecond), mms.bytesPerMMS/1024, mms.bytesPerText)
	fmt.Fprintf(&b, "| MMS, media kept elsewhere (`WORKERS=0`) | %.0f | %s | %s | %.2f | | | |\n", bare.RPS(), ms(bare.P50), ms(bare.P99), bare.RPS()/sms.RPS())
	fmt.Fprintf(&b, "\nPeak RSS of the service (VmHWM, its whole life) with ten 16 MiB media downloaded at once through their links while the media jobs fetch them, then all ten again from the database: %.0f MiB.\n", r.rssMB)
	return b.String()
}
