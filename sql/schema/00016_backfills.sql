-- +goose Up
-- A backfill hands a destination the stored inbound messages it matches
-- since a time (docs/destinations.md, "Backfill"): adding a destination
-- never replays history by itself. Each row records one run's progress:
-- read counts the messages looked at, queued the deliveries it created
-- (a message already owed to the destination has its delivery, so it is
-- not queued again: each message once per destination however often a
-- backfill is asked for).
CREATE TABLE backfills (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination  text NOT NULL,
    since        timestamptz NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    read         bigint NOT NULL DEFAULT 0,
    queued       bigint NOT NULL DEFAULT 0,
    finished_at  timestamptz,
    error        text
);

CREATE INDEX backfills_destination_id_idx ON backfills (destination, id DESC);

-- +goose Down
DROP TABLE backfills;
