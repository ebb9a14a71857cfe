package dispatch_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"inbox/destination"
	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/internal/workertest"
	"inbox/job"
	"inbox/message"
	"inbox/store"
)

// TestBatchFailureRetriesThatMessageAlone: twenty messages stored together
// share one job; the app answers 500 to one of them twice: the other
// nineteen are forwarded once each, and the one is retried alone, by a job
// of its own, until the app takes it.
func TestBatchFailureRetriesThatMessageAlone(t *testing.T) {
	t.Parallel()
	sids := make([]string, 20)
	for i := range sids {
		sids[i] = fixture.SID()
	}
	bad := sids[7]
	var badCalls atomic.Int64
	app := teamapp.New(t, teamapp.Options{AnswerFor: func(id string, _ http.Header) int {
		if id == bad && badCalls.Add(1) <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}})
	pool := dbtest.Pool(t, 8)
	st := store.NewWith(pool, store.Options{JobAttempts: maxAttempts})
	in := make([]message.Inbound, len(sids))
	for i, sid := range sids {
		in[i] = fixture.Inbound(sid)
	}
	if _, err := st.InsertInboundMessages(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	var batches, own int
	if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM river_job WHERE kind = $1), (SELECT count(*) FROM river_job WHERE kind = $2)`,
		job.KindMessages, job.KindMessage).Scan(&batches, &own); err != nil || batches != 1 || own != 0 {
		t.Fatalf("20 messages stored together: %d batch jobs, %d jobs of their own (%v); want 1 and 0", batches, own, err)
	}
	p := workertest.Start(t, pool, workertest.Options{URL: app.URL})

	poll.Until(t, "every message at the app", func() bool { return app.Distinct() == 20 })
	for _, sid := range sids {
		if n := app.Deliveries(sid); n != 1 {
			t.Fatalf("%s accepted %d times, want once", sid, n)
		}
	}
	if n := badCalls.Load(); n != 3 {
		t.Fatalf("the failing message was tried %d times, want 3 (500, 500, 200)", n)
	}
	if total := len(app.Arrivals()); total != 22 {
		t.Fatalf("%d requests at the app, want 22: the 19 once, the one three times", total)
	}
	var ownJobs, ownState, batchState string
	if err := pool.QueryRow(t.Context(), `SELECT
		(SELECT string_agg(args->>'sid', ',') FROM river_job WHERE kind = $1),
		(SELECT string_agg(state::text, ',') FROM river_job WHERE kind = $1),
		(SELECT string_agg(state::text, ',') FROM river_job WHERE kind = $2)`, job.KindMessage, job.KindMessages).Scan(&ownJobs, &ownState, &batchState); err != nil {
		t.Fatal(err)
	}
	if ownJobs != bad || batchState != "completed" {
		t.Fatalf("jobs of their own for %q (%s), the batch %s; want one, for %s, and the batch completed", ownJobs, ownState, batchState, bad)
	}
	poll.Until(t, "the failing message's own job to complete", func() bool {
		s, err := st.ForwardStatesOf(t.Context(), []string{bad})
		return err == nil && s[bad] == destination.ForwardForwarded
	})
	jobs, err := p.Queue.JobsOf(t.Context(), bad, 10)
	if err != nil || len(jobs) != 2 || jobs[0].Kind != job.KindMessage || len(jobs[0].Failures) != 2 || jobs[1].Kind != job.KindMessages {
		t.Fatalf("the failing message's story: %+v, %v; want its own job (two failed attempts) and the batch's", jobs, err)
	}
}

// TestReplayOfOneMessageOfABatch touches that message only: forwarded
// again, the batch's others not.
func TestReplayOfOneMessageOfABatch(t *testing.T) {
	t.Parallel()
	app := teamapp.New(t, teamapp.Options{})
	pool := dbtest.Pool(t, 8)
	st := store.NewWith(pool, store.Options{JobAttempts: maxAttempts})
	p := workertest.Start(t, pool, workertest.Options{URL: app.URL})
	sids := workertest.InsertMany(t, st, 5, nil) // one batch, one job
	poll.Until(t, "the batch at the app", func() bool { return app.Distinct() == 5 })
	if _, created, err := p.Queue.Replay(t.Context(), sids[2], store.DefaultDestination, maxAttempts); err != nil || !created {
		t.Fatalf("replay: %v %v", created, err)
	}
	poll.Until(t, "the replay at the app", func() bool { return app.Total() == 6 })
	for i, sid := range sids {
		want := 1
		if i == 2 {
			want = 2
		}
		if n := app.Deliveries(sid); n != want {
			t.Fatalf("%s accepted %d times, want %d", sid, n, want)
		}
	}
}
