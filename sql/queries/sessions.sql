-- name: GetSessionsRevokedBefore :one
-- The time before which a console session is no longer accepted (NULL:
-- none revoked).
SELECT revoked_before FROM admin_session_revocations WHERE id;

-- name: RevokeSessionsBefore :exec
-- Ends every console session issued before @before; never moves the
-- time back (a late logout from a slow replica does not revive sessions).
UPDATE admin_session_revocations
SET revoked_before = greatest(revoked_before, @before::timestamptz)
WHERE id;
