-- name: GetSchemaVersion :one
-- The latest migration applied, as goose's provider reads it: what the
-- readiness check compares with the version this binary needs. goose's
-- table holds one row per migration, so a scan of it is a few rows.
-- @sqlc-vet-disable no-seq-scan
SELECT COALESCE(max(version_id), 0)::bigint AS version
FROM goose_db_version;

-- name: OwnsJobTable :one
-- Whether the current role owns river_job (or is a member of its owner, as
-- a superuser is): River's reindexer needs that.
SELECT pg_has_role(current_user, c.relowner, 'USAGE')::boolean AS owns
FROM pg_catalog.pg_class c
WHERE c.oid = 'river_job'::regclass;
