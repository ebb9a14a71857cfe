package store

import (
	"context"
	"time"
)

// SessionsRevokedBefore returns the time before which a console session
// is no longer accepted; zero when no session was revoked.
func (s *Store) SessionsRevokedBefore(ctx context.Context) (time.Time, error) {
	t, err := s.q.GetSessionsRevokedBefore(ctx)
	if err != nil {
		return time.Time{}, fail("read the console's session revocation", err, ErrSchemaBehind)
	}
	if t == nil {
		return time.Time{}, nil
	}
	return *t, nil
}

// RevokeSessionsBefore ends every console session issued before t, on
// every replica; a t earlier than one recorded changes nothing.
func (s *Store) RevokeSessionsBefore(ctx context.Context, t time.Time) error {
	if err := s.q.RevokeSessionsBefore(ctx, t); err != nil {
		return fail("revoke console sessions", err, ErrSchemaBehind)
	}
	return nil
}
