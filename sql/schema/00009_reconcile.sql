-- +goose Up
-- Reconciliation with Twilio's REST API (docs/operating.md,
-- "Reconciliation"): a minute's outage used to lose that minute's messages
-- for good, since Twilio's webhook retries all fit in 15 s. Each account's
-- sweep keeps here how far back everything has been listed (watermark) and,
-- while a sweep is under way, where it resumes, so a sweep cut short by an
-- error, a 429 or a restart goes on from where it stood.
CREATE TABLE reconcile_sweeps (
    account_sid     text PRIMARY KEY CHECK (account_sid ~ '^AC[0-9a-f]{32}$'),
    -- Every message sent before this has been listed and stored.
    watermark       timestamptz,
    -- The sweep under way: its window and the page it resumes at; NULL
    -- when none is.
    sweep_from      timestamptz,
    sweep_to        timestamptz,
    next_page_uri   text,
    listed          bigint NOT NULL DEFAULT 0,
    found           bigint NOT NULL DEFAULT 0,
    last_sweep_at   timestamptz,
    last_success_at timestamptz,
    last_error      text
);

-- Outbound messages whose status callbacks may have been lost: a sweep
-- asks Twilio for the status of those that are not final and have not
-- moved for a while, oldest check first. The column says when it last
-- asked, so every such message takes its turn.
ALTER TABLE messages ADD COLUMN status_checked_at timestamptz;

-- The message a found message is forwarded as says where it came from.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION message_payload(m messages) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE RETURN json_build_object(
    'sid', m.metadata->>'message_sid',
    'direction', m.direction,
    'account_sid', m.account_sid,
    'messaging_service_sid', m.messaging_service_sid,
    'from', m.from_address,
    'to', m.to_address,
    'body', m.body,
    'num_media', m.num_media,
    'num_segments', m.num_segments,
    'media', m.media,
    'status', m.status,
    'error_code', m.error_code,
    'received_at', m.received_at,
    'source', COALESCE(m.metadata->>'source', 'webhook'),
    'params', m.metadata->'params'
);
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION message_payload(m messages) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE RETURN json_build_object(
    'sid', m.metadata->>'message_sid',
    'direction', m.direction,
    'account_sid', m.account_sid,
    'messaging_service_sid', m.messaging_service_sid,
    'from', m.from_address,
    'to', m.to_address,
    'body', m.body,
    'num_media', m.num_media,
    'num_segments', m.num_segments,
    'media', m.media,
    'status', m.status,
    'error_code', m.error_code,
    'received_at', m.received_at,
    'params', m.metadata->'params'
);
-- +goose StatementEnd
ALTER TABLE messages DROP COLUMN status_checked_at;
DROP TABLE reconcile_sweeps;
