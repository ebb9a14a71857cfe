package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"inbox/sql/schema"
)

var migrateCommands = []string{"up", "down", "status", "version", "redo", "reset"}

// runMigrate applies or inspects the embedded goose migrations. Every command
// that changes the schema holds goose's session advisory lock, so replicas
// that all migrate at start do so one at a time.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	b := newBinder("migrate", getenv, stdout, stderr)
	fs := b.fs
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: inbox migrate up|down|status|version|redo|reset [flags]\n\n"+
			"  up       apply every pending migration\n"+
			"  down     roll back the latest migration\n"+
			"  redo     roll back the latest migration and apply it again\n"+
			"  reset    roll back every migration\n"+
			"  status   list migrations and whether each is applied\n"+
			"  version  print the version the database is at\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var cfg commonConfig
	cfg.bind(b)
	// Accept flags before or after the command word.
	if err := b.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("migrate: no command given")
	}
	command := fs.Arg(0)
	if !slices.Contains(migrateCommands, command) {
		return fmt.Errorf("migrate: unknown command %q: want one of %s", command, strings.Join(migrateCommands, ", "))
	}
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("migrate %s: unexpected arguments %q", command, fs.Args())
	}

	logger, poolCfg, err := cfg.setup(stderr, 0)
	if err != nil {
		return err
	}
	db := stdlib.OpenDB(*poolCfg.ConnConfig)
	p, err := schema.NewProvider(db, logger)
	if err != nil {
		db.Close()
		return err
	}
	defer p.Close() // closes db

	if err := migrate(ctx, p, command, stdout); err != nil {
		return fmt.Errorf("migrate %s: %w%s", command, err, notOwnerHint(ctx, db, err))
	}
	return nil
}

// notOwnerHint names, after a migration refused for want of privilege
// (SQLSTATE 42501), the role connected and the one that owns the schema,
// which migrations must run as (docs/deploy.md); "" otherwise.
func notOwnerHint(ctx context.Context, db *sql.DB, err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "42501" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var user, owner string
	if db.QueryRowContext(ctx, `SELECT current_user, coalesce((SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass('messages')), '')`).
		Scan(&user, &owner) != nil || owner == "" || owner == user {
		return ""
	}
	return fmt.Sprintf(": the role %q may not change the schema; run migrations as its owner, %q (docs/deploy.md)", user, owner)
}

func migrate(ctx context.Context, p *goose.Provider, command string, stdout io.Writer) error {
	switch command {
	case "up":
		results, err := p.Up(ctx)
		printResults(stdout, results)
		if err == nil && len(results) == 0 {
			fmt.Fprintln(stdout, "no pending migrations")
		}
		return err
	case "down":
		r, err := p.Down(ctx)
		return reportOne(stdout, r, err, "no migration to roll back")
	case "redo":
		r, err := p.Down(ctx)
		if err := reportOne(stdout, r, err, ""); err != nil {
			return err
		}
		r, err = p.UpByOne(ctx)
		return reportOne(stdout, r, err, "")
	case "reset":
		results, err := p.DownTo(ctx, 0)
		printResults(stdout, results)
		return err
	case "status":
		return printStatus(ctx, p, stdout)
	case "version":
		v, err := p.GetDBVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
		return nil
	default:
		return fmt.Errorf("unknown command %q", command)
	}
}

func reportOne(stdout io.Writer, r *goose.MigrationResult, err error, nothing string) error {
	if errors.Is(err, goose.ErrNoNextVersion) && nothing != "" {
		fmt.Fprintln(stdout, nothing)
		return nil
	}
	if r != nil {
		printResults(stdout, []*goose.MigrationResult{r})
	}
	return err
}

func printResults(stdout io.Writer, results []*goose.MigrationResult) {
	for _, r := range results {
		if r.Error != nil {
			continue // the returned error says what failed
		}
		fmt.Fprintf(stdout, "%-4s %05d %s (%s)\n", r.Direction, r.Source.Version, path.Base(r.Source.Path), r.Duration.Round(100_000))
	}
}

func printStatus(ctx context.Context, p *goose.Provider, stdout io.Writer) error {
	statuses, err := p.Status(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tMIGRATION")
	for _, s := range statuses {
		applied := "-"
		if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(tw, "%05d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, path.Base(s.Source.Path))
	}
	return tw.Flush()
}
