-- +goose Up
-- Logging out of the console ends every session issued before it, on
-- every replica: a session's cookie is signed, not stored, so a copy of it
-- would otherwise work until it expires (12 h). The admin edge refuses a
-- session issued before revoked_before.
CREATE TABLE admin_session_revocations (
    -- One row: a boolean key that can only be true.
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- NULL: no logout yet.
    revoked_before timestamptz
);
INSERT INTO admin_session_revocations DEFAULT VALUES;

-- +goose Down
DROP TABLE admin_session_revocations;
