-- name: ListDestinations :many
-- Every destination, by name; destinations are capped (MaxDestinations),
-- so the limit is a bound, never a page.
SELECT id, name, kind, url_sealed, url_shown, secret_sealed, accounts, to_numbers, services, events,
       rate, next_slot_at, paused_reason, paused_detail, paused_at, created_at, updated_at,
       subject, exchange, routing_key, creds_sealed
FROM destinations
ORDER BY name
LIMIT @max_rows::integer;

-- name: GetDestination :one
SELECT id, name, kind, url_sealed, url_shown, secret_sealed, accounts, to_numbers, services, events,
       rate, next_slot_at, paused_reason, paused_detail, paused_at, created_at, updated_at,
       subject, exchange, routing_key, creds_sealed
FROM destinations
WHERE name = @name::text;

-- name: LockDestinations :exec
-- Held by an add until its transaction ends, so two adds at once cannot
-- both see room under the cap; reads go on meanwhile. An advisory lock,
-- released at commit or rollback.
SELECT pg_advisory_xact_lock(hashtextextended('inbox_destinations_add', 0));

-- name: CountDestinations :one
SELECT count(*)::integer FROM destinations;

-- name: InsertDestination :one
-- Adds a destination; no row when its name is taken.
INSERT INTO destinations (name, kind, url_sealed, url_shown, secret_sealed, accounts, to_numbers, services, events, rate,
                          subject, exchange, routing_key, creds_sealed)
VALUES (@name::text, @kind::text, @url_sealed::bytea, @url_shown::text, @secret_sealed::bytea,
        @accounts::text[], @to_numbers::text[], @services::text[], @events::text[], sqlc.narg('rate')::double precision,
        sqlc.narg('subject')::text, sqlc.narg('exchange')::text, @routing_key::text, sqlc.narg('creds_sealed')::bytea)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: UpdateDestination :one
-- Changes what is given (NULL: unchanged) of a destination; no row when
-- there is no such destination. clear_rate sets the rate to unlimited.
UPDATE destinations
SET url_sealed = coalesce(sqlc.narg('url_sealed')::bytea, url_sealed),
    url_shown  = coalesce(sqlc.narg('url_shown')::text, url_shown),
    accounts   = coalesce(sqlc.narg('accounts')::text[], accounts),
    to_numbers = coalesce(sqlc.narg('to_numbers')::text[], to_numbers),
    services   = coalesce(sqlc.narg('services')::text[], services),
    events     = coalesce(sqlc.narg('events')::text[], events),
    rate       = CASE WHEN @clear_rate::boolean THEN NULL ELSE coalesce(sqlc.narg('rate')::double precision, rate) END,
    subject    = coalesce(sqlc.narg('subject')::text, subject),
    exchange   = coalesce(sqlc.narg('exchange')::text, exchange),
    routing_key = coalesce(sqlc.narg('routing_key')::text, routing_key),
    updated_at = now()
WHERE name = @name::text
RETURNING id;

-- name: PauseDestination :one
-- Pauses a destination for a reason, unless it is paused already (the first
-- reason stands); changed says whether this call paused it. No row: no
-- such destination. The condition is on the row updated, not the CTE's
-- snapshot: a pause waiting for another's row lock rechecks it on the row
-- that one wrote, so of concurrent pauses exactly one changes it.
WITH target AS (
    SELECT id FROM destinations WHERE name = @name::text
), paused AS (
    UPDATE destinations d
    SET paused_reason = @reason::text, paused_detail = @detail::text, paused_at = now(), updated_at = now()
    FROM target
    WHERE d.id = target.id AND d.paused_reason IS NULL
    RETURNING d.id
)
SELECT (SELECT count(*) FROM paused) > 0 AS changed FROM target;

-- name: ResumeDestination :one
-- Resumes a paused destination; changed says whether it was paused. No
-- row: no such destination. Rechecked on the row, as PauseDestination.
WITH target AS (
    SELECT id FROM destinations WHERE name = @name::text
), resumed AS (
    UPDATE destinations d
    SET paused_reason = NULL, paused_detail = NULL, paused_at = NULL, updated_at = now()
    FROM target
    WHERE d.id = target.id AND d.paused_reason IS NOT NULL
    RETURNING d.id
)
SELECT (SELECT count(*) FROM resumed) > 0 AS changed FROM target;

-- name: DeleteDestination :execrows
DELETE FROM destinations WHERE name = @name::text;

-- name: MatchingDestinations :many
-- The names of the destinations a message with these fields gets, by
-- destination_matches: what the fan-out inserts deliveries for, and what
-- the console shows a message would go to.
SELECT d.name
FROM destinations d
WHERE destination_matches(d, @account_sid::text, @to_address::text, sqlc.narg('messaging_service_sid')::text, @event::text)
ORDER BY d.name
LIMIT 101;

-- name: ReserveDestinationSlot :one
-- ReserveForwardSlot for one destination: its rate, over its row.
WITH c AS (
    SELECT id, rate, greatest(next_slot_at, now()) AS slot
    FROM destinations
    WHERE name = @name::text
    FOR UPDATE
), moved AS (
    UPDATE destinations AS d
    SET next_slot_at = c.slot + make_interval(secs => 1 / c.rate)
    FROM c
    WHERE d.id = c.id AND c.rate IS NOT NULL
      AND c.slot <= now() + make_interval(secs => @max_ahead_seconds::double precision)
    RETURNING d.id
)
SELECT (c.rate IS NULL OR EXISTS (SELECT 1 FROM moved))::boolean AS reserved,
       (CASE WHEN c.rate IS NULL THEN 0 ELSE extract(epoch FROM c.slot - now()) END)::double precision AS wait_seconds
FROM c;

-- name: InsertBackfill :one
-- A backfill of a destination, recorded in the transaction that inserts
-- its job.
INSERT INTO backfills (destination, since) VALUES (@destination::text, @since::timestamptz)
RETURNING id, destination, since, requested_at, read, queued, finished_at, coalesce(error, '')::text AS error;

-- name: AddBackfillProgress :exec
UPDATE backfills
SET read = read + @read::bigint, queued = queued + @queued::bigint
WHERE id = @id::bigint;

-- name: FinishBackfill :exec
UPDATE backfills
SET finished_at = now(), error = sqlc.narg('error')::text
WHERE id = @id::bigint;

-- name: GetBackfill :one
SELECT id, destination, since, requested_at, read, queued, finished_at, coalesce(error, '')::text AS error
FROM backfills
WHERE id = @id::bigint;

-- name: LatestBackfills :many
-- A destination's latest backfills, newest first.
SELECT id, destination, since, requested_at, read, queued, finished_at, coalesce(error, '')::text AS error
FROM backfills
WHERE destination = @destination::text
ORDER BY id DESC
LIMIT @max_rows::integer;
