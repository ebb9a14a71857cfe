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
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for pgtestdb and goose
	"github.com/peterldowns/pgtestdb"

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
type migrator struct{}

func (migrator) Hash() (string, error) {
	h := sha256.New()
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
	return nil
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
	return pgtestdb.Custom(t, config(t), pgtestdb.NoopMigrator{}).URL()
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
