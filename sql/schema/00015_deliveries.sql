-- +goose Up
-- A delivery is one stored inbound message owed to one destination
-- (docs/destinations.md): the statement that stores the message inserts
-- its deliveries, one per matching destination ('default' is FORWARD_URL's),
-- in the same transaction as the row and the River job that carries them,
-- so a delivery exists exactly when its message does. The primary key makes
-- the database the judge for deliveries as the sid's unique index is for
-- messages: a backfill or a replay that would owe a message to a
-- destination twice finds the row already there.
--
-- The workers record each outcome here (dispatch), so a message's forward
-- state is read from an index, not computed from River's jobs row by row
-- (the function this replaces read river_job through its GIN index, about
-- 4 ms a message: a console filter over a million messages never ended).
-- Rows in the states an operator acts on are few and in the partial
-- index; a forwarded delivery leaves it.
--
-- No foreign key to messages: its check would lock each new message row
-- again on the hot path; retention deletes a message's deliveries with it
-- (DeleteMessagesBefore).
CREATE TABLE deliveries (
    message_id  bigint NOT NULL,
    destination text NOT NULL,
    -- The message's, which never changes: the console lists messages
    -- newest first, and a list of failed deliveries is read in that order
    -- from the partial index below, without reading every message.
    received_at timestamptz NOT NULL,
    state       text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'retrying', 'forwarded', 'failed', 'cancelled')),
    -- Attempts made so far, and the last one's error while it is not
    -- forwarded.
    attempts    smallint NOT NULL DEFAULT 0,
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, destination)
);

CREATE INDEX deliveries_unsettled_idx ON deliveries (state, received_at DESC, message_id DESC) INCLUDE (destination)
    WHERE state <> 'forwarded';

-- The deliveries of the forwards River still holds, each in the state of
-- its latest job (a batch's message handed to a job of its own has the
-- later one). Messages whose jobs River has already cleaned have no
-- delivery, which is what the function this replaces said too ('none').
INSERT INTO deliveries (message_id, destination, received_at, state, attempts, error, updated_at)
SELECT DISTINCT ON (m.id, j.destination)
       m.id, j.destination, m.received_at,
       CASE
           WHEN j.state = 'completed' THEN 'forwarded'
           WHEN j.state = 'discarded' THEN 'failed'
           WHEN j.state = 'cancelled' THEN 'cancelled'
           WHEN j.failures > 0 THEN 'retrying'
           ELSE 'pending'
       END,
       j.attempt, j.error, j.at
FROM (
    SELECT r.id, coalesce(r.args->>'destination', 'default') AS destination, s.sid, r.state::text AS state,
           coalesce(array_length(r.errors, 1), 0) AS failures, r.attempt,
           r.errors[array_upper(r.errors, 1)]->>'error' AS error,
           coalesce(r.finalized_at, r.attempted_at, r.created_at) AS at
    FROM river_job r
    CROSS JOIN LATERAL (
        SELECT r.args->>'sid' WHERE r.kind = 'inbox_message'
        UNION ALL
        SELECT jsonb_array_elements_text(r.args->'sids') WHERE r.kind = 'inbox_messages'
    ) AS s(sid)
    WHERE r.kind IN ('inbox_message', 'inbox_messages')
) AS j
JOIN messages m ON m.metadata->>'message_sid' = j.sid
ORDER BY m.id, j.destination, j.id DESC;

-- A message's forward state over its deliveries (of one destination, when
-- named): the one an operator must act on first (failed, cancelled,
-- retrying, pending), forwarded when every one was, none when it has none.
-- One probe of the primary key.
-- +goose StatementBegin
CREATE FUNCTION message_delivery_state(message_id bigint, destination text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce((
        SELECT d.state FROM deliveries d
        WHERE d.message_id = $1 AND ($2 IS NULL OR d.destination = $2)
        ORDER BY array_position(ARRAY['failed', 'cancelled', 'retrying', 'pending', 'forwarded'], d.state)
        LIMIT 1), 'none')
$$;
-- +goose StatementEnd

DROP FUNCTION message_forward_state(text);

-- +goose Down
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
        WHERE (r.kind = 'inbox_message' AND r.args @> jsonb_build_object('sid', sid))
           OR (r.kind = 'inbox_messages' AND r.args @> jsonb_build_object('sids', jsonb_build_array(sid)))
        ORDER BY r.id DESC
        LIMIT 1
    ) j ON true
$$;
-- +goose StatementEnd
DROP FUNCTION message_delivery_state(bigint, text);
DROP TABLE deliveries;
