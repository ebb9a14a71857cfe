-- +goose Up
-- Before a unique index on message_sid can exist, the duplicates that the
-- check-then-act version stored must go. The earliest copy of each sid (by
-- received_at, then id) is kept, because it is the one any side effect ran
-- for. A later copy that says something different (another body, status or
-- parameter) is moved to message_duplicates, so nothing Twilio sent is
-- silently dropped; a later copy identical to the kept one but for its id and
-- arrival time carries no information and is deleted.
CREATE TABLE message_duplicates (
    id                    bigint PRIMARY KEY,
    duplicate_of          bigint NOT NULL,
    direction             text NOT NULL,
    account_sid           text NOT NULL,
    messaging_service_sid text,
    from_address          text NOT NULL,
    to_address            text NOT NULL,
    body                  text NOT NULL,
    num_media             integer NOT NULL,
    num_segments          integer NOT NULL,
    media                 jsonb NOT NULL,
    status                text NOT NULL,
    received_at           timestamptz NOT NULL,
    metadata              jsonb NOT NULL,
    archived_at           timestamptz NOT NULL DEFAULT now()
);

-- A function, not a bare statement, because the next migration runs it again
-- right before building the unique index: replicas still running the old code
-- may have stored new duplicates in between.
-- +goose StatementBegin
CREATE FUNCTION fold_duplicate_messages() RETURNS bigint
LANGUAGE sql AS $$
    WITH ranked AS (
        SELECT id,
               first_value(id) OVER (
                   PARTITION BY metadata->>'message_sid'
                   ORDER BY received_at, id
               ) AS keeper_id
        FROM messages
    ),
    later AS (
        SELECT m.*, r.keeper_id
        FROM messages m
        JOIN ranked r ON r.id = m.id
        WHERE r.id <> r.keeper_id
    ),
    archived AS (
        INSERT INTO message_duplicates (
            id, duplicate_of, direction, account_sid, messaging_service_sid,
            from_address, to_address, body, num_media, num_segments, media,
            status, received_at, metadata
        )
        SELECT l.id, l.keeper_id, l.direction, l.account_sid, l.messaging_service_sid,
               l.from_address, l.to_address, l.body, l.num_media, l.num_segments, l.media,
               l.status, l.received_at, l.metadata
        FROM later l
        JOIN messages k ON k.id = l.keeper_id
        WHERE (l.direction, l.account_sid, l.messaging_service_sid, l.from_address,
               l.to_address, l.body, l.num_media, l.num_segments, l.media, l.status,
               l.metadata)
              IS DISTINCT FROM
              (k.direction, k.account_sid, k.messaging_service_sid, k.from_address,
               k.to_address, k.body, k.num_media, k.num_segments, k.media, k.status,
               k.metadata)
        RETURNING id
    ),
    deleted AS (
        DELETE FROM messages m
        USING later l
        WHERE m.id = l.id
        RETURNING m.id
    )
    SELECT count(*) FROM deleted;
$$;
-- +goose StatementEnd

SELECT fold_duplicate_messages();

-- +goose Down
-- Archived copies go back where they came from; identical copies that were
-- deleted carried nothing and are not recreated.
INSERT INTO messages (
    id, direction, account_sid, messaging_service_sid, from_address, to_address,
    body, num_media, num_segments, media, status, received_at, metadata
)
OVERRIDING SYSTEM VALUE
SELECT id, direction, account_sid, messaging_service_sid, from_address, to_address,
       body, num_media, num_segments, media, status, received_at, metadata
FROM message_duplicates;
DROP FUNCTION fold_duplicate_messages();
DROP TABLE message_duplicates;
