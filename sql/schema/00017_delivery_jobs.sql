-- +goose Up
-- A delivery names the job that carries it (job_id), so its success needs
-- no write: while nothing has been recorded since it was queued (state
-- 'pending'), a delivery is in its job's state (delivery_state), and a
-- forwarded delivery is a completed job. Recording every success cost
-- PostgreSQL about 100 µs a delivery (an update that could not be HOT:
-- docs/benchmarks.md), the largest part of what each further destination
-- costs. The workers still record every failure (retrying, failed,
-- cancelled) and a success after one; the partial index holds only those,
-- the rows an operator acts on.
ALTER TABLE deliveries ADD COLUMN job_id bigint;

-- The unfinished forwards of the release before: their latest job.
UPDATE deliveries d
SET job_id = j.id
FROM (
    SELECT DISTINCT ON (m.id, coalesce(r.args->>'destination', 'default'))
           m.id AS message_id, coalesce(r.args->>'destination', 'default') AS destination, r.id
    FROM river_job r
    CROSS JOIN LATERAL (
        SELECT r.args->>'sid' WHERE r.kind = 'inbox_message'
        UNION ALL
        SELECT jsonb_array_elements_text(r.args->'sids') WHERE r.kind = 'inbox_messages'
    ) AS s(sid)
    JOIN messages m ON m.metadata->>'message_sid' = s.sid
    WHERE r.kind IN ('inbox_message', 'inbox_messages')
    ORDER BY m.id, coalesce(r.args->>'destination', 'default'), r.id DESC
) AS j
WHERE d.message_id = j.message_id AND d.destination = j.destination
  AND d.state IN ('pending', 'retrying');

DROP INDEX deliveries_unsettled_idx;
CREATE INDEX deliveries_unsettled_idx ON deliveries (state, received_at DESC, message_id DESC) INCLUDE (destination)
    WHERE state IN ('retrying', 'failed', 'cancelled');

-- A delivery's state: what was recorded, or, while nothing was recorded
-- since it was queued, its job's (forwarded when the job is done, or gone:
-- River cleans finished jobs). One probe of river_job's primary key.
-- +goose StatementBegin
CREATE FUNCTION delivery_state(d deliveries) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN d.state <> 'pending' THEN d.state
        ELSE coalesce((
            SELECT CASE j.state
                WHEN 'completed' THEN 'forwarded'
                WHEN 'discarded' THEN 'failed'
                WHEN 'cancelled' THEN 'cancelled'
                WHEN 'retryable' THEN 'retrying'
                ELSE 'pending'
            END
            FROM river_job j WHERE j.id = d.job_id), 'forwarded')
    END
$$;

CREATE OR REPLACE FUNCTION message_delivery_state(message_id bigint, destination text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce((
        SELECT s.state
        FROM deliveries d CROSS JOIN LATERAL (SELECT delivery_state(d) AS state) AS s
        WHERE d.message_id = $1 AND ($2 IS NULL OR d.destination = $2)
        ORDER BY array_position(ARRAY['failed', 'cancelled', 'retrying', 'pending', 'forwarded'], s.state)
        LIMIT 1), 'none')
$$;
-- +goose StatementEnd

-- +goose Down
-- What the jobs say, recorded, as the release before records every
-- outcome.
UPDATE deliveries d SET state = delivery_state(d) WHERE d.state = 'pending';
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION message_delivery_state(message_id bigint, destination text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce((
        SELECT d.state FROM deliveries d
        WHERE d.message_id = $1 AND ($2 IS NULL OR d.destination = $2)
        ORDER BY array_position(ARRAY['failed', 'cancelled', 'retrying', 'pending', 'forwarded'], d.state)
        LIMIT 1), 'none')
$$;
-- +goose StatementEnd
DROP FUNCTION delivery_state(deliveries);
DROP INDEX deliveries_unsettled_idx;
CREATE INDEX deliveries_unsettled_idx ON deliveries (state, received_at DESC, message_id DESC) INCLUDE (destination)
    WHERE state <> 'forwarded';
ALTER TABLE deliveries DROP COLUMN job_id;
