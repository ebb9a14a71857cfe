-- name: GetForwardingControl :one
-- The operator's controls of forwarding: the rate and why it is paused.
-- (Every query of the table names its one row, WHERE id, by its key.)
-- Every worker process reads it about once a second (process's gate).
SELECT rate, paused_reason, paused_detail, paused_at
FROM forwarding_control
WHERE id;

-- name: SetForwardingPaused :one
-- Records why forwarding is paused, in the transaction that pauses River's
-- queue. A pause while paused keeps the first reason, so the breaker
-- tripping during an operator's pause does not make it the breaker's (and
-- a resume of "the breaker's pause" lift the operator's). paused_now is
-- true when this call paused it. The row lock orders concurrent calls.
UPDATE forwarding_control AS c
SET paused_reason = coalesce(c.paused_reason, @reason::text),
    paused_detail = CASE WHEN c.paused_reason IS NULL THEN sqlc.narg('detail')::text ELSE c.paused_detail END,
    paused_at     = coalesce(c.paused_at, now())
FROM (SELECT paused_reason FROM forwarding_control WHERE id FOR UPDATE) AS before
WHERE c.id
RETURNING (before.paused_reason IS NULL)::boolean AS paused_now;

-- name: ClearForwardingPaused :one
-- Resume, in the transaction that resumes River's queue: was_paused is true
-- when it was paused.
UPDATE forwarding_control AS c
SET paused_reason = NULL, paused_detail = NULL, paused_at = NULL
FROM (SELECT paused_reason FROM forwarding_control WHERE id FOR UPDATE) AS before
WHERE c.id
RETURNING (before.paused_reason IS NOT NULL)::boolean AS was_paused;

-- name: SetForwardingRate :exec
-- The delivery rate, forwards a second across every worker; NULL for
-- unlimited. The slot clock starts over, so a new rate holds from now.
UPDATE forwarding_control
SET rate = sqlc.narg('rate')::double precision,
    next_slot_at = now()
WHERE id;

-- name: ReserveForwardSlot :one
-- A worker's turn under the rate, a generic cell rate algorithm over one
-- row: the slot is the later of now and the next free one, which moves one
-- interval on, so every worker of every process shares the rate and a
-- burst is held, not dropped. A slot more than max_ahead_seconds away is
-- not taken: reserved is false and wait_seconds says when it frees, so the
-- job is snoozed rather than holding a worker. Without a rate every slot is
-- now. The row lock serialises workers for the length of this statement.
WITH c AS (
    SELECT rate, greatest(next_slot_at, now()) AS slot
    FROM forwarding_control
    WHERE id
    FOR UPDATE
), moved AS (
    UPDATE forwarding_control AS f
    SET next_slot_at = c.slot + make_interval(secs => 1 / c.rate)
    FROM c
    WHERE f.id AND c.rate IS NOT NULL
      AND c.slot <= now() + make_interval(secs => @max_ahead_seconds::double precision)
    RETURNING f.id
)
SELECT (c.rate IS NULL OR EXISTS (SELECT 1 FROM moved))::boolean AS reserved,
       (CASE WHEN c.rate IS NULL THEN 0 ELSE extract(epoch FROM c.slot - now()) END)::double precision AS wait_seconds
FROM c;

-- name: InsertForwardRetry :one
-- A bulk retry of failed forwards, recorded in the transaction that
-- inserts its job.
INSERT INTO forward_retries (filter) VALUES (@filter::jsonb)
RETURNING id, filter, requested_at, matched, retried, finished_at, coalesce(error, '')::text AS error;

-- name: AddForwardRetryProgress :exec
-- A page of a bulk retry done: matched failed forwards, retried of them
-- (the rest were already being replayed).
UPDATE forward_retries
SET matched = matched + @matched::integer, retried = retried + @retried::integer
WHERE id = @id::bigint;

-- name: FinishForwardRetry :exec
UPDATE forward_retries
SET finished_at = now(), error = sqlc.narg('error')::text
WHERE id = @id::bigint;

-- name: GetForwardRetry :one
SELECT id, filter, requested_at, matched, retried, finished_at, coalesce(error, '')::text AS error
FROM forward_retries
WHERE id = @id::bigint;

-- name: ListForwardRetries :many
-- The latest bulk retries, newest first.
SELECT id, filter, requested_at, matched, retried, finished_at, coalesce(error, '')::text AS error
FROM forward_retries
ORDER BY id DESC
LIMIT @max_rows::integer;

-- name: ForwardStates :many
-- The forward state of each of these messages over its deliveries
-- (message_delivery_state).
SELECT s.sid::text AS sid, message_delivery_state(m.id, NULL)::text AS state
FROM unnest(@sids::text[]) AS s(sid)
JOIN messages m ON m.metadata->>'message_sid' = s.sid
LIMIT 1000;

-- name: ListDeliveries :many
-- A message's deliveries, by destination, each in its state
-- (delivery_state): its story's.
SELECT d.destination, delivery_state(d)::text AS state, d.attempts, coalesce(d.error, '')::text AS error, d.updated_at
FROM deliveries d
WHERE d.message_id = (SELECT m.id FROM messages m WHERE m.metadata->>'message_sid' = @sid::text)
ORDER BY d.destination
LIMIT 200;

-- name: SettleDeliveries :exec
-- What an attempt of these messages' deliveries to destination came to
-- (dispatch): forwarded, or retrying, failed or cancelled with the
-- attempt's error. attempts only grows, so an outcome recorded late
-- (a worker that lost its job to a rescue) never rewinds the count. The
-- messages' ids are found first (an InitPlan, through the sid's unique
-- index), so the deliveries are read by their primary key whatever the
-- planner believes of the table's size: a join here was planned as a
-- scan of every delivery, on each call.
UPDATE deliveries d
SET state = @state::text,
    attempts = greatest(d.attempts, @attempt::smallint),
    error = sqlc.narg('error')::text,
    updated_at = now()
WHERE d.message_id = ANY(ARRAY(SELECT m.id FROM messages m WHERE m.metadata->>'message_sid' = ANY(@sids::text[])))
  AND d.destination = @destination::text;

-- name: CountDeliveriesSince :many
-- A destination's deliveries of the messages received since a time, by
-- state: its Destinations page's last hour. Reads at most max_count
-- messages, newest first through messages_received_at_id_idx, each with
-- one probe of the deliveries' primary key, so a busy hour costs a
-- bounded scan.
SELECT delivery_state(d)::text AS state, count(*)::bigint AS deliveries
FROM (
    SELECT id FROM messages
    WHERE received_at >= @since::timestamptz
    ORDER BY received_at DESC, id DESC
    LIMIT @max_count::integer
) AS m
JOIN deliveries d ON d.message_id = m.id AND d.destination = @destination::text
GROUP BY 1
LIMIT 8;

-- name: CountUnroutedSince :one
-- The inbound messages received since a time that have no delivery (no
-- destination matched them, or nothing was forwarded when they came): the
-- unrouted gauge. Reads at most max_count messages, newest first through
-- messages_received_at_id_idx, each with one probe of the deliveries'
-- primary key.
SELECT count(*)::bigint
FROM (
    SELECT id FROM messages
    WHERE received_at >= @since::timestamptz AND direction = 'inbound'
    ORDER BY received_at DESC, id DESC
    LIMIT @max_count::integer
) AS m
WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id);
