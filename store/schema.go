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
