-- +goose NO TRANSACTION
-- +goose Up
-- The unique index that makes the database the judge of "have we seen this
-- message": InsertInboundMessage's ON CONFLICT names exactly this expression.
-- Built CONCURRENTLY so a live table keeps taking writes while it builds, which
-- is why this file runs outside a transaction, one statement at a time.
--
-- A concurrent build that fails (a duplicate slipped in) leaves an INVALID
-- index behind; dropping it first makes a rerun of this migration clean.
DROP INDEX CONCURRENTLY IF EXISTS messages_message_sid_key;

-- Old replicas may have stored duplicates since the previous migration.
SELECT fold_duplicate_messages();

CREATE UNIQUE INDEX CONCURRENTLY messages_message_sid_key
    ON messages ((metadata->>'message_sid'));

-- The unique index serves every lookup the plain one did.
DROP INDEX CONCURRENTLY IF EXISTS messages_message_sid_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_message_sid_idx
    ON messages ((metadata->>'message_sid'));

DROP INDEX CONCURRENTLY IF EXISTS messages_message_sid_key;
