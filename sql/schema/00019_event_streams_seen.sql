-- +goose Up
-- When an Event Streams batch last arrived, in any process: a webhook's
-- repeat adds its parameters to a message an event stored first
-- (docs/event-streams.md), which costs a statement, so it is sent only
-- while a sink is in use, that is, while this says a batch arrived in the
-- last day. One row; a process writes it at most once a minute.
CREATE TABLE event_streams_seen (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_batch_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE event_streams_seen;
