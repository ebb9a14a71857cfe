-- +goose Up
-- The console's overview counts what happened each minute: messages
-- received by source, duplicates dropped, refusals by reason, status
-- callbacks, deliveries by destination and outcome, media kept and failed.
-- Each process adds its counts here every few seconds (package tally), one
-- statement for everything it saw, so the figures survive restarts and sum
-- across replicas, and no ingest transaction waits on a shared row: the
-- overview reads at most a row per minute, series and label, however many
-- messages there were.
CREATE TABLE tallies (
    minute timestamptz NOT NULL CHECK (minute = date_trunc('minute', minute)),
    -- received, duplicate, refused, status, delivered, retrying, failed,
    -- lag_ms, media_kept, media_failed.
    series text NOT NULL CHECK (series ~ '^[a-z_]{1,40}$'),
    -- The source, the reason, the destination: at most a short word.
    label  text NOT NULL DEFAULT '' CHECK (length(label) <= 100),
    n      bigint NOT NULL,
    PRIMARY KEY (minute, series, label)
);

-- The duplicate deliveries dropped for each message, by the way they came
-- (webhook, event-stream): what the product does, shown in its story.
CREATE TABLE duplicate_deliveries (
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    source     text NOT NULL CHECK (length(source) <= 40),
    n          bigint NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (message_id, source)
);

-- +goose Down
DROP TABLE duplicate_deliveries;
DROP TABLE tallies;
