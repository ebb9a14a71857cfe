-- name: InsertInboundMessage :one
-- Stores an inbound message unless one with the same sid is already stored.
-- The unique index on (metadata->>'message_sid') decides, atomically, under
-- any concurrency: a returned id means this delivery stored the message, no
-- row means it was a duplicate. The conflict target must match that index's
-- expression exactly, or PostgreSQL rejects the statement at planning time.
INSERT INTO messages (
    direction, account_sid, messaging_service_sid, from_address, to_address,
    body, num_media, num_segments, media, status, metadata
) VALUES (
    'inbound', @account_sid, sqlc.narg('messaging_service_sid'), @from_address, @to_address,
    @body, @num_media, @num_segments, @media, 'received', @metadata
)
ON CONFLICT ((metadata->>'message_sid')) DO NOTHING
RETURNING id;

-- name: GetMessageBySID :one
-- The message with this Twilio sid, through the unique index.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code
FROM messages
WHERE metadata->>'message_sid' = @sid::text;

-- name: CountMessagesBySIDs :one
-- How many rows exist for the given sids: the check that a load or a
-- simulation stored each distinct message once.
SELECT count(*)
FROM messages
WHERE metadata->>'message_sid' = ANY(@sids::text[]);
