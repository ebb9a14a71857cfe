-- goose's record of the migrations applied, as goose makes it, for sqlc's
-- type checking only: the readiness check reads the schema version from it.
CREATE TABLE goose_db_version (
    id         serial PRIMARY KEY,
    version_id bigint NOT NULL,
    is_applied boolean NOT NULL,
    tstamp     timestamp NOT NULL DEFAULT now()
);
