-- +goose Up
-- The key that signs media's download links (docs/media.md): one for
-- every replica, made here from the server's strong random source
-- (gen_random_uuid, 122 random bits each), never shown. Replacing it ends
-- every link given out.
CREATE TABLE media_link_key (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    key bytea NOT NULL CHECK (length(key) = 32)
);
INSERT INTO media_link_key (key)
VALUES (sha256(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')));

-- +goose Down
DROP TABLE media_link_key;
