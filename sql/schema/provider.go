package schema

import (
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// NewProvider returns a goose provider over the embedded migrations and
// River's (00005_river_queue.go), holding a
// PostgreSQL session advisory lock while it migrates, so that replicas that
// all run `migrate up` at start apply each migration once: the others wait
// (polling each second, for up to five minutes) and then find nothing to do.
//
// Closing the provider closes db.
func NewProvider(db *sql.DB, logger *slog.Logger) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithGoMigrations(riverQueue())}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("create migration provider: %w", err)
	}
	return p, nil
}

// Version is the schema version this binary needs: the number of its
// latest migration. A database below it is missing tables or columns the
// queries use (inbox migrate up); one above it was migrated by a newer
// binary, which migrations are written to allow.
func Version() (int64, error) {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return 0, fmt.Errorf("read migrations: %w", err)
	}
	latest := riverQueue().Version
	for _, e := range entries {
		v, err := goose.NumericComponent(e.Name())
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}
