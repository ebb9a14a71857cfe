-- +goose NO TRANSACTION
-- +goose Up
-- The admin API lists messages newest first, filtered by sender, recipient
-- or account (README, "Operating"). Each of those filters leads its own
-- index, with the keyset order after it, so a page is an index range however
-- large the table and however rare the number. direction and status take a
-- handful of values, so they filter the newest-first scan of
-- messages_received_at_id_idx instead of costing every insert an index.
-- Retention deletes status events by age, oldest first.
-- Built CONCURRENTLY so a live table keeps taking writes while they build,
-- which is why this file runs outside a transaction. A concurrent build that
-- is interrupted leaves an INVALID index behind, so each drops it first and a
-- rerun is clean.
DROP INDEX CONCURRENTLY IF EXISTS messages_from_address_received_at_idx;
CREATE INDEX CONCURRENTLY messages_from_address_received_at_idx
    ON messages (from_address, received_at, id);

DROP INDEX CONCURRENTLY IF EXISTS messages_to_address_received_at_idx;
CREATE INDEX CONCURRENTLY messages_to_address_received_at_idx
    ON messages (to_address, received_at, id);

DROP INDEX CONCURRENTLY IF EXISTS messages_account_sid_received_at_idx;
CREATE INDEX CONCURRENTLY messages_account_sid_received_at_idx
    ON messages (account_sid, received_at, id);

DROP INDEX CONCURRENTLY IF EXISTS message_status_events_received_at_idx;
CREATE INDEX CONCURRENTLY message_status_events_received_at_idx
    ON message_status_events (received_at, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS message_status_events_received_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_account_sid_received_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_to_address_received_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_from_address_received_at_idx;
