-- +goose Up
-- Where stored messages go (docs/destinations.md): each app the team runs
-- is a destination with its own URL, secret, match rules and controls. The
-- URL (which may carry credentials, as many apps protect their webhooks)
-- and the Standard Webhooks secret are keyring values, sealed as Twilio
-- tokens are and bound to the destination's name and slot; url_shown is
-- the URL with any credentials replaced, the only form ever displayed.
--
-- A rule left empty matches anything; a message goes to every destination
-- whose rules all match. name is also the River queue of its deliveries,
-- so it has River's queue-name shape, and destinations are few by design
-- (the store refuses a 101st): each one is a queue, a metric label and a
-- console row.
CREATE TABLE destinations (
    id            smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    kind          text NOT NULL DEFAULT 'http' CHECK (kind IN ('http')),
    url_sealed    bytea NOT NULL,
    url_shown     text NOT NULL,
    secret_sealed bytea NOT NULL,
    accounts      text[] NOT NULL DEFAULT '{}',
    to_numbers    text[] NOT NULL DEFAULT '{}',
    services      text[] NOT NULL DEFAULT '{}',
    events        text[] NOT NULL DEFAULT '{}' CHECK (events <@ ARRAY['inbound', 'status']),
    -- Deliveries a second across every worker; NULL: unlimited.
    rate          double precision CHECK (rate IS NULL OR rate > 0),
    next_slot_at  timestamptz NOT NULL DEFAULT now(),
    paused_reason text CHECK (paused_reason IN ('operator', 'breaker')),
    paused_detail text,
    paused_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE destinations;
