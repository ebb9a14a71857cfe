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

-- name: ListMessages :many
-- Newest first, a page at a time. The cursor is the (received_at, id) of the
-- last row of the previous page; the first page passes a time after every row
-- and the largest id, so one statement, with no OR on a NULL cursor, always
-- uses the (received_at, id) index.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code
FROM messages
WHERE (received_at, id) < (@before_received_at::timestamptz, @before_id::bigint)
ORDER BY received_at DESC, id DESC
LIMIT @max_rows::integer;

-- name: CountMessagesBySIDs :one
-- How many rows exist for the given sids: the check that a load or a
-- simulation stored each distinct message once.
SELECT count(*)
FROM messages
WHERE metadata->>'message_sid' = ANY(@sids::text[]);
