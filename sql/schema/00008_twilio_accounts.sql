-- +goose Up
-- Twilio signs each webhook with the auth token of the account that owns the
-- number, so a deployment serving many accounts (subaccounts, regions) keeps
-- a token per account. Tokens are stored as keyring values: a format byte,
-- then either the token in the clear (only when the operator chose that) or
-- AES-256-GCM ciphertext bound to the account sid and the slot, so the table
-- alone never shows a token. Every change notifies inbox_twilio_accounts with
-- the sid, so running servers refresh that account within milliseconds.
CREATE TABLE twilio_accounts (
    account_sid     text PRIMARY KEY CHECK (account_sid ~ '^AC[0-9a-f]{32}$'),
    primary_token   bytea NOT NULL,
    secondary_token bytea,
    label           text NOT NULL DEFAULT '',
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE twilio_accounts;
