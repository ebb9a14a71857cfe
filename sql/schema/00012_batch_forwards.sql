-- +goose Up
-- A group-committed batch of new messages gets one forward job (kind
-- inbox_messages, args {"sids": […]}) rather than one each: River's insert,
-- fetch and completion of a job, each writing every index of river_job, were
-- most of what forwarding cost the database (docs/benchmarks.md). A message
-- of a batch whose forward fails gets a job of its own (inbox_message), as
-- a message stored alone has. Its forward state is its latest job's, of
-- either kind.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION message_forward_state(sid text) RETURNS text
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION message_forward_state(sid text) RETURNS text
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
