-- name: InsertMessageJob :one
-- A new processing job for a stored inbound message (the admin API's
-- replay): the same row InsertInboundMessage inserts, so the forward
-- carries the same webhook-id, the message sid. No row when no inbound
-- message has this sid.
--
-- At most one replay of a sid waits or runs at a time, however many are
-- asked for at once: each carries the unique key inbox_replay:<sid> with the
-- unfinished states (available, pending, retryable, running, scheduled:
-- B'11110001' in River's bitmask), so River's own unique index decides. A
-- replay while an earlier one is unfinished conflicts, and the no-op update
-- returns that job instead, with created false (xmax is then the updating
-- transaction's id, as River's own unique inserts read it).
INSERT INTO river_job (args, kind, max_attempts, unique_key, unique_states)
SELECT jsonb_build_object('sid', m.metadata->>'message_sid'), @job_kind::text, @max_attempts::smallint,
       convert_to('inbox_replay:' || (m.metadata->>'message_sid'), 'UTF8'), B'11110001'
FROM messages m
WHERE m.metadata->>'message_sid' = @sid::text AND m.direction = 'inbound'
ON CONFLICT (unique_key)
    WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL AND river_job_state_in_bitmask(unique_states, state)
    DO UPDATE SET kind = river_job.kind
RETURNING id, kind, state::text AS state, attempt, max_attempts, created_at, scheduled_at,
          attempted_at, finalized_at, COALESCE(errors[array_upper(errors, 1)]->>'error', '')::text AS last_error,
          (xmax = 0)::boolean AS created;

-- name: ListMessageJobs :many
-- The processing jobs of a message (its forward, and its status changes'),
-- newest first, through River's GIN index on args; with each failed
-- attempt (River's errors: at, attempt, error), without the stack traces.
SELECT id, kind, state::text AS state, attempt, max_attempts, created_at, scheduled_at,
       attempted_at, finalized_at, COALESCE(errors[array_upper(errors, 1)]->>'error', '')::text AS last_error,
       (SELECT coalesce(jsonb_agg(e - 'trace' ORDER BY n), '[]'::jsonb)
        FROM unnest(errors) WITH ORDINALITY AS failed(e, n))::jsonb AS failures
FROM river_job
WHERE args @> jsonb_build_object('sid', @sid::text)
  AND kind = ANY(@kinds::text[])
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
      AND kind = ANY(@kinds::text[])
    LIMIT @max_rows::integer
);
