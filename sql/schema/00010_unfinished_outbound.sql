-- +goose NO TRANSACTION
-- +goose Up
-- The outbound messages a sweep asks Twilio about, by account, oldest
-- check first: only those whose status can still move, so the index stays
-- as small as the messages in flight. Built concurrently: messages is
-- written on every webhook.
DROP INDEX CONCURRENTLY IF EXISTS messages_unfinished_outbound_idx;
CREATE INDEX CONCURRENTLY messages_unfinished_outbound_idx
    ON messages (account_sid, status_checked_at NULLS FIRST, received_at)
    WHERE direction = 'outbound'
      AND status IN ('accepted', 'scheduled', 'queued', 'sending', 'sent', 'partially_delivered');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS messages_unfinished_outbound_idx;
