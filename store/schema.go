package store

import (
	"context"
	"errors"
)

// SchemaVersion returns the latest migration applied to the database, 0
// when none is (not even goose's table exists).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	v, err := s.q.GetSchemaVersion(ctx)
	if err != nil {
		err = fail("read schema version", err, ErrNotFound)
		if errors.Is(err, ErrSchemaBehind) { // not even goose's table
			return 0, nil
		}
		return 0, err
	}
	return v, nil
}

// OwnsJobTable reports whether the role connected is River's job table's
// owner (or a member of it, a superuser included): only an owner may
// reindex it.
func (s *Store) OwnsJobTable(ctx context.Context) (bool, error) {
	owns, err := s.q.OwnsJobTable(ctx)
	if err != nil {
		return false, fail("check who owns river_job", err, ErrSchemaBehind)
	}
	return owns, nil
}
