-- name: ListTwilioAccounts :many
-- A page of accounts in sid order after the given sid: how a server loads
-- the whole table into memory at start, and the CLI lists it.
SELECT account_sid, primary_token, secondary_token, label, disabled, created_at, updated_at
FROM twilio_accounts
WHERE account_sid > @after::text
ORDER BY account_sid
LIMIT @max_rows::integer;

-- name: GetTwilioAccount :one
SELECT account_sid, primary_token, secondary_token, label, disabled, created_at, updated_at
FROM twilio_accounts
WHERE account_sid = @account_sid::text;

-- name: InsertTwilioAccount :one
-- Adds an account; no row when it exists already. The notification is sent
-- at commit, so a server never reads the account before it is there.
WITH added AS (
    INSERT INTO twilio_accounts (account_sid, primary_token, label)
    VALUES (@account_sid::text, @primary_token::bytea, @label::text)
    ON CONFLICT (account_sid) DO NOTHING
    RETURNING account_sid
)
SELECT (pg_notify('inbox_twilio_accounts', added.account_sid) IS NOT NULL)::boolean AS added FROM added;

-- name: SetTwilioAccountSecondary :one
-- Sets (or, with NULL, clears) the secondary token.
WITH changed AS (
    UPDATE twilio_accounts
    SET secondary_token = sqlc.narg('secondary_token')::bytea, updated_at = now()
    WHERE account_sid = @account_sid::text
    RETURNING account_sid
)
SELECT (pg_notify('inbox_twilio_accounts', changed.account_sid) IS NOT NULL)::boolean AS changed FROM changed;

-- name: PromoteTwilioAccountSecondary :one
-- Rotation's last step: the secondary becomes the primary, and the old
-- primary stops verifying. The new primary is sealed again by the caller,
-- because a sealed value is bound to its slot.
WITH changed AS (
    UPDATE twilio_accounts
    SET primary_token = @primary_token::bytea, secondary_token = NULL, updated_at = now()
    WHERE account_sid = @account_sid::text AND secondary_token IS NOT NULL
    RETURNING account_sid
)
SELECT (pg_notify('inbox_twilio_accounts', changed.account_sid) IS NOT NULL)::boolean AS changed FROM changed;

-- name: ResealTwilioAccount :one
-- Replaces both sealed tokens (after a key rotation), only if they are
-- still what the caller read, so a concurrent change is not overwritten.
WITH changed AS (
    UPDATE twilio_accounts
    SET primary_token = @primary_token::bytea, secondary_token = sqlc.narg('secondary_token')::bytea, updated_at = now()
    WHERE account_sid = @account_sid::text
      AND primary_token = @old_primary_token::bytea
      AND secondary_token IS NOT DISTINCT FROM sqlc.narg('old_secondary_token')::bytea
    RETURNING account_sid
)
SELECT (pg_notify('inbox_twilio_accounts', changed.account_sid) IS NOT NULL)::boolean AS changed FROM changed;

-- name: SetTwilioAccountDisabled :one
WITH changed AS (
    UPDATE twilio_accounts
    SET disabled = @disabled::boolean, updated_at = now()
    WHERE account_sid = @account_sid::text
    RETURNING account_sid
)
SELECT (pg_notify('inbox_twilio_accounts', changed.account_sid) IS NOT NULL)::boolean AS changed FROM changed;

-- name: DeleteTwilioAccount :one
WITH removed AS (
    DELETE FROM twilio_accounts
    WHERE account_sid = @account_sid::text
    RETURNING account_sid
)
SELECT (pg_notify('inbox_twilio_accounts', removed.account_sid) IS NOT NULL)::boolean AS removed FROM removed;

-- name: ListenForAccountChanges :exec
-- Subscribes this connection to the notification every change above sends
-- at commit, with the account sid as its payload. A utility statement:
-- there is no plan to EXPLAIN.
-- @sqlc-vet-disable explain-succeeds no-seq-scan
LISTEN inbox_twilio_accounts;
