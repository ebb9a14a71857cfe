package main

import (
	"maps"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/sql/schema"
)

// TestUpgradeKeepsForwardsInFlight: a database of the release before
// deliveries were stored (schema 14), with FORWARD_URL's forwards in every
// state River holds them in (one forwarded, one waiting, one retrying, one
// failed for good, a group commit's batch of three waiting), is migrated
// and served by this release with the same settings: every unfinished
// forward reaches the app once, the finished ones are not sent again,
// and each message's delivery to default records where it ended.
func TestUpgradeKeepsForwardsInFlight(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.EmptyURL(t)
	pool := dbtest.Connect(t, databaseURL, 4)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	p, err := schema.NewProvider(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 14); err != nil {
		t.Fatalf("migrate to the previous release's schema: %v", err)
	}
	sid := map[string]string{}
	for _, name := range []string{"forwarded", "waiting", "retrying", "failed", "batch1", "batch2", "batch3"} {
		sid[name] = fixture.SID()
		if _, err := pool.Exec(t.Context(), `INSERT INTO messages (direction, account_sid, from_address, to_address, body, num_media, num_segments, media, status, metadata)
			VALUES ('inbound', $1, '+15550000001', '+15550000002', 'hi', 0, 1, '[]', 'received', jsonb_build_object('message_sid', $2::text, 'params', '{}'::jsonb))`,
			fixture.Account, sid[name]); err != nil {
			t.Fatal(err)
		}
	}
	// The jobs as the previous release left them (River's columns only).
	for _, j := range []struct {
		args, kind, state string
		attempt           int
		failed            bool
	}{
		{`{"sid": "` + sid["forwarded"] + `"}`, "inbox_message", "completed", 1, false},
		{`{"sid": "` + sid["waiting"] + `"}`, "inbox_message", "available", 0, false},
		{`{"sid": "` + sid["retrying"] + `"}`, "inbox_message", "retryable", 1, true},
		{`{"sid": "` + sid["failed"] + `"}`, "inbox_message", "discarded", 2, true},
		{`{"sids": ["` + sid["batch1"] + `", "` + sid["batch2"] + `", "` + sid["batch3"] + `"]}`, "inbox_messages", "available", 0, false},
	} {
		if _, err := pool.Exec(t.Context(), `INSERT INTO river_job (args, kind, max_attempts, state, attempt, scheduled_at, attempted_at, finalized_at, errors)
			VALUES ($1::jsonb, $2, 2, $3::river_job_state, $4::smallint, now() - interval '1 second',
			        CASE WHEN $4::smallint > 0 THEN now() END,
			        CASE WHEN $3::text IN ('completed', 'discarded') THEN now() END,
			        CASE WHEN $5::boolean THEN ARRAY[jsonb_build_object('at', now(), 'attempt', 1, 'error', 'HTTP 500', 'trace', '')] END)`,
			j.args, j.kind, j.state, j.attempt, j.failed); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	var rows int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE destination = 'default'`).Scan(&rows); err != nil || rows != len(sid) {
		t.Fatalf("%d deliveries after the upgrade (%v), want one per message with a job: %d", rows, err, len(sid))
	}

	app := teamapp.New(t, teamapp.Options{})
	vars := app.Env()
	maps.Copy(vars, map[string]string{"FORWARD_MAX_ATTEMPTS": "2"})
	startServe(t, databaseURL, vars)
	poll.Until(t, "every unfinished forward at the app", func() bool { return jobsSettled(t, pool) && len(app.Accepted()) == 5 })
	for _, name := range []string{"waiting", "retrying", "batch1", "batch2", "batch3"} {
		if n := app.Deliveries(sid[name]); n != 1 {
			t.Errorf("%s (%s) reached the app %d times, want once", name, sid[name], n)
		}
	}
	for _, name := range []string{"forwarded", "failed"} {
		if n := app.Deliveries(sid[name]); n != 0 {
			t.Errorf("%s (%s) was sent again (%d): a finished forward must stay finished", name, sid[name], n)
		}
	}
	want := map[string]string{"forwarded": "forwarded", "waiting": "forwarded", "retrying": "forwarded", "failed": "failed",
		"batch1": "forwarded", "batch2": "forwarded", "batch3": "forwarded"}
	for name, state := range want {
		var got string
		if err := pool.QueryRow(t.Context(), `SELECT delivery_state(d) FROM deliveries d JOIN messages m ON m.id = d.message_id
			WHERE m.metadata->>'message_sid' = $1 AND d.destination = 'default'`, sid[name]).Scan(&got); err != nil || got != state {
			t.Errorf("%s's delivery: %q (%v), want %s", name, got, err, state)
		}
	}
}
