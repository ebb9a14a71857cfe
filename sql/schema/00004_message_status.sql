-- +goose Up
-- Delivery status callbacks for the messages teams send through Twilio.
-- Twilio retries them, sends several for one status of a multi-segment
-- message, and does not keep them in order (a `sent` can land after
-- `delivered`), and they carry no timestamp. So every distinct (sid, status)
-- is kept once as an event, and the message's current status is moved only
-- forward, in the database, by message_status_rank.

-- The precedence of a message's statuses; higher wins. undelivered, failed
-- and canceled are terminal: nothing moves a message out of them. A status
-- Twilio adds later ranks 0: it is recorded as an event but never becomes
-- the current status of a row that has one.
-- +goose StatementBegin
CREATE FUNCTION message_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN CASE status
    WHEN 'receiving'           THEN 1
    WHEN 'received'            THEN 2
    WHEN 'accepted'            THEN 10
    WHEN 'scheduled'           THEN 20
    WHEN 'queued'              THEN 30
    WHEN 'sending'             THEN 40
    WHEN 'sent'                THEN 50
    WHEN 'partially_delivered' THEN 60
    WHEN 'delivered'           THEN 70
    WHEN 'read'                THEN 80
    WHEN 'undelivered'         THEN 100
    WHEN 'failed'              THEN 100
    WHEN 'canceled'            THEN 100
    ELSE 0
END;
-- +goose StatementEnd

ALTER TABLE messages ADD COLUMN error_code text;

CREATE TABLE message_status_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_sid text NOT NULL,
    status      text NOT NULL,
    error_code  text,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- Every parameter of the callback that first reported this status.
    params      jsonb NOT NULL,
    CONSTRAINT message_status_events_sid_status_key UNIQUE (message_sid, status)
);

-- +goose Down
DROP TABLE message_status_events;
ALTER TABLE messages DROP COLUMN error_code;
DROP FUNCTION message_status_rank(text);
