-- name: InsertInboundMessage :batchone
-- Stores an inbound message unless one with the same sid is already stored.
-- The unique index on (metadata->>'message_sid') decides, atomically, under
-- any concurrency: a returned id means this statement stored the message, no
-- row means it was a duplicate (also of an earlier delivery in the same
-- batch). The conflict target must match that index's expression exactly,
-- or PostgreSQL rejects the statement at planning time.
--
-- When max_attempts is above 0, the same statement inserts the River job
-- that processes the message (kind job_kind, args {"sid": …}, River's
-- defaults for the rest), only when the message is new: the job exists
-- exactly when the row does, and commits with it. A test in package queue
-- holds the job row equal to what River's own insert makes.
--
-- It is the one statement that stores an inbound message, on every path:
-- pgx sends a batch of them (one delivery, or a group commit of many) in one
-- round trip with one Sync, so PostgreSQL runs the batch as one implicit
-- transaction with one commit. A group commit's batch with processing on
-- passes max_attempts 0 and ends with InsertBatchJob instead.
WITH stored AS (
    INSERT INTO messages (
        direction, account_sid, messaging_service_sid, from_address, to_address,
        body, num_media, num_segments, media, status, metadata
    ) VALUES (
        'inbound', @account_sid, sqlc.narg('messaging_service_sid'), @from_address, @to_address,
        @body, @num_media, @num_segments, @media, 'received', @metadata
    )
    ON CONFLICT ((metadata->>'message_sid')) DO NOTHING
    RETURNING id, metadata->>'message_sid' AS sid, received_at
), job AS (
    INSERT INTO river_job (args, kind, max_attempts)
    SELECT jsonb_build_object('sid', stored.sid), @job_kind::text, @max_attempts::smallint
    FROM stored
    WHERE @max_attempts::smallint > 0
    RETURNING id
), routed AS (
    -- A delivery job for each destination whose rules match
    -- (destination_matches), in its own queue, the destination's name;
    -- route_attempts 0 (a group commit's batch) leaves them to
    -- InsertBatchRoutes.
    INSERT INTO river_job (args, kind, max_attempts, queue)
    SELECT jsonb_build_object('destination', d.name, 'sid', stored.sid), @job_kind::text, @route_attempts::smallint, d.name
    FROM stored CROSS JOIN destinations d
    WHERE @route_attempts::smallint > 0
      AND destination_matches(d, @account_sid, @to_address, sqlc.narg('messaging_service_sid'), 'inbound')
    RETURNING id, queue
), owed AS (
    -- The deliveries those jobs carry, each naming its job
    -- (00015_deliveries.sql, 00017_delivery_jobs.sql): FORWARD_URL's is
    -- 'default'.
    INSERT INTO deliveries (message_id, destination, received_at, job_id)
    SELECT stored.id, 'default', stored.received_at, job.id FROM stored CROSS JOIN job
    UNION ALL
    SELECT stored.id, routed.queue, stored.received_at, routed.id FROM stored CROSS JOIN routed
)
SELECT stored.id FROM stored;

-- name: InsertBatchJob :exec
-- The one River job for every message a group commit stored while
-- processing is on (kind batch_kind, args {"sids": […]}; the message's own
-- job, kind job_kind, when it stored only one; none when every one was a
-- duplicate): the rows of this transaction among the batch's sids (found by
-- xmin, so never a duplicate's). The store sends it after the batch's
-- InsertInboundMessage statements (with max_attempts 0), in the same round
-- trip and implicit transaction, so the job commits with exactly the rows.
-- A job per batch rather than per message, because River's insert, fetch
-- and completion of a job each write every index of river_job
-- (docs/processing.md, "Batches"). A statement of its own, after the
-- inserts, rather than a clause of the last insert, because PostgreSQL
-- plans such an insert afresh on every execution (docs/processing.md).
WITH batch AS (
    SELECT m.id, m.metadata->>'message_sid' AS sid, m.received_at
    FROM messages m
    WHERE m.metadata->>'message_sid' = ANY(@sids::text[])
      AND m.xmin = pg_current_xact_id()::xid
), job AS (
    INSERT INTO river_job (args, kind, max_attempts)
    SELECT CASE WHEN count(*) = 1 THEN jsonb_build_object('sid', min(batch.sid))
                ELSE jsonb_build_object('sids', jsonb_agg(batch.sid ORDER BY batch.sid)) END,
           CASE WHEN count(*) = 1 THEN @job_kind::text ELSE @batch_kind::text END,
           @max_attempts::smallint
    FROM batch
    HAVING count(*) > 0
    RETURNING id
)
-- Their deliveries to FORWARD_URL, naming the job (00017_delivery_jobs.sql).
INSERT INTO deliveries (message_id, destination, received_at, job_id)
SELECT batch.id, 'default', batch.received_at, job.id FROM batch CROSS JOIN job;

-- name: InsertBatchRoutes :exec
-- InsertBatchJob for the destinations: for each destination whose rules
-- match any message this transaction stored among the batch's sids, one
-- job (kind batch_kind with the sids it matches, or job_kind for one) in
-- the destination's queue. Sent after the batch's inserts, in the same
-- round trip and implicit transaction, so every delivery commits with
-- exactly the rows: a job per batch and destination, not per message.
WITH owed AS (
    -- The deliveries (00015_deliveries.sql), one per message and
    -- destination.
    SELECT m.id, m.metadata->>'message_sid' AS sid, m.received_at, d.name AS destination
    FROM messages m
    JOIN destinations d ON destination_matches(d, m.account_sid, m.to_address, m.messaging_service_sid, 'inbound')
    WHERE m.metadata->>'message_sid' = ANY(@sids::text[])
      AND m.xmin = pg_current_xact_id()::xid
      -- Evaluated once (an InitPlan): with no destination, the batch's
      -- rows are not read again at all.
      AND (SELECT true FROM destinations LIMIT 1)
), jobs AS (
    INSERT INTO river_job (args, kind, max_attempts, queue)
    SELECT CASE WHEN count(*) = 1 THEN jsonb_build_object('destination', owed.destination, 'sid', min(owed.sid))
                ELSE jsonb_build_object('destination', owed.destination, 'sids', jsonb_agg(owed.sid ORDER BY owed.sid)) END,
           CASE WHEN count(*) = 1 THEN @job_kind::text ELSE @batch_kind::text END,
           @max_attempts::smallint,
           owed.destination
    FROM owed
    GROUP BY owed.destination
    RETURNING id, queue
)
INSERT INTO deliveries (message_id, destination, received_at, job_id)
SELECT owed.id, owed.destination, owed.received_at, jobs.id
FROM owed JOIN jobs ON jobs.queue = owed.destination;

-- name: GetMessageBySID :one
-- The message with this Twilio sid, through the unique index.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
FROM messages
WHERE metadata->>'message_sid' = @sid::text;

-- name: GetMessageReceivedPayload :one
-- The forward of a newly stored message: {id, type, message}, as JSON text.
SELECT json_build_object(
    'id', @id::text,
    'type', 'message.received',
    'message', message_payload(m)
)::text
FROM messages m
WHERE m.metadata->>'message_sid' = @sid::text;

-- name: GetMessageReceivedPayloads :many
-- The forwards of a batch job's messages, one per stored message, by sid
-- (a message retention deleted since has none).
SELECT (m.metadata->>'message_sid')::text AS sid,
       json_build_object('id', m.metadata->>'message_sid', 'type', 'message.received', 'message', message_payload(m))::text AS payload
FROM messages m
WHERE m.metadata->>'message_sid' = ANY(@sids::text[])
LIMIT 1000;

-- name: CountMessagesBySIDs :one
-- How many rows exist for the given sids: the check that a load or a
-- simulation stored each distinct message once.
SELECT count(*)
FROM messages
WHERE metadata->>'message_sid' = ANY(@sids::text[]);

-- name: ListMessages :many
-- A page of messages, newest first, after the keyset cursor (before_at,
-- before_id) and within [since, until). The caller always passes a cursor
-- (the first page's is past every row), so the cursor is an index condition
-- on messages_received_at_id_idx rather than a filter. direction, status,
-- source and forward state filter that scan; a filter on from, to, a number
-- or account uses its own query below, led by its own index, and one on
-- the unfinished or failed forward states starts from the jobs
-- (ListMessagesByForward).
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
FROM messages
WHERE (received_at, id) < (@before_at::timestamptz, @before_id::bigint)
  AND received_at >= @since::timestamptz
  AND (sqlc.narg('direction')::text IS NULL OR direction = sqlc.narg('direction'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('source')::text IS NULL OR coalesce(metadata->>'source', 'webhook') = sqlc.narg('source'))
  AND (sqlc.narg('forward')::text[] IS NULL OR message_delivery_state(id, sqlc.narg('destination')) = ANY(sqlc.narg('forward')::text[]))
ORDER BY received_at DESC, id DESC
LIMIT @max_rows::integer;

-- name: ListMessagesFrom :many
-- ListMessages for one sender, through messages_from_address_received_at_idx.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
FROM messages
WHERE from_address = @from_address::text
  AND (received_at, id) < (@before_at::timestamptz, @before_id::bigint)
  AND received_at >= @since::timestamptz
  AND (sqlc.narg('to_address')::text IS NULL OR to_address = sqlc.narg('to_address'))
  AND (sqlc.narg('account_sid')::text IS NULL OR account_sid = sqlc.narg('account_sid'))
  AND (sqlc.narg('direction')::text IS NULL OR direction = sqlc.narg('direction'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('source')::text IS NULL OR coalesce(metadata->>'source', 'webhook') = sqlc.narg('source'))
  AND (sqlc.narg('forward')::text[] IS NULL OR message_delivery_state(id, sqlc.narg('destination')) = ANY(sqlc.narg('forward')::text[]))
ORDER BY from_address DESC, received_at DESC, id DESC
LIMIT @max_rows::integer;

-- name: ListMessagesTo :many
-- ListMessages for one recipient, through messages_to_address_received_at_idx.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
FROM messages
WHERE to_address = @to_address::text
  AND (received_at, id) < (@before_at::timestamptz, @before_id::bigint)
  AND received_at >= @since::timestamptz
  AND (sqlc.narg('account_sid')::text IS NULL OR account_sid = sqlc.narg('account_sid'))
  AND (sqlc.narg('direction')::text IS NULL OR direction = sqlc.narg('direction'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('source')::text IS NULL OR coalesce(metadata->>'source', 'webhook') = sqlc.narg('source'))
  AND (sqlc.narg('forward')::text[] IS NULL OR message_delivery_state(id, sqlc.narg('destination')) = ANY(sqlc.narg('forward')::text[]))
ORDER BY to_address DESC, received_at DESC, id DESC
LIMIT @max_rows::integer;

-- name: ListMessagesForAccount :many
-- ListMessages for one account, through messages_account_sid_received_at_idx.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
FROM messages
WHERE account_sid = @account_sid::text
  AND (received_at, id) < (@before_at::timestamptz, @before_id::bigint)
  AND received_at >= @since::timestamptz
  AND (sqlc.narg('direction')::text IS NULL OR direction = sqlc.narg('direction'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('source')::text IS NULL OR coalesce(metadata->>'source', 'webhook') = sqlc.narg('source'))
  AND (sqlc.narg('forward')::text[] IS NULL OR message_delivery_state(id, sqlc.narg('destination')) = ANY(sqlc.narg('forward')::text[]))
ORDER BY account_sid DESC, received_at DESC, id DESC
LIMIT @max_rows::integer;

-- name: ListMessagesNumber :many
-- ListMessages for one phone number, as sender or recipient: the newest of
-- each index (messages_from_address_received_at_idx and
-- messages_to_address_received_at_idx), merged.
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
FROM (
    (SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
     FROM messages
     WHERE from_address = @number::text
       AND (received_at, id) < (@before_at::timestamptz, @before_id::bigint)
       AND received_at >= @since::timestamptz
       AND (sqlc.narg('account_sid')::text IS NULL OR account_sid = sqlc.narg('account_sid'))
       AND (sqlc.narg('direction')::text IS NULL OR direction = sqlc.narg('direction'))
       AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
       AND (sqlc.narg('source')::text IS NULL OR coalesce(metadata->>'source', 'webhook') = sqlc.narg('source'))
       AND (sqlc.narg('forward')::text[] IS NULL OR message_delivery_state(id, sqlc.narg('destination')) = ANY(sqlc.narg('forward')::text[]))
     ORDER BY from_address DESC, received_at DESC, id DESC
     LIMIT @max_rows::integer)
    UNION ALL
    (SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata, error_code, status_checked_at
     FROM messages
     WHERE to_address = @number::text AND from_address <> @number::text
       AND (received_at, id) < (@before_at::timestamptz, @before_id::bigint)
       AND received_at >= @since::timestamptz
       AND (sqlc.narg('account_sid')::text IS NULL OR account_sid = sqlc.narg('account_sid'))
       AND (sqlc.narg('direction')::text IS NULL OR direction = sqlc.narg('direction'))
       AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
       AND (sqlc.narg('source')::text IS NULL OR coalesce(metadata->>'source', 'webhook') = sqlc.narg('source'))
       AND (sqlc.narg('forward')::text[] IS NULL OR message_delivery_state(id, sqlc.narg('destination')) = ANY(sqlc.narg('forward')::text[]))
     ORDER BY to_address DESC, received_at DESC, id DESC
     LIMIT @max_rows::integer)
) AS m
ORDER BY received_at DESC, id DESC
LIMIT @max_rows::integer;

-- name: ListMessagesByForward :many
-- ListMessages for the forward states that few messages are in (pending,
-- retrying, failed, cancelled). The candidates are the deliveries whose
-- failure was recorded in one of them (of the destination, when named),
-- read newest first from the partial index deliveries_unsettled_idx
-- (whose received_at is their message's), and, for pending and retrying,
-- the messages of the forward jobs not done yet (through River's state
-- index; as many as the backlog). Sorted before the join, so only the
-- messages of the page are read; each is kept when its forward state
-- over all (those) deliveries is one of forward.
SELECT m.id, m.direction, m.account_sid, m.messaging_service_sid, m.from_address, m.to_address,
       m.body, m.num_media, m.num_segments, m.media, m.status, m.received_at, m.metadata, m.error_code, m.status_checked_at
FROM (
    SELECT DISTINCT c.received_at, c.message_id
    FROM (
        SELECT d.received_at, d.message_id
        FROM deliveries d
        WHERE d.state = ANY(@forward::text[]) AND d.state IN ('retrying', 'failed', 'cancelled')
          AND (sqlc.narg('destination')::text IS NULL OR d.destination = sqlc.narg('destination'))
        UNION ALL
        SELECT w.received_at, w.id
        FROM river_job j
        CROSS JOIN LATERAL (
            SELECT j.args->>'sid' WHERE j.kind = @job_kind::text
            UNION ALL
            SELECT jsonb_array_elements_text(j.args->'sids') WHERE j.kind = @batch_kind::text
        ) AS s(sid)
        JOIN messages w ON w.metadata->>'message_sid' = s.sid
        WHERE (@forward::text[] && ARRAY['pending', 'retrying'])
          AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
          AND j.kind IN (@job_kind::text, @batch_kind::text)
          AND (sqlc.narg('destination')::text IS NULL OR j.queue = sqlc.narg('destination'))
    ) AS c
    WHERE (c.received_at, c.message_id) < (@before_at::timestamptz, @before_id::bigint)
      AND c.received_at >= @since::timestamptz
    -- Sorted here, so the join reads messages only until the page is
    -- full (the planner cannot count the candidates well enough to see
    -- that by itself).
    ORDER BY c.received_at DESC, c.message_id DESC
) AS c
JOIN messages m ON m.id = c.message_id
WHERE message_delivery_state(m.id, sqlc.narg('destination')) = ANY(@forward::text[])
  AND (sqlc.narg('number')::text IS NULL OR m.from_address = sqlc.narg('number') OR m.to_address = sqlc.narg('number'))
  AND (sqlc.narg('from_address')::text IS NULL OR m.from_address = sqlc.narg('from_address'))
  AND (sqlc.narg('to_address')::text IS NULL OR m.to_address = sqlc.narg('to_address'))
  AND (sqlc.narg('account_sid')::text IS NULL OR m.account_sid = sqlc.narg('account_sid'))
  AND (sqlc.narg('direction')::text IS NULL OR m.direction = sqlc.narg('direction'))
  AND (sqlc.narg('status')::text IS NULL OR m.status = sqlc.narg('status'))
  AND (sqlc.narg('source')::text IS NULL OR coalesce(m.metadata->>'source', 'webhook') = sqlc.narg('source'))
ORDER BY c.received_at DESC, c.message_id DESC
LIMIT @max_rows::integer;

-- name: LastMessageForAccounts :many
-- Each account's latest delivered (webhook) message, through
-- messages_account_sid_received_at_idx.
SELECT a.sid::text AS account_sid, last.received_at
FROM unnest(@account_sids::text[]) AS a(sid)
CROSS JOIN LATERAL (
    SELECT m.received_at FROM messages m
    WHERE m.account_sid = a.sid AND coalesce(m.metadata->>'source', 'webhook') = 'webhook'
    ORDER BY m.received_at DESC
    LIMIT 1
) AS last
LIMIT 1000;

-- name: DeleteMessagesBefore :one
-- Retention: up to max_rows of the oldest messages received before the
-- cutoff, through messages_received_at_id_idx, with their deliveries.
-- Bounded so that each run is a short transaction holding few row locks.
WITH gone AS (
    DELETE FROM messages
    WHERE id IN (
        SELECT id FROM messages
        WHERE received_at < @before::timestamptz
        ORDER BY received_at, id
        LIMIT @max_rows::integer
    )
    RETURNING id
), owed AS (
    DELETE FROM deliveries d USING gone WHERE d.message_id = gone.id
)
SELECT count(*)::bigint FROM gone;

-- name: EnrichMessage :execrows
-- Adds to a stored message what another way in carried and the way that
-- stored it did not (docs/event-streams.md): the params it lacks of
-- @extra (an event's OptOutType and Recipients; a webhook's media URLs,
-- WhatsApp fields and the rest), never changing one it has, and the media
-- of a webhook when it has none. Idempotent, and no write when there is
-- nothing new; it never creates a row, and never forwards anything. When
-- @only_source is given, only a row that source stored is enriched (a
-- webhook's repeat adds nothing to a row a webhook stored).
UPDATE messages
SET metadata = jsonb_set(metadata, '{params}', @extra::jsonb || coalesce(metadata->'params', '{}'::jsonb)),
    media = CASE WHEN media = '[]'::jsonb THEN @media::jsonb ELSE media END
WHERE metadata->>'message_sid' = @sid::text
  AND (sqlc.narg('only_source')::text IS NULL OR metadata->>'source' = sqlc.narg('only_source')::text)
  AND (EXISTS (SELECT 1 FROM jsonb_object_keys(@extra::jsonb) AS k(key)
               WHERE NOT jsonb_exists(coalesce(metadata->'params', '{}'::jsonb), k.key))
       OR (media = '[]'::jsonb AND @media::jsonb <> '[]'::jsonb));

-- name: MarkEventStreamsSeen :exec
-- Records that an Event Streams batch arrived now (event_streams_seen).
INSERT INTO event_streams_seen (id, last_batch_at) VALUES (true, now())
ON CONFLICT (id) DO UPDATE SET last_batch_at = EXCLUDED.last_batch_at;

-- name: EventStreamsSeenSince :one
-- Whether an Event Streams batch arrived since @since.
SELECT coalesce((SELECT last_batch_at >= @since::timestamptz FROM event_streams_seen WHERE id), false)::boolean AS seen;
