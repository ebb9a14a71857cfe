-- +goose Up
-- The one definition of "this message goes to this destination", for every
-- statement that fans a stored message out (docs/destinations.md, "Match
-- rules"): a rule left empty matches anything, and every rule must match.
-- routing.Rules.Match says the same in Go; a test holds the two equal.
-- Never NULL: a message without a Messaging Service matches only a
-- destination with no service rule.
-- +goose StatementBegin
CREATE FUNCTION destination_matches(d destinations, account_sid text, to_address text, messaging_service_sid text, event text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (cardinality(d.accounts) = 0 OR coalesce(account_sid = ANY(d.accounts), false))
       AND (cardinality(d.to_numbers) = 0 OR coalesce(to_address = ANY(d.to_numbers), false))
       AND (cardinality(d.services) = 0 OR coalesce(messaging_service_sid = ANY(d.services), false))
       AND (cardinality(d.events) = 0 OR coalesce(event = ANY(d.events), false))
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION destination_matches(destinations, text, text, text, text);
