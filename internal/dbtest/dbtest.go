// Package dbtest gives each test its own PostgreSQL database, cloned in
// milliseconds from a template that the real migrations built once. Tests
// that need committed rows seen from many connections (every concurrency
// test here) can therefore run in parallel without seeing each other.
//
// The server comes from TEST_DATABASE_URL (scripts/test sets it, starting a
// throwaway server when none answers), else 127.0.0.1:5432 as postgres.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for pgtestdb and goose
	"github.com/peterldowns/pgtestdb"
	"go.uber.org/goleak"

	"inbox/sql/schema"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the server tests create their databases on.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultURL
}

func config(t testing.TB) pgtestdb.Config {
	t.Helper()
	c, err := pgx.ParseConfig(ServerURL())
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	opts := url.Values{}
	opts.Set("sslmode", "disable")
	return pgtestdb.Config{
		DriverName: "pgx",
		Host:       c.Host,
		Port:       fmt.Sprint(c.Port),
		User:       c.User,
		Password:   c.Password,
		Database:   c.Database,
		Options:    opts.Encode(),
		// A test that fails mid-flight may leave a connection open; the
		// database must still be dropped.
		ForceTerminateConnections: true,
	}
}

// migrator builds the template with the same goose provider `inbox migrate`
// uses, so tests run against exactly what production migrates to.
//
// Each test process builds its own template (its pid is part of the hash,
// and the template is marked with it), so that Main can drop it when the
// package's tests end without pulling it from under another package's
// tests, which run at the same time in processes of their own.
type migrator struct{}

// templateMark is the comment on a template this process built.
func templateMark() string { return fmt.Sprintf("inbox dbtest template, pid %d", os.Getpid()) }

func (migrator) Hash() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", templateMark())
	err := fs.WalkDir(schema.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(schema.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	fmt.Fprintf(h, "river\x00%d", schema.RiverVersion) // migration 00005 is Go, outside FS
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (migrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	// The provider is not closed: closing it would close db, which pgtestdb owns.
	p, err := schema.NewProvider(db, nil)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return markTemplate(ctx, db)
}

// markTemplate marks the template db is connected to as this process's,
// for Main to find and drop.
func markTemplate(ctx context.Context, db *sql.DB) error {
	// COMMENT takes a literal, not a parameter.
	mark := strings.ReplaceAll(templateMark(), "'", "''")
	if _, err := db.ExecContext(ctx, "DO $$ BEGIN EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), '"+mark+"'); END $$"); err != nil {
		return fmt.Errorf("mark template: %w", err)
	}
	return nil
}

// emptyMigrator builds a template with no migrations applied, marked like
// migrator's.
type emptyMigrator struct{}

func (emptyMigrator) Hash() (string, error) { return "empty\x00" + templateMark(), nil }

func (emptyMigrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	return markTemplate(ctx, db)
}

// Main runs a package's tests; call it from TestMain. Then it drops the
// template database this process built, and, when every test passed, fails
// the run if any database cloned from it is left (each test's database is
// dropped when the test passes; a failing test's is kept, with its URL in
// the log, to look into), or if a goroutine outlived the tests (goleak, as
// River checks its packages).
func Main(m *testing.M) {
	code := m.Run()
	if err := dropTemplates(code == 0); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 {
		// Keep-alive connections of http.DefaultClient are not the code's.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// dropTemplates drops the templates marked with this process's pid, after
// checking, when passed, that no test database cloned from them is left.
func dropTemplates(passed bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return fmt.Errorf("connect to drop this run's template: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') = $1`, templateMark())
	if err != nil {
		return fmt.Errorf("find this run's template: %w", err)
	}
	templates, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find this run's template: %w", err)
	}
	var errs []error
	for _, tpl := range templates {
		var left []string
		if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(datname ORDER BY datname), '{}') FROM pg_database WHERE starts_with(datname, $1)`,
			tpl+"_inst_").Scan(&left); err != nil {
			errs = append(errs, fmt.Errorf("count databases cloned from %s: %w", tpl, err))
		} else if passed && len(left) > 0 {
			errs = append(errs, fmt.Errorf("every test passed, yet %d of their databases are left: %v", len(left), left))
		}
		ident := pgx.Identifier{tpl}.Sanitize()
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" IS_TEMPLATE false"); err != nil {
			errs = append(errs, fmt.Errorf("unmark template %s: %w", tpl, err))
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop template %s: %w", tpl, err))
		}
	}
	return errors.Join(errs...)
}

// URL returns the URL of a new, fully migrated database for this test only.
// It is dropped when the test passes and kept, with its URL logged, when the
// test fails.
func URL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, config(t), migrator{}).URL()
}

// EmptyURL returns the URL of a new database with no migrations applied, for
// tests of the migrations themselves.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, config(t), emptyMigrator{}).URL()
}

// Pool returns a pool on a new, fully migrated database for this test only,
// with at most maxConns connections; it is closed when the test ends.
func Pool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	return Connect(t, URL(t), maxConns)
}

// Connect opens a pool on url and closes it when the test ends.
func Connect(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse database url: %v", err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// EnqueuedJobs is SQL, for a FROM clause, of the processing job each
// stored inbound message was enqueued with, one row (sid, destination: ""
// for FORWARD_URL's, id, state, attempt) per message, destination and job: its own job (kind inbox_message, neither a
// replay, which has a unique key, nor a hand-off from a batch, which names
// it), or its share of a batch's (inbox_messages). Every message must have
// exactly one per destination it matches: tests count rows = jobs with it.
const EnqueuedJobs = `(SELECT args->>'sid' AS sid, coalesce(args->>'destination', '') AS destination, id, state::text AS state, attempt FROM river_job
	WHERE kind = 'inbox_message' AND unique_key IS NULL AND NOT args ? 'batch'
	UNION ALL
	SELECT jsonb_array_elements_text(args->'sids'), coalesce(args->>'destination', ''), id, state::text, attempt FROM river_job
	WHERE kind = 'inbox_messages') AS enqueued`
