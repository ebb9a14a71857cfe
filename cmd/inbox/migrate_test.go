package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"inbox/internal/dbtest"
)

// latest is the number of migrations in sql/schema.
const latest = 24

// env returns a getenv that knows only vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// inbox runs the command in-process against databaseURL and returns stdout.
func inbox(t *testing.T, databaseURL string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, env(map[string]string{
		"DATABASE_URL": databaseURL, "LOG_FORMAT": "json", "LOG_LEVEL": "warn",
	}), nil, &stdout, &stderr)
	if err != nil {
		t.Logf("inbox %s: stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), err
}

func mustInbox(t *testing.T, databaseURL string, args ...string) string {
	t.Helper()
	out, err := inbox(t, databaseURL, args...)
	if err != nil {
		t.Fatalf("inbox %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestMigrateUpDownUpReportsTheTruth(t *testing.T) {
	t.Parallel()
	url := dbtest.EmptyURL(t)

	if v := mustInbox(t, url, "migrate", "version"); v != "0\n" {
		t.Fatalf("version on a fresh database = %q, want 0", v)
	}
	status := mustInbox(t, url, "migrate", "status")
	if strings.Count(status, "pending") != latest || strings.Contains(status, "applied") {
		t.Fatalf("status on a fresh database:\n%s\nwant %d pending", status, latest)
	}

	up := mustInbox(t, url, "migrate", "up")
	for _, name := range []string{"00001_create_messages.sql", "00002_fold_duplicate_messages.sql", "00003_unique_message_sid.sql", "00004_message_status.sql", "00006_forward_payload.sql", "00007_message_filters.sql", "00008_twilio_accounts.sql"} {
		if !strings.Contains(up, name) {
			t.Fatalf("up output lacks %s:\n%s", name, up)
		}
	}
	if v := mustInbox(t, url, "migrate", "version"); v != fmt.Sprintln(latest) {
		t.Fatalf("version after up = %q, want %d", v, latest)
	}
	status = mustInbox(t, url, "migrate", "status")
	if strings.Count(status, "applied") != latest || strings.Contains(status, "pending") {
		t.Fatalf("status after up:\n%s\nwant %d applied", status, latest)
	}
	if out := mustInbox(t, url, "migrate", "up"); !strings.Contains(out, "no pending migrations") {
		t.Fatalf("second up = %q, want no pending migrations", out)
	}

	mustInbox(t, url, "migrate", "down")
	if v := mustInbox(t, url, "migrate", "version"); v != fmt.Sprintln(latest-1) {
		t.Fatalf("version after down = %q, want %d", v, latest-1)
	}
	mustInbox(t, url, "migrate", "up")
	mustInbox(t, url, "migrate", "redo")
	if v := mustInbox(t, url, "migrate", "version"); v != fmt.Sprintln(latest) {
		t.Fatalf("version after redo = %q, want %d", v, latest)
	}

	mustInbox(t, url, "migrate", "reset")
	if v := mustInbox(t, url, "migrate", "version"); v != "0\n" {
		t.Fatalf("version after reset = %q, want 0", v)
	}
	if out := mustInbox(t, url, "migrate", "down"); !strings.Contains(out, "no migration to roll back") {
		t.Fatalf("down at zero = %q", out)
	}

	mustInbox(t, url, "migrate", "up")
	if v := mustInbox(t, url, "migrate", "version"); v != fmt.Sprintln(latest) {
		t.Fatalf("version after up again = %q, want %d", v, latest)
	}
	assertSchema(t, url)
}

func TestConcurrentMigrateUpLeavesOneSchema(t *testing.T) {
	t.Parallel()
	url := dbtest.EmptyURL(t)

	const replicas = 2
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = inbox(t, url, "migrate", "up")
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	assertSchema(t, url)
}

// assertSchema checks the database is at the latest version, each migration
// recorded once, with a valid unique sid index.
func assertSchema(t *testing.T, url string) {
	t.Helper()
	pool := dbtest.Connect(t, url, 1)
	ctx := t.Context()
	var applied, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version_id) FROM goose_db_version
		WHERE version_id > 0 AND is_applied`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	var valid bool
	if err := pool.QueryRow(ctx, `SELECT indisvalid AND indisunique FROM pg_index
		WHERE indexrelid = 'messages_message_sid_key'::regclass`).Scan(&valid); err != nil {
		t.Fatal(err)
	}
	if !valid {
		t.Fatal("messages_message_sid_key is not a valid unique index")
	}
	if v := mustInbox(t, url, "migrate", "version"); v != fmt.Sprintln(latest) {
		t.Fatalf("version = %q, want %d", v, latest)
	}
	if applied != latest || distinct != latest {
		t.Fatalf("goose_db_version records %d applied migrations (%d distinct), want each of %d once", applied, distinct, latest)
	}
}

func TestConfigErrorsAreClear(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, []string{"migrate", "version"}, `invalid LOG_LEVEL "loud"`},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, []string{"migrate", "version"}, `invalid LOG_FORMAT "xml"`},
		{"bad database url", map[string]string{"DATABASE_URL": "postgres://[::1"}, []string{"migrate", "version"}, "invalid DATABASE_URL"},
		{"unknown migrate command", nil, []string{"migrate", "sideways"}, "unknown command"},
		{"unknown subcommand", nil, []string{"frobnicate"}, `unknown subcommand "frobnicate"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), c.args, env(c.env), nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}
