// Package layout holds no code: its test checks the import graph against
// the layout the project keeps (docs/development.md): sqlc's package db is
// reachable from the store alone, pgx only from the store, internal
// helpers and River's driver in process, and every package imports only
// the layers below it.
package layout
