-- +goose Up
-- Media kept (docs/media.md): every medium a message carries is fetched
-- once from Twilio's API and its bytes stored here, so that apps read it
-- without Twilio's credentials and it outlives its deletion at Twilio.
--
-- A row per medium, made with its message (the trigger below, in the
-- statement that stores the message, whatever path it came by: webhook,
-- Event Streams, a sweep, or a later enrichment that gave an event-stored
-- message its media URLs), with the job that fetches it: so a medium is
-- owed exactly when its message exists, and survives a crash. Deleting a
-- message (retention) deletes its media.
CREATE TABLE media (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id        bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- N of MediaUrlN.
    position          smallint NOT NULL CHECK (position >= 0),
    -- Twilio's MediaUrlN and MediaContentTypeN, as the message carried them.
    url               text NOT NULL,
    announced_type    text NOT NULL DEFAULT '',
    -- fetching: owed; kept: its bytes are in media_chunks; failed: given
    -- up after repeated failures (reason says the last); refused: never
    -- fetched, its URL is not a medium on Twilio's API (reason says why).
    state             text NOT NULL DEFAULT 'fetching' CHECK (state IN ('fetching', 'kept', 'failed', 'refused')),
    reason            text,
    attempts          integer NOT NULL DEFAULT 0,
    content_type      text,
    size              bigint CHECK (size >= 0),
    sha256            bytea CHECK (length(sha256) = 32),
    kept_at           timestamptz,
    -- Set once deleted at Twilio (MEDIA_DELETE_AT_TWILIO), never before
    -- it was kept.
    deleted_at_twilio timestamptz CHECK (deleted_at_twilio IS NULL OR state = 'kept'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, position),
    CHECK (state <> 'kept' OR (content_type IS NOT NULL AND size IS NOT NULL AND sha256 IS NOT NULL AND kept_at IS NOT NULL))
);

-- The media still owed, oldest first: what the metrics read.
CREATE INDEX media_fetching_idx ON media (created_at) WHERE state = 'fetching';

-- A medium's bytes in pieces of at most 256 KiB, so that neither its
-- fetch nor a range of it ever needs the whole in memory. Media are
-- compressed already: stored as they are, out of line.
CREATE TABLE media_chunks (
    media_id bigint NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    n        integer NOT NULL CHECK (n >= 0),
    data     bytea NOT NULL,
    PRIMARY KEY (media_id, n)
);
ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- +goose StatementBegin
CREATE FUNCTION keep_media() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO media (message_id, position, url, announced_type)
    SELECT NEW.id, (e.ord - 1)::smallint, e.item->>'url', coalesce(e.item->>'content_type', '')
    FROM jsonb_array_elements(NEW.media) WITH ORDINALITY AS e(item, ord)
    WHERE coalesce(e.item->>'url', '') <> ''
    ON CONFLICT (message_id, position) DO NOTHING;
    IF FOUND THEN
        -- River's row, as the store's statements insert theirs (job.Media).
        INSERT INTO river_job (args, kind, max_attempts, queue)
        VALUES (jsonb_build_object('message_id', NEW.id), 'inbox_media', 25, 'media');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER messages_keep_media AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.direction = 'inbound' AND NEW.media <> '[]'::jsonb) EXECUTE FUNCTION keep_media();
-- An Event Streams event stores a message without its media URLs (its
-- schema has none); its webhook or a sweep gives them later.
CREATE TRIGGER messages_keep_media_later AFTER UPDATE OF media ON messages
    FOR EACH ROW WHEN (NEW.direction = 'inbound' AND OLD.media = '[]'::jsonb AND NEW.media <> '[]'::jsonb) EXECUTE FUNCTION keep_media();

-- +goose Down
DROP TRIGGER messages_keep_media_later ON messages;
DROP TRIGGER messages_keep_media ON messages;
DROP FUNCTION keep_media();
DROP TABLE media_chunks;
DROP TABLE media;
