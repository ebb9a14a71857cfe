-- River's job table, as River's migrations (run by sql/schema/00005) make
-- it, for sqlc's type checking only: the queries that insert a message's job
-- in the statement that stores the message name it. Only the columns those
-- queries use are here; the admin API reads a few more. `sqlc vet` checks the queries against the real,
-- migrated table, and process's tests check that a job inserted this way is
-- the job River's own InsertTx makes.
CREATE TYPE river_job_state AS ENUM ('available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled');

CREATE TABLE river_job (
    id           bigserial PRIMARY KEY,
    state        river_job_state NOT NULL DEFAULT 'available',
    max_attempts smallint NOT NULL DEFAULT 25,
    args         jsonb NOT NULL,
    kind         text NOT NULL,
    attempt      smallint NOT NULL DEFAULT 0,
    errors       jsonb[],
    created_at   timestamptz NOT NULL DEFAULT now(),
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempted_at timestamptz,
    finalized_at timestamptz
);
