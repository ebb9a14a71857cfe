-- +goose Up
-- The operator's controls of forwarding (docs/operating.md, "The
-- console"): why it is paused (River's queue pause says only that it is),
-- the delivery rate shared by every worker of every process, and the bulk
-- retries of failed forwards with their progress.
CREATE TABLE forwarding_control (
    -- One row: a boolean key that can only be true.
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- Forwards per second across every worker; NULL: unlimited.
    rate          double precision CHECK (rate IS NULL OR rate > 0),
    -- The next free slot of the rate: a worker takes the later of it and
    -- now, and moves it one interval on (GCRA), so bursts are held.
    next_slot_at  timestamptz NOT NULL DEFAULT now(),
    paused_reason text CHECK (paused_reason IN ('operator', 'breaker')),
    paused_detail text,
    paused_at     timestamptz
);
INSERT INTO forwarding_control DEFAULT VALUES;

CREATE TABLE forward_retries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The console's filter the retry covers, as the API takes it.
    filter       jsonb NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    matched      integer NOT NULL DEFAULT 0,
    retried      integer NOT NULL DEFAULT 0,
    finished_at  timestamptz,
    error        text
);

-- A message's forward state, from its latest forward job (River keeps a
-- finished job a day, a discarded one a week, by default; a message whose
-- job is gone is none): none (no job), pending (waiting, or on its first
-- attempt), retrying (an attempt failed and it will run again), forwarded,
-- failed (its attempts spent), or cancelled (refused for good). One
-- definition for every filter, page and the bulk retry.
-- +goose StatementBegin
CREATE FUNCTION message_forward_state(sid text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN j.state IS NULL THEN 'none'
        WHEN j.state = 'completed' THEN 'forwarded'
        WHEN j.state = 'discarded' THEN 'failed'
        WHEN j.state = 'cancelled' THEN 'cancelled'
        WHEN j.failures > 0 THEN 'retrying'
        ELSE 'pending'
    END
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT r.state::text AS state, coalesce(array_length(r.errors, 1), 0) AS failures
        FROM river_job r
        WHERE r.args @> jsonb_build_object('sid', sid) AND r.kind = 'inbox_message'
        ORDER BY r.id DESC
        LIMIT 1
    ) j ON true
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION message_forward_state(text);
DROP TABLE forward_retries;
DROP TABLE forwarding_control;
