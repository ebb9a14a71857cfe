package queue_test

import (
	"slices"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/job"
	"inbox/message"
	"inbox/simulate"
	"inbox/store"
)

// TestStoreInsertsTheJobRiverWould: the store inserts jobs in SQL, in the
// statement that stores the message (or a batch's last) or moves the
// status. Each row must be
// the one River's own InsertTx makes for the same args, column for column
// (but id, times and the sid), so River runs it as its own; a River upgrade
// that changes what a job row holds fails here.
func TestStoreInsertsTheJobRiverWould(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, 4)
	ctx := t.Context()
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const attempts = 7
	st := store.NewWith(pool, store.Options{JobAttempts: attempts})
	viaStore, viaRiver := fixture.SID(), fixture.SID()
	if _, _, err := st.InsertInboundMessage(ctx, fixture.Inbound(viaStore)); err != nil {
		t.Fatal(err)
	}
	// A batch: a group commit's, or a sweep's page.
	batchStore := []string{fixture.SID(), fixture.SID()}
	slices.Sort(batchStore)
	batchRiver := []string{fixture.SID(), fixture.SID()}
	if _, err := st.InsertInboundMessages(ctx, []message.Inbound{fixture.Inbound(batchStore[0]), fixture.Inbound(batchStore[1])}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordStatus(ctx, message.StatusCallback{MessageSID: viaStore + "x", Status: "sent", Params: message.Params{},
		AccountSID: simulate.AccountSID, From: "+1", To: "+2"}); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, args := range []river.JobArgs{job.Message{SID: viaRiver}, job.Status{SID: viaRiver + "x", Status: "sent"}, job.Messages{SIDs: batchRiver}} {
		if _, err := rc.InsertTx(ctx, tx, args, &river.InsertOpts{MaxAttempts: attempts}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	row := func(kind, sid string) string {
		t.Helper()
		var s string
		err := pool.QueryRow(ctx, `SELECT row(state, attempt, max_attempts, attempted_at, finalized_at, priority,
			args - 'sid' - 'sids', jsonb_typeof(args->'sids'), attempted_by, errors, kind, metadata, queue, tags, unique_key, unique_states,
			scheduled_at <= now(), created_at <= now())::text
			FROM river_job WHERE kind = $1 AND (args->>'sid' = $2 OR args->'sids'->>0 = $2)`, kind, sid).Scan(&s)
		if err != nil {
			t.Fatalf("%s job of %s: %v", kind, sid, err)
		}
		return s
	}
	for _, c := range []struct{ kind, store, river string }{
		{job.Message{}.Kind(), viaStore, viaRiver},
		{job.Status{}.Kind(), viaStore + "x", viaRiver + "x"},
		{job.Messages{}.Kind(), batchStore[0], batchRiver[0]},
	} {
		if got, want := row(c.kind, c.store), row(c.kind, c.river); got != want {
			t.Fatalf("%s job:\nthe store's %s\nRiver's     %s", c.kind, got, want)
		}
	}
}
