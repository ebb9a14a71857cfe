-- River's job table, as River's migrations (run by sql/schema/00005) make
-- it, for sqlc's type checking only: the queries that insert a message's job
-- in the statement that stores the message name it. Only the columns those
-- queries use are here; the admin API and the console read a few more. `sqlc vet` checks the queries against the real,
-- migrated table, and process's tests check that a job inserted this way is
-- the job River's own InsertTx makes.
CREATE TYPE river_job_state AS ENUM ('available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled');

CREATE TABLE river_job (
    id           bigserial PRIMARY KEY,
    state        river_job_state NOT NULL DEFAULT 'available',
    max_attempts smallint NOT NULL DEFAULT 25,
    args         jsonb NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    kind         text NOT NULL,
    queue        text NOT NULL DEFAULT 'default',
    priority     smallint NOT NULL DEFAULT 1,
    attempt      smallint NOT NULL DEFAULT 0,
    errors       jsonb[],
    created_at   timestamptz NOT NULL DEFAULT now(),
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempted_at timestamptz,
    finalized_at timestamptz,
    unique_key   bytea,
    unique_states bit(8)
);

-- River's unique jobs: at most one job per unique_key in the states its
-- unique_states bitmask names (bit 7 available ... bit 0 scheduled).
CREATE FUNCTION river_job_state_in_bitmask(bitmask bit(8), state river_job_state) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;

CREATE UNIQUE INDEX river_job_unique_idx ON river_job (unique_key)
    WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL AND river_job_state_in_bitmask(unique_states, state);
