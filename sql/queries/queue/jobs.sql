-- name: InsertMessageJob :one
-- A new processing job for a stored inbound message's delivery to
-- destination (the admin API's replay, "Forward again"; "default" is
-- FORWARD_URL's, in River's default queue with no destination in its
-- args): the same row InsertInboundMessage inserts, so the forward carries
-- the same webhook-id, the message sid. No row when no inbound message has
-- this sid. Its delivery (00015_deliveries.sql) is pending again, or owed
-- from now on if the message never was to that destination.
--
-- At most one replay of a sid to a destination waits or runs at a time,
-- however many are asked for at once: each carries the unique key
-- inbox_replay:<destination>:<sid> with the unfinished states (available,
-- pending, retryable, running, scheduled: B'11110001' in River's bitmask),
-- so River's own unique index decides. A replay while an earlier one is
-- unfinished conflicts, and the no-op update returns that job instead,
-- with created false (xmax is then the updating transaction's id, as
-- River's own unique inserts read it).
WITH m AS (
    SELECT id, metadata->>'message_sid' AS sid, received_at
    FROM messages
    WHERE metadata->>'message_sid' = @sid::text AND direction = 'inbound'
), j AS (
    INSERT INTO river_job (args, kind, max_attempts, queue, unique_key, unique_states)
    SELECT jsonb_build_object('sid', m.sid)
             || CASE WHEN @destination::text = 'default' THEN '{}'::jsonb ELSE jsonb_build_object('destination', @destination::text) END,
           @job_kind::text, @max_attempts::smallint, @destination::text,
           convert_to('inbox_replay:' || CASE WHEN @destination::text = 'default' THEN '' ELSE @destination::text || ':' END || m.sid, 'UTF8'),
           B'11110001'
    FROM m
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL AND river_job_state_in_bitmask(unique_states, state)
        DO UPDATE SET kind = river_job.kind
    RETURNING id, kind, state::text AS state, attempt, max_attempts, created_at, scheduled_at,
              attempted_at, finalized_at, COALESCE(errors[array_upper(errors, 1)]->>'error', '')::text AS last_error,
              (xmax = 0)::boolean AS created
), owed AS (
    INSERT INTO deliveries (message_id, destination, received_at, job_id)
    SELECT m.id, @destination::text, m.received_at, j.id FROM m CROSS JOIN j
    ON CONFLICT (message_id, destination) DO UPDATE
    SET state = 'pending', job_id = EXCLUDED.job_id, error = NULL, updated_at = now()
)
SELECT id, kind, state, attempt, max_attempts, created_at, scheduled_at, attempted_at, finalized_at, last_error, created
FROM j;

-- name: ListMessageJobs :many
-- The processing jobs of a message (its forward, alone or in a batch, and
-- its status changes'), newest first, through River's GIN index on args;
-- with each failed attempt (River's errors: at, attempt, error), without the
-- stack traces.
SELECT id, kind, state::text AS state, attempt, max_attempts, created_at, scheduled_at,
       attempted_at, finalized_at, COALESCE(errors[array_upper(errors, 1)]->>'error', '')::text AS last_error,
       (SELECT coalesce(jsonb_agg(e - 'trace' ORDER BY n), '[]'::jsonb)
        FROM unnest(errors) WITH ORDINALITY AS failed(e, n))::jsonb AS failures,
       coalesce(jsonb_array_length(args->'sids'), 0)::integer AS batch_size,
       coalesce((args->>'batch')::bigint, 0)::bigint AS handed_off_by
FROM river_job
WHERE (args @> jsonb_build_object('sid', @sid::text) OR args @> jsonb_build_object('sids', jsonb_build_array(@sid::text)))
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

-- name: InsertForwardHandOffs :exec
-- The messages of a batch job that need a job of their own, inserted in the
-- transaction that completes the batch (River's JobCompleteTx), each in
-- the River state its forward left it: retryable at not_before (its failed
-- attempt in River's errors), cancelled (the app's answer cannot change) or
-- discarded (no attempt left), or available when nothing failed (the
-- delivery rate spaces each forward). A job of a message's own is what
-- every later attempt of it runs; its args name the batch it came from,
-- and the destination (and queue) is the batch's: "" is FORWARD_URL's,
-- in River's default queue.
WITH h AS (
    SELECT s.sid, (@errors::text[])[s.i] AS error, (@states::text[])[s.i] AS state,
           (@not_before::timestamptz[])[s.i] AS not_before, (@failed_at::timestamptz[])[s.i] AS failed_at
    FROM unnest(@sids::text[]) WITH ORDINALITY AS s(sid, i)
), ins AS (
    INSERT INTO river_job (args, kind, max_attempts, queue, attempt, state, scheduled_at, attempted_at, finalized_at, errors)
    SELECT jsonb_build_object('sid', h.sid, 'batch', @batch_id::bigint)
             || CASE WHEN @destination::text = '' THEN '{}'::jsonb ELSE jsonb_build_object('destination', @destination::text) END,
           @job_kind::text, @max_attempts::smallint,
           CASE WHEN @destination::text = '' THEN 'default' ELSE @destination::text END,
           CASE WHEN h.error = '' THEN 0 ELSE 1 END,
           h.state::river_job_state,
           h.not_before,
           CASE WHEN h.error <> '' THEN h.failed_at END,
           CASE WHEN h.state IN ('cancelled', 'discarded') THEN h.failed_at END,
           CASE WHEN h.error <> '' THEN ARRAY[jsonb_build_object('at', h.failed_at, 'attempt', 1, 'error', h.error, 'trace', '')] END
    FROM h
    RETURNING id, args->>'sid' AS sid
)
-- Each delivery now names its own job (00017_delivery_jobs.sql), and
-- one that failed records how.
UPDATE deliveries d
SET job_id = f.id,
    state = CASE WHEN f.error = '' THEN d.state
                 WHEN f.state = 'retryable' THEN 'retrying' WHEN f.state = 'discarded' THEN 'failed' ELSE 'cancelled' END,
    attempts = CASE WHEN f.error = '' THEN d.attempts ELSE greatest(d.attempts, 1) END,
    error = CASE WHEN f.error = '' THEN d.error ELSE f.error END,
    updated_at = now()
FROM (SELECT m.id AS message_id, ins.id, h.state, h.error
      FROM ins JOIN h ON h.sid = ins.sid JOIN messages m ON m.metadata->>'message_sid' = ins.sid) AS f
WHERE d.message_id = f.message_id
  AND d.destination = CASE WHEN @destination::text = '' THEN 'default' ELSE @destination::text END;

-- name: NoteHandedOff :exec
-- How many of a batch job's messages went to jobs of their own, in its
-- metadata (River's free-form column), so the Forwarding page counts only
-- the others as the batch's forwards.
UPDATE river_job
SET metadata = metadata || jsonb_build_object('handed_off', @handed_off::integer)
WHERE id = @id::bigint;

-- name: CountUnfinishedForwards :many
-- The forwards not yet done, by River state, through River's fetch index
-- (state, queue, ...): the queue's backlog, in messages (a batch job
-- counts its messages).
SELECT state::text AS state,
       sum(CASE WHEN kind = 'inbox_messages' THEN jsonb_array_length(args->'sids') ELSE 1 END)::bigint AS jobs
FROM river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
  AND queue = @queue::text
  AND kind = ANY(@kinds::text[])
GROUP BY state
LIMIT 8;

-- name: OldestAvailableForward :one
-- When the longest-waiting due forward became due: the lag now is its age;
-- now when none waits.
SELECT coalesce(min(scheduled_at), now())::timestamptz AS oldest
FROM river_job
WHERE state = 'available' AND queue = @queue::text AND scheduled_at <= now()
  AND kind = ANY(@kinds::text[]);

-- name: CountFinishedForwardsSince :many
-- Forwards that ended since a time, by outcome (completed, discarded,
-- cancelled), in messages (a completed batch counts those it forwarded:
-- the others it handed to jobs of their own, which count theirs), through
-- River's (state, finalized_at) index; each count reads at most max_count
-- jobs, so a busy hour costs a bounded scan.
SELECT s.state::text AS state,
       (SELECT coalesce(sum(capped.messages), 0) FROM (
            SELECT CASE WHEN j.kind = 'inbox_messages'
                        THEN jsonb_array_length(j.args->'sids') - coalesce((j.metadata->>'handed_off')::integer, 0)
                        ELSE 1 END AS messages
            FROM river_job j
            WHERE j.state = s.state AND j.finalized_at >= @since::timestamptz
              AND j.kind = ANY(@kinds::text[])
            LIMIT @max_count::integer
        ) AS capped)::bigint AS jobs
FROM unnest(ARRAY['completed', 'discarded', 'cancelled']::river_job_state[]) AS s(state)
LIMIT 3;

-- name: OwnsJobTable :one
-- Whether the current role owns river_job (or is a member of its owner, as
-- a superuser is): River's reindexer needs that.
SELECT pg_has_role(current_user, c.relowner, 'USAGE')::boolean AS owns
FROM pg_catalog.pg_class c
WHERE c.oid = 'river_job'::regclass;

-- name: CancelWaitingJobs :one
-- Cancels the jobs of kinds in queue that wait (a removed destination's
-- deliveries, queue being its name), through River's fetch index (state,
-- queue, ...), and the deliveries they carried; a job running now finishes
-- its attempt and is cancelled when next taken. Returns how many jobs.
WITH cancelled AS (
    UPDATE river_job
    SET state = 'cancelled', finalized_at = now()
    WHERE state IN ('available', 'pending', 'retryable', 'scheduled')
      AND queue = @queue::text
      AND kind = ANY(@kinds::text[])
    RETURNING id, kind, args
), carried AS (
    SELECT c.id, jsonb_array_elements_text(coalesce(c.args->'sids', jsonb_build_array(c.args->>'sid'))) AS sid
    FROM cancelled c
), owed AS (
    -- The deliveries those jobs carried (each names its job), found by
    -- their primary key through the jobs' sids.
    UPDATE deliveries d
    SET state = 'cancelled', error = 'cancelled: its destination was removed', updated_at = now()
    FROM carried JOIN messages m ON m.metadata->>'message_sid' = carried.sid
    WHERE d.message_id = m.id AND d.destination = @queue::text AND d.job_id = carried.id
)
SELECT count(*)::bigint FROM cancelled;

-- name: RetryDeliveries :one
-- A page of a bulk retry: every delivery of these messages in one of
-- states (of destination, when named) gets a new forward job, as a replay
-- (InsertMessageJob) makes it, in one statement, and is pending again.
-- One whose replay is already waiting keeps it (the unique key decides).
-- Returns how many jobs it inserted.
WITH due AS (
    SELECT d.message_id, d.destination, m.metadata->>'message_sid' AS sid
    FROM deliveries d
    JOIN messages m ON m.id = d.message_id
    WHERE d.message_id = ANY(@message_ids::bigint[])
      AND delivery_state(d) = ANY(@states::text[])
      AND (sqlc.narg('destination')::text IS NULL OR d.destination = sqlc.narg('destination'))
      AND m.direction = 'inbound'
), ins AS (
    INSERT INTO river_job (args, kind, max_attempts, queue, unique_key, unique_states)
    SELECT jsonb_build_object('sid', due.sid)
             || CASE WHEN due.destination = 'default' THEN '{}'::jsonb ELSE jsonb_build_object('destination', due.destination) END,
           @job_kind::text,
           CASE WHEN due.destination = 'default' THEN @default_attempts::smallint ELSE @route_attempts::smallint END,
           due.destination,
           convert_to('inbox_replay:' || CASE WHEN due.destination = 'default' THEN '' ELSE due.destination || ':' END || due.sid, 'UTF8'),
           B'11110001'
    FROM due
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL AND river_job_state_in_bitmask(unique_states, state)
        DO UPDATE SET kind = river_job.kind
    RETURNING id, args->>'sid' AS sid, queue, (xmax = 0) AS created
), owed AS (
    -- Each pending again, naming its job: the new one, or the replay
    -- already waiting.
    UPDATE deliveries d
    SET state = 'pending', job_id = ins.id, error = NULL, updated_at = now()
    FROM due JOIN ins ON ins.sid = due.sid AND ins.queue = due.destination
    WHERE d.message_id = due.message_id AND d.destination = due.destination
)
SELECT count(*) FILTER (WHERE created)::bigint FROM ins;

-- name: BackfillPage :one
-- A page of a backfill: the next page_size inbound messages received
-- since since, after the cursor (after_at, after_id), oldest first
-- through messages_received_at_id_idx; each the destination's rules match
-- and that is not yet owed to it gets its delivery, and the page's new
-- deliveries one job (a batch's, or a message's own for one) in the
-- destination's queue, in one statement. A message already owed to the
-- destination (by its arrival, or an earlier backfill) keeps its delivery:
-- the primary key decides. Returns the messages read, the deliveries
-- queued, and the last message's position for the next page.
WITH page AS (
    SELECT m.id, m.received_at, m.metadata->>'message_sid' AS sid, m.account_sid, m.to_address, m.messaging_service_sid
    FROM messages m
    WHERE (m.received_at, m.id) > (@after_at::timestamptz, @after_id::bigint)
      AND m.received_at >= @since::timestamptz
      AND m.direction = 'inbound'
    ORDER BY m.received_at, m.id
    LIMIT @page_size::integer
), jid AS (
    -- The page's job's id, taken first, so each delivery inserted names
    -- it (00017_delivery_jobs.sql) and the job carries exactly the
    -- deliveries that were inserted.
    SELECT nextval(pg_get_serial_sequence('river_job', 'id')) AS id
), owed AS (
    INSERT INTO deliveries (message_id, destination, received_at, job_id)
    SELECT page.id, d.name, page.received_at, jid.id
    FROM page
    CROSS JOIN jid
    JOIN destinations d ON d.name = @destination::text
        AND destination_matches(d, page.account_sid, page.to_address, page.messaging_service_sid, 'inbound')
    ON CONFLICT (message_id, destination) DO NOTHING
    RETURNING message_id
), queued AS (
    INSERT INTO river_job (id, args, kind, max_attempts, queue)
    SELECT min(jid.id),
           CASE WHEN count(*) = 1 THEN jsonb_build_object('destination', @destination::text, 'sid', min(page.sid))
                ELSE jsonb_build_object('destination', @destination::text, 'sids', jsonb_agg(page.sid ORDER BY page.sid)) END,
           CASE WHEN count(*) = 1 THEN @job_kind::text ELSE @batch_kind::text END,
           @max_attempts::smallint,
           @destination::text
    FROM owed JOIN page ON page.id = owed.message_id CROSS JOIN jid
    HAVING count(*) > 0
)
SELECT (SELECT count(*) FROM page)::bigint AS read,
       (SELECT count(*) FROM owed)::bigint AS queued,
       coalesce((SELECT max(received_at) FROM page), @after_at::timestamptz)::timestamptz AS last_at,
       coalesce((SELECT id FROM page ORDER BY received_at DESC, id DESC LIMIT 1), @after_id::bigint)::bigint AS last_id;

-- name: ReleaseHeldJobs :one
-- Makes the jobs of kinds in queue that wait for a later time (River's
-- 'scheduled': snoozed by a rate or a pause) due now, through River's fetch
-- index (state, queue, ...): a lifted or changed rate releases what the
-- old one held, rather than leave it waiting as long as the old rate said.
-- A job still held is snoozed again when taken. Returns how many.
WITH released AS (
    UPDATE river_job
    SET scheduled_at = now()
    WHERE state = 'scheduled'
      AND queue = @queue::text
      AND kind = ANY(@kinds::text[])
      AND scheduled_at > now()
    RETURNING 1
)
SELECT count(*)::bigint FROM released;
