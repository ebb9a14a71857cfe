-- +goose Up
-- Destinations that are message brokers (docs/destinations.md, "Brokers"):
-- a JetStream subject (kind nats) or a RabbitMQ exchange and routing key
-- (kind amqp), beside the URL of the broker, sealed as an app's URL is
-- (it carries the broker's credentials). A NATS credentials file, when
-- given, is sealed too. Which target a row has follows from its kind, so
-- a row can never be half of one and half of the other.
ALTER TABLE destinations DROP CONSTRAINT destinations_kind_check;
ALTER TABLE destinations ADD CONSTRAINT destinations_kind_check CHECK (kind IN ('http', 'nats', 'amqp'));
ALTER TABLE destinations
    ADD COLUMN subject      text CHECK (subject <> ''),
    ADD COLUMN exchange     text CHECK (exchange <> ''),
    ADD COLUMN routing_key  text NOT NULL DEFAULT '',
    ADD COLUMN creds_sealed bytea;
ALTER TABLE destinations ADD CONSTRAINT destinations_target_check CHECK (
    (kind = 'nats') = (subject IS NOT NULL)
    AND (kind = 'amqp') = (exchange IS NOT NULL)
    AND (kind = 'nats' OR creds_sealed IS NULL)
);

-- +goose Down
DELETE FROM destinations WHERE kind <> 'http';
ALTER TABLE destinations DROP CONSTRAINT destinations_target_check;
ALTER TABLE destinations DROP COLUMN subject, DROP COLUMN exchange, DROP COLUMN routing_key, DROP COLUMN creds_sealed;
ALTER TABLE destinations DROP CONSTRAINT destinations_kind_check;
ALTER TABLE destinations ADD CONSTRAINT destinations_kind_check CHECK (kind IN ('http'));
