package schema

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
)

// RiverVersion is the River schema version this binary's River needs: the
// latest migration of the River release in go.mod. A River upgrade that
// adds migrations fails TestRiverSchemaMatchesLinkedRiver until a new goose
// migration (the next number, like this one) takes the schema there.
const RiverVersion = 8

// riverQueue is migration 00005: River's tables (river_job, river_leader,
// river_queue, ...), so that the job that processes a message can be
// inserted in the transaction that stores it. It runs River's own
// migrations through River's database/sql driver, so River records them in
// river_migration and its client agrees with what is there; goose records
// 00005 once they have all run. Not in one transaction: River's migration 4
// adds an enum value that migration 6 uses, which PostgreSQL refuses within
// one transaction, so River runs each of its migrations in a transaction of
// its own (and a rerun after a failure resumes where River's record ends),
// under goose's session lock like every other migration. Down removes every
// River table, and with them every job.
func riverQueue() *goose.Migration {
	migrate := func(direction rivermigrate.Direction, target int) func(context.Context, *sql.DB) error {
		return func(ctx context.Context, db *sql.DB) error {
			m, err := rivermigrate.New(riverdatabasesql.New(db), nil)
			if err != nil {
				return fmt.Errorf("river migrator: %w", err)
			}
			if _, err := m.Migrate(ctx, direction, &rivermigrate.MigrateOpts{TargetVersion: target}); err != nil {
				return fmt.Errorf("river migrations %s to %d: %w", direction, target, err)
			}
			return nil
		}
	}
	m := goose.NewGoMigration(5,
		&goose.GoFunc{RunDB: migrate(rivermigrate.DirectionUp, RiverVersion), Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: migrate(rivermigrate.DirectionDown, -1), Mode: goose.TransactionDisabled},
	)
	// Embedded migrations are .sql only, so goose cannot find this file to
	// name it; without a name, status lists the migration as ".".
	m.Source = "00005_river_queue.go"
	return m
}
