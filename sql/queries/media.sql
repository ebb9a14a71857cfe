-- name: MediaOfMessage :many
-- A message's media, with what fetching them needs: its account and sid.
-- A message carries at most 10 through a webhook, 100 through a sweep
-- (twilioapi.MaxMedia); the limit is that bound.
SELECT m.id, m.position, m.url, m.state, m.attempts, msg.account_sid, (msg.metadata->>'message_sid')::text AS message_sid,
       (m.deleted_at_twilio IS NOT NULL)::boolean AS deleted_at_twilio, coalesce(m.size, 0)::bigint AS size, coalesce(m.sha256, ''::bytea)::bytea AS sha256
FROM media m
JOIN messages msg ON msg.id = m.message_id
WHERE m.message_id = @message_id
ORDER BY m.position
LIMIT 100;

-- name: LockMedium :one
-- A medium's state, its row locked until the transaction ends: a fetch
-- holds it while it writes the bytes, so a second run of the job (a
-- rescue) waits, then finds it kept.
SELECT state FROM media WHERE id = @id FOR UPDATE;

-- name: DeleteMediumChunks :exec
-- What an attempt that did not commit cannot have left; kept for a retry
-- after a failure within the transaction.
DELETE FROM media_chunks WHERE media_id = @media_id;

-- name: InsertMediumChunk :exec
INSERT INTO media_chunks (media_id, n, data) VALUES (@media_id, @n, @data);

-- name: MarkMediumKept :exec
UPDATE media
SET state = 'kept', content_type = @content_type::text, size = @size::bigint, sha256 = @sha256::bytea, kept_at = now(), reason = NULL, attempts = attempts + 1
WHERE id = @id;

-- name: MarkMediumFailed :one
-- Counts a failed fetch; the give_up_after-th gives the medium up.
UPDATE media
SET attempts = attempts + 1, reason = @reason::text,
    state = CASE WHEN attempts + 1 >= @give_up_after::integer THEN 'failed' ELSE state END
WHERE id = @id AND state = 'fetching'
RETURNING state, attempts;

-- name: MarkMediumRefused :exec
UPDATE media SET state = 'refused', reason = @reason::text WHERE id = @id AND state = 'fetching';

-- name: MarkMediumDeletedAtTwilio :exec
UPDATE media SET deleted_at_twilio = now() WHERE id = @id AND state = 'kept' AND deleted_at_twilio IS NULL;

-- name: MediumChunks :many
-- A medium's pieces from the n-th, at most max_chunks of them, in order.
SELECT n, data FROM media_chunks WHERE media_id = @media_id AND n >= @from_n ORDER BY n LIMIT @max_chunks;

-- name: GetMediaLinkKey :one
SELECT key FROM media_link_key WHERE id;

-- name: GetMediumToServe :one
-- What serving a medium needs: its state and, once kept, its type, size
-- and hash; and what fetching it first needs otherwise.
SELECT md.id, md.position, md.url, md.state, md.attempts, coalesce(md.content_type, '')::text AS content_type, coalesce(md.size, 0)::bigint AS size,
       coalesce(md.sha256, ''::bytea)::bytea AS sha256, md.kept_at, m.account_sid, (m.metadata->>'message_sid')::text AS message_sid
FROM media md
JOIN messages m ON m.id = md.message_id
WHERE md.id = @id;

-- name: MediaOfSIDs :many
-- The media of the messages sids that are or will be kept, by position:
-- what a forward's download links name. A batch is at most a few
-- thousand messages of at most 100 media each.
SELECT (m.metadata->>'message_sid')::text AS message_sid, md.position, md.id
FROM messages m
JOIN media md ON md.message_id = m.id
WHERE (m.metadata->>'message_sid') = ANY(@sids::text[]) AND md.state IN ('fetching', 'kept')
ORDER BY 1, 2
LIMIT 100000;

-- name: MediaWaiting :one
-- How many media are owed (at most 100 000 counted) and since when the
-- oldest: through media_fetching_idx.
SELECT count(*)::bigint AS waiting, coalesce(min(created_at), now())::timestamptz AS oldest
FROM (SELECT created_at FROM media WHERE state = 'fetching' ORDER BY created_at LIMIT 100000) owed;

-- name: MediaOfSID :many
-- A message's media as its story shows them, by position.
SELECT md.id, md.position, md.url, md.announced_type, md.state, coalesce(md.reason, '')::text AS reason, md.attempts,
       coalesce(md.content_type, '')::text AS content_type, coalesce(md.size, 0)::bigint AS size, md.kept_at, md.deleted_at_twilio
FROM media md
JOIN messages m ON m.id = md.message_id
WHERE (m.metadata->>'message_sid') = @sid::text
ORDER BY md.position
LIMIT 100;
