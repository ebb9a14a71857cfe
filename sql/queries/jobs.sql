-- name: InsertMessageJob :one
-- A new processing job for a stored inbound message (the admin API's
-- replay): the same row InsertInboundMessagesWithJob inserts, so the forward
-- carries the same webhook-id, the message sid. No row when no inbound
-- message has this sid.
INSERT INTO river_job (args, kind, max_attempts)
SELECT jsonb_build_object('sid', m.metadata->>'message_sid'), 'inbox_message', @max_attempts::smallint
FROM messages m
WHERE m.metadata->>'message_sid' = @sid::text AND m.direction = 'inbound'
RETURNING id, kind, state::text AS state, attempt, max_attempts, created_at, scheduled_at,
          attempted_at, finalized_at, COALESCE(errors[array_upper(errors, 1)]->>'error', '')::text AS last_error;

-- name: ListMessageJobs :many
-- The processing jobs of a message (its forward, and its status changes'),
-- newest first, through River's GIN index on args.
SELECT id, kind, state::text AS state, attempt, max_attempts, created_at, scheduled_at,
       attempted_at, finalized_at, COALESCE(errors[array_upper(errors, 1)]->>'error', '')::text AS last_error
FROM river_job
WHERE args @> jsonb_build_object('sid', @sid::text)
  AND kind IN ('inbox_message', 'inbox_status')
ORDER BY id DESC
LIMIT @max_rows::integer;

-- name: CountJobsByState :many
-- Jobs by River state, for the inbox_jobs gauge. River's cleaner deletes
-- finished jobs (completed after a day, by default), so the table stays small.
SELECT state::text AS state, count(*) AS jobs
FROM river_job
GROUP BY state
LIMIT 16;

-- name: DeleteFinishedJobsBefore :execrows
-- Retention: up to max_rows of this service's jobs that finished before the
-- cutoff, through River's (state, finalized_at) index. River's own cleaner
-- deletes them sooner by default; this bounds what a longer River setting
-- would keep.
DELETE FROM river_job
WHERE id IN (
    SELECT id FROM river_job
    WHERE state IN ('completed', 'cancelled', 'discarded')
      AND finalized_at < @before::timestamptz
      AND kind IN ('inbox_message', 'inbox_status')
    LIMIT @max_rows::integer
);
