package schema_test

import (
	"database/sql"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"

	"inbox/internal/dbtest"
	"inbox/sql/schema"
)

// migratedTo returns a new database at version, and the provider over it.
func migratedTo(t *testing.T, version int64) (*sql.DB, *goose.Provider) {
	t.Helper()
	db := stdlib.OpenDBFromPool(dbtest.Connect(t, dbtest.EmptyURL(t), 4))
	t.Cleanup(func() { db.Close() })
	p, err := schema.NewProvider(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), version); err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
	return db, p
}

func ids(t *testing.T, db *sql.DB, query string) [][2]int64 {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]int64
	for rows.Next() {
		var r [2]int64
		if err := rows.Scan(&r[0], &r[1]); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFoldDuplicatesThenUniqueIndex seeds the duplicates a check-then-act
// version stores, at the schema version before the fold, and migrates up.
func TestFoldDuplicatesThenUniqueIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, p := migratedTo(t, 1)

	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	insert := func(sid, body string, at time.Time) int64 {
		t.Helper()
		var id int64
		err := db.QueryRow(`
			INSERT INTO messages (direction, account_sid, from_address, to_address, body, status, received_at, metadata)
			VALUES ('inbound', 'AC1', '+15550001', '+15550002', $2, 'received', $3,
			        jsonb_build_object('message_sid', $1::text, 'params', jsonb_build_object('Body', $2::text)))
			RETURNING id`, sid, body, at).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	const a, b, c = "SM000000000000000000000000000000aa", "SM000000000000000000000000000000bb", "SM000000000000000000000000000000cc"
	aFirst := insert(a, "hello", t0)
	_ = insert(a, "hello", t0.Add(time.Second))            // identical retry: nothing to keep
	aChanged := insert(a, "hello!", t0.Add(2*time.Second)) // differs: archived
	bLate := insert(b, "late copy", t0.Add(5*time.Second)) // lower id, but arrived later
	bEarly := insert(b, "early copy", t0)
	cOnly := insert(c, "alone", t0)

	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrate up: %v", err)
	}

	kept := ids(t, db, `SELECT id, 0 FROM messages ORDER BY id`)
	wantKept := [][2]int64{{aFirst, 0}, {bEarly, 0}, {cOnly, 0}}
	if !reflect.DeepEqual(kept, wantKept) {
		t.Fatalf("kept rows %v, want the earliest of each sid %v", kept, wantKept)
	}
	archived := ids(t, db, `SELECT id, duplicate_of FROM message_duplicates ORDER BY id`)
	wantArchived := [][2]int64{{aChanged, aFirst}, {bLate, bEarly}}
	if !reflect.DeepEqual(archived, wantArchived) {
		t.Fatalf("archived (id, duplicate_of) %v, want %v", archived, wantArchived)
	}

	var valid, unique bool
	if err := db.QueryRow(`SELECT indisvalid, indisunique FROM pg_index
		WHERE indexrelid = 'messages_message_sid_key'::regclass`).Scan(&valid, &unique); err != nil {
		t.Fatal(err)
	}
	if !valid || !unique {
		t.Fatalf("messages_message_sid_key valid=%v unique=%v, want both", valid, unique)
	}
	var plain sql.NullString
	if err := db.QueryRow(`SELECT to_regclass('messages_message_sid_idx')::text`).Scan(&plain); err != nil || plain.Valid {
		t.Fatalf("the plain sid index should be gone: %v %v", plain, err)
	}
	if _, err := db.Exec(`INSERT INTO messages (direction, account_sid, from_address, to_address, status, metadata)
		VALUES ('inbound', 'AC1', 'x', 'y', 'received', jsonb_build_object('message_sid', $1::text))`, c); err == nil {
		t.Fatal("a second row for a stored sid was accepted after the unique index")
	}

	// Down puts the archived copies back; nothing else reappears.
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatalf("migrate down to 1: %v", err)
	}
	restored := ids(t, db, `SELECT id, 0 FROM messages ORDER BY id`)
	wantRestored := [][2]int64{{aFirst, 0}, {aChanged, 0}, {bLate, 0}, {bEarly, 0}, {cOnly, 0}}
	if !reflect.DeepEqual(restored, wantRestored) {
		t.Fatalf("after down, rows %v, want %v", restored, wantRestored)
	}
}

// TestRiverSchemaMatchesLinkedRiver: after `migrate up`, River's own
// validation finds every migration of the River linked into this binary
// applied, and RiverVersion is that release's latest; down to zero removes
// River's tables, and up brings them back. A River upgrade that adds a
// migration fails here until a goose migration applies it.
func TestRiverSchemaMatchesLinkedRiver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, p := migratedTo(t, 4) // the app's tables, not yet River's
	m, err := rivermigrate.New(riverdatabasesql.New(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	if all := m.AllVersions(); all[len(all)-1].Version != schema.RiverVersion {
		t.Fatalf("schema.RiverVersion = %d, but the linked River's latest migration is %d: add a goose migration for it",
			schema.RiverVersion, all[len(all)-1].Version)
	}
	riverTables := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename IN ('river_job', 'river_migration', 'river_queue', 'river_leader')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for round := range 2 {
		if _, err := p.Up(ctx); err != nil {
			t.Fatalf("up (round %d): %v", round, err)
		}
		res, err := m.Validate(ctx, nil)
		if err != nil || !res.OK {
			t.Fatalf("River's validation after up (round %d): %+v, %v", round, res, err)
		}
		if n := riverTables(); n != 4 {
			t.Fatalf("%d of River's tables after up, want 4", n)
		}
		if _, err := p.DownTo(ctx, 0); err != nil {
			t.Fatalf("down to 0 (round %d): %v", round, err)
		}
		if n := riverTables(); n != 0 {
			t.Fatalf("%d of River's tables left after down to 0", n)
		}
	}
}
