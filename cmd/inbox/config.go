package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// defaultDatabaseURL is used when neither DATABASE_URL nor any PG* variable
// is set: the local server the README's scripts create the database on.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/inbox?sslmode=disable"

// pgVars are the libpq variables pgx reads when given an empty URL.
var pgVars = []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE", "PGSSLMODE"}

// commonConfig is what every subcommand that touches the database needs.
type commonConfig struct {
	databaseURL string
	logLevel    string
	logFormat   string
}

// bind registers the common flags on fs, defaulting each to its environment
// variable.
func (c *commonConfig) bind(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.databaseURL, "database-url", defaultDBURL(getenv),
		"PostgreSQL URL (env DATABASE_URL; else the PG* variables; else "+defaultDatabaseURL+")")
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", envOr(getenv, "LOG_FORMAT", "auto"),
		"auto (coloured text on a terminal, else JSON), text or json (env LOG_FORMAT)")
}

func defaultDBURL(getenv func(string) string) string {
	if u := getenv("DATABASE_URL"); u != "" {
		return u
	}
	for _, v := range pgVars {
		if getenv(v) != "" {
			return "" // pgx reads the PG* variables itself from an empty URL.
		}
	}
	return defaultDatabaseURL
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// poolConfig validates the database URL without connecting.
func (c *commonConfig) poolConfig() (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(c.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid DATABASE_URL: %w", err)
	}
	return cfg, nil
}

// logger builds the process's logger: tint's coloured text when stderr is a
// terminal (or when asked), JSON otherwise, which is what log collectors want.
func (c *commonConfig) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("invalid LOG_LEVEL %q: want debug, info, warn or error", c.logLevel)
	}
	text := false
	switch strings.ToLower(c.logFormat) {
	case "auto":
		f, ok := stderr.(*os.File)
		text = ok && term.IsTerminal(int(f.Fd()))
	case "text":
		text = true
	case "json":
	default:
		return nil, fmt.Errorf("invalid LOG_FORMAT %q: want auto, text or json", c.logFormat)
	}
	if text {
		f, isFile := stderr.(*os.File)
		noColor := !isFile || !term.IsTerminal(int(f.Fd()))
		return slog.New(tint.NewTextHandler(stderr, &tint.Options{Level: level, TimeFormat: "15:04:05.000", NoColor: noColor})), nil
	}
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}
