-- name: GetSchemaVersion :one
-- The latest migration applied, as goose's provider reads it: what the
-- readiness check compares with the version this binary needs. goose's
-- table holds one row per migration, so a scan of it is a few rows.
-- @sqlc-vet-disable no-seq-scan
SELECT COALESCE(max(version_id), 0)::bigint AS version
FROM goose_db_version;
