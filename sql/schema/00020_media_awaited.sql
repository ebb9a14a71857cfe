-- +goose Up
-- The inbound messages that say they carry media but hold no media URLs:
-- those an Event Streams event stored first (its schema has no media
-- URLs) and whose webhook has not completed them. A sweep asks Twilio's
-- API for their media (docs/event-streams.md). Partial: a webhook's or a
-- sweep's message always has its media, so the index holds only the few
-- awaiting theirs, and the hot path's insert only checks the predicate.
CREATE INDEX messages_media_awaited_idx ON messages (account_sid, received_at)
WHERE num_media > 0 AND media = '[]'::jsonb;

-- +goose Down
DROP INDEX messages_media_awaited_idx;
