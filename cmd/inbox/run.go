package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"inbox/internal/buildinfo"
	"inbox/internal/clip"
	"inbox/metrics"
)

const usage = `inbox stores Twilio messaging webhooks exactly once in PostgreSQL.

Usage:
  inbox serve [flags]                  run the webhook server (and, with FORWARD_URL, its workers)
  inbox work [flags]                   run workers only: forward stored messages (no webhook
                                       listener; an admin listener for metrics)
  inbox simulate [flags]               send signed test webhooks to a running server
  inbox migrate up|down|status|version|redo|reset [flags]
  inbox accounts add|set-secondary|rotate|disable|enable|remove|list|reseal [ACCOUNT_SID] [flags]
  inbox destinations add|list|set|pause|resume|remove [NAME] [flags]
  inbox reconcile -since 72h [-account AC…]   list messages on Twilio's API and store those no webhook delivered
  inbox version                        print the build: version, VCS revision, Go version
  inbox help [SUBCOMMAND]               this, or a subcommand's flags and settings

Every subcommand reads its settings from the environment (DATABASE_URL, PG*,
LOG_LEVEL, LOG_FORMAT, ...); flags override them. Run a subcommand with -h
for its flags and the settings only the environment sets.
`

// run is the whole program: main only supplies the process's arguments,
// environment, streams (stdin carries tokens to `inbox accounts`) and a context cancelled on SIGINT/SIGTERM, so tests
// can run any subcommand in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no subcommand given")
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, rest, getenv, stdout, stderr)
	case "work":
		err = runWork(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		err = runSimulate(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, rest, getenv, stdout, stderr)
	case "accounts":
		err = runAccounts(ctx, rest, getenv, stdin, stdout, stderr)
	case "destinations":
		err = runDestinations(ctx, rest, getenv, stdin, stdout, stderr)
	case "reconcile":
		err = runReconcile(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		if len(rest) > 0 {
			return fmt.Errorf("version takes no arguments, got %q", clip.Clip(rest[0]))
		}
		fmt.Fprintln(stdout, buildinfo.Read())
		return nil
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" && !helpFlag(rest[0]) {
			// inbox help serve: serve's own help, as inbox serve -h.
			return run(ctx, []string{rest[0], "-h"}, getenv, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q; subcommands: serve, work, simulate, migrate, accounts, destinations, reconcile, version, help", clip.Clip(cmd))
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// logBuild says at start which build runs, in the log and as
// inbox_build_info.
func logBuild(logger *slog.Logger, m *metrics.Metrics, command string) {
	b := buildinfo.Read()
	m.BuildInfo(b.Version, b.Revision, b.GoVersion)
	logger.Info("starting", "command", command, "version", b.Version, "revision", b.Revision, "go", b.GoVersion)
}

// helpFlag reports whether arg asks for help.
func helpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}
