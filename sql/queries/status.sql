-- name: InsertStatusEvent :one
-- Records that Twilio reported this status for this message, once: a
-- returned id means this callback is the first to say so, no row a repeat.
INSERT INTO message_status_events (message_sid, status, error_code, params)
VALUES (@message_sid, @status, sqlc.narg('error_code'), @params)
ON CONFLICT (message_sid, status) DO NOTHING
RETURNING id;

-- name: UpsertOutboundStatus :one
-- Creates the outbound message on its first callback, or moves its status
-- forward: the update happens only when the new status outranks the stored
-- one, decided on the row's latest version under any concurrency. No row
-- back means nothing changed (a repeat or a regression). When max_attempts
-- is above 0, the same statement inserts the River job that processes the
-- change (kind job_kind, args {"sid": …, "status": …}, as River's
-- InsertTx makes it for job.Status) whenever the status moved.
WITH moved AS (
    INSERT INTO messages (
        direction, account_sid, messaging_service_sid, from_address, to_address,
        status, error_code, metadata
    ) VALUES (
        'outbound', @account_sid, sqlc.narg('messaging_service_sid'), @from_address, @to_address,
        @status, sqlc.narg('error_code'), @metadata
    )
    ON CONFLICT ((metadata->>'message_sid')) DO UPDATE
    SET status = EXCLUDED.status,
        error_code = COALESCE(EXCLUDED.error_code, messages.error_code)
    WHERE messages.direction = 'outbound'
      AND message_status_rank(EXCLUDED.status) > message_status_rank(messages.status)
    RETURNING id, status, metadata->>'message_sid' AS sid, account_sid, to_address, messaging_service_sid
), job AS (
    INSERT INTO river_job (args, kind, max_attempts)
    SELECT jsonb_build_object('sid', moved.sid, 'status', moved.status), @job_kind::text, @max_attempts::smallint
    FROM moved
    WHERE @max_attempts::smallint > 0
), routed AS (
    -- A delivery job for each destination whose rules match the change
    -- (event status), in the destination's queue.
    INSERT INTO river_job (args, kind, max_attempts, queue)
    SELECT jsonb_build_object('destination', d.name, 'sid', moved.sid, 'status', moved.status), @job_kind::text, @route_attempts::smallint, d.name
    FROM moved CROSS JOIN destinations d
    WHERE @route_attempts::smallint > 0
      AND destination_matches(d, moved.account_sid, moved.to_address, moved.messaging_service_sid, 'status')
)
SELECT moved.id, moved.status FROM moved;

-- name: ListStatusEvents :many
-- The statuses reported for a message, in the order they arrived.
SELECT id, message_sid, status, error_code, received_at, params
FROM message_status_events
WHERE message_sid = @message_sid
ORDER BY id
LIMIT @max_rows::integer;

-- name: GetStatusChangedPayload :one
-- The forward of a status change: {id, type, message, status}, as JSON
-- text; status is the callback that first reported the status.
SELECT json_build_object(
    'id', @id::text,
    'type', 'message.status',
    'message', message_payload(m),
    'status', json_build_object(
        'status', e.status,
        'error_code', e.error_code,
        'received_at', e.received_at,
        'params', e.params
    )
)::text
FROM message_status_events e
JOIN messages m ON m.metadata->>'message_sid' = e.message_sid
WHERE e.message_sid = @sid::text AND e.status = @status::text;

-- name: DeleteStatusEventsBefore :execrows
-- Retention: up to max_rows of the oldest status events received before
-- the cutoff, through message_status_events_received_at_idx.
DELETE FROM message_status_events
WHERE id IN (
    SELECT id FROM message_status_events
    WHERE received_at < @before::timestamptz
    ORDER BY received_at, id
    LIMIT @max_rows::integer
);

-- name: InsertOptOut :one
-- An inbound message's opt-out (STOP, START, HELP) that only a later Event
-- Streams event carried: its webhook did not, so its forward went without
-- it (docs/event-streams.md). Recorded once, as a status event named
-- opt_out of the inbound message, with a job for FORWARD_URL's app and
-- for each destination that takes the message (its inbound rules): the
-- apps learn of it as a status change of the message, id sid.opt_out.
-- Nothing when the row has an OptOutType already (its forward carried
-- it), is not inbound, or the opt-out was recorded before; a returned row
-- means recorded now.
WITH ev AS (
    INSERT INTO message_status_events (message_sid, status, params)
    SELECT m.metadata->>'message_sid', 'opt_out', jsonb_build_object('OptOutType', @opt_out_type::text)
    FROM messages m
    WHERE m.metadata->>'message_sid' = @sid::text
      AND m.direction = 'inbound'
      AND NOT jsonb_exists(coalesce(m.metadata->'params', '{}'::jsonb), 'OptOutType')
    ON CONFLICT (message_sid, status) DO NOTHING
    RETURNING message_sid
), job AS (
    INSERT INTO river_job (args, kind, max_attempts)
    SELECT jsonb_build_object('sid', ev.message_sid, 'status', 'opt_out'), @job_kind::text, @max_attempts::smallint
    FROM ev
    WHERE @max_attempts::smallint > 0
), routed AS (
    INSERT INTO river_job (args, kind, max_attempts, queue)
    SELECT jsonb_build_object('destination', d.name, 'sid', ev.message_sid, 'status', 'opt_out'), @job_kind::text, @route_attempts::smallint, d.name
    FROM ev
    JOIN messages m ON m.metadata->>'message_sid' = ev.message_sid
    CROSS JOIN destinations d
    WHERE @route_attempts::smallint > 0
      AND destination_matches(d, m.account_sid, m.to_address, m.messaging_service_sid, 'inbound')
)
SELECT ev.message_sid FROM ev;
