-- +goose Up
-- Every message Twilio tells us about, inbound or outbound. The typed columns
-- are what operators filter and read; metadata keeps every parameter Twilio
-- sent, so a field Twilio adds tomorrow (or a WhatsApp-only one) is never lost.
--
-- This is the table as the first, check-then-act version of the service
-- created it: message_sid is looked up through a plain index, which lets
-- concurrent deliveries store the same message twice. Later migrations fold
-- those duplicates and make the index unique.
CREATE TABLE messages (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    direction             text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    account_sid           text NOT NULL,
    messaging_service_sid text,
    from_address          text NOT NULL,
    to_address            text NOT NULL,
    body                  text NOT NULL DEFAULT '',
    num_media             integer NOT NULL DEFAULT 0 CHECK (num_media >= 0),
    num_segments          integer NOT NULL DEFAULT 1 CHECK (num_segments >= 0),
    -- [{"url": ..., "content_type": ...}] in Twilio's MediaUrlN order; jsonb so
    -- that an insert stays one statement (no child table to keep in step).
    media                 jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(media) = 'array'),
    status                text NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now(),
    metadata              jsonb NOT NULL CHECK (metadata->>'message_sid' IS NOT NULL)
);

CREATE INDEX messages_message_sid_idx ON messages ((metadata->>'message_sid'));

-- Keyset pagination walks (received_at, id) newest first.
CREATE INDEX messages_received_at_id_idx ON messages (received_at, id);

-- +goose Down
DROP TABLE messages;
