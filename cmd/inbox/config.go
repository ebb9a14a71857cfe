package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"inbox/internal/dbconfig"
	"inbox/retention"
)

// binder is the one way every subcommand binds its settings: each flag
// defaults to its environment variable, and its usage names that variable.
// An environment value that does not parse is kept as the first error, for
// the subcommand to return before it does anything.
type binder struct {
	fs      *flag.FlagSet
	getenv  func(string) string
	err     error
	stdout  io.Writer
	secrets []secret // settings only the environment sets, for the help
	// Usage is printed before the flags by -h: the subcommand's synopsis.
	Usage string
}

// secret is a setting with no flag, and what it means.
type secret struct{ env, text string }

func newBinder(name string, getenv func(string) string, stdout, stderr io.Writer) *binder {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := &binder{fs: fs, getenv: getenv, stdout: stdout}
	fs.Usage = func() {
		out := fs.Output()
		if b.Usage != "" {
			fmt.Fprint(out, b.Usage, "\n")
		} else {
			fmt.Fprintf(out, "Usage: inbox %s [flags]\n\n", name)
		}
		fmt.Fprintln(out, "Flags (one that names an environment variable defaults to it, then to the default shown):")
		fs.PrintDefaults()
		b.printSecrets(out)
	}
	return b
}

// command is a subcommand's settings: it binds its flags and checks them.
type command interface {
	bind(*binder)
	validate() error
}

// parseCommand binds cfg's flags, parses args, refuses stray arguments and
// validates, in the order every long-running subcommand needs them.
func parseCommand(name string, cfg command, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	b := newBinder(name, getenv, stdout, stderr)
	cfg.bind(b)
	if err := b.Parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 0 {
		return fmt.Errorf("%s: unexpected arguments %q", name, b.fs.Args())
	}
	return cfg.validate()
}

// printSecrets lists the settings that only the environment sets.
func (b *binder) printSecrets(w io.Writer) {
	if len(b.secrets) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEnvironment only (no flag, which ps and shell history would show):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range b.secrets {
		fmt.Fprintf(tw, "  %s\t%s\n", s.env, s.text)
	}
	tw.Flush()
}

// withEnv appends the variable's name to a flag's description.
func withEnv(text, env string) string {
	if env == "" {
		return text
	}
	return text + " (env " + env + ")"
}

// env returns the variable key, or def when key is "" (a flag with no
// variable) or the variable is unset.
func (b *binder) env(key, def string) string {
	if key == "" {
		return def
	}
	if v := b.getenv(key); v != "" {
		return v
	}
	return def
}

func (b *binder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *binder) String(p *string, name, env, def, text string) {
	b.fs.StringVar(p, name, b.env(env, def), withEnv(text, env))
}

func (b *binder) Duration(p *time.Duration, name, env string, def time.Duration, text string) {
	if v := b.env(env, ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.fail(fmt.Errorf("invalid %s %q: want a positive duration such as 10s", env, v))
		} else {
			def = d
		}
	}
	b.fs.DurationVar(p, name, def, withEnv(text, env))
}

// DurationOrOff binds a positive duration that "off" (or 0) turns off.
func (b *binder) DurationOrOff(p *time.Duration, name, env string, def time.Duration, text string) {
	parse := func(v string) (time.Duration, error) {
		if v == "off" || v == "0" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%q: want a positive duration such as 1m, or off", v)
		}
		return d, nil
	}
	*p = def
	b.fs.Func(name, withEnv(text+fmt.Sprintf(" (default %s)", def), env), func(v string) error {
		d, err := parse(v)
		*p = d
		return err
	})
	if v := b.env(env, ""); v != "" {
		d, err := parse(v)
		if err != nil {
			b.fail(fmt.Errorf("invalid %s: %w", env, err))
		}
		*p = d
	}
}

// Retention binds a retention (retention.ParseRetention): days ("90d") or
// a duration, at least a day; unset is 0, off.
func (b *binder) Retention(p *time.Duration, name, env, text string) {
	b.fs.Func(name, withEnv(text, env), func(v string) error {
		d, err := retention.ParseRetention(v)
		*p = d
		return err
	})
	if v := b.env(env, ""); v != "" {
		d, err := retention.ParseRetention(v)
		if err != nil {
			b.fail(fmt.Errorf("invalid %s: %w", env, err))
		}
		*p = d
	}
}

func (b *binder) Int(p *int, name, env string, def int, text string) {
	if v := b.env(env, ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.fail(fmt.Errorf("invalid %s %q: want a whole number, 0 or more", env, v))
		} else {
			def = n
		}
	}
	b.fs.IntVar(p, name, def, withEnv(text, env))
}

// Bool binds a switch: the environment says true or false (1, 0).
func (b *binder) Bool(p *bool, name, env string, def bool, text string) {
	if v := b.env(env, ""); v != "" {
		t, err := strconv.ParseBool(v)
		if err != nil {
			b.fail(fmt.Errorf("invalid %s %q: want true or false", env, v))
		} else {
			def = t
		}
	}
	b.fs.BoolVar(p, name, def, withEnv(text, env))
}

// Secret binds a setting that has no flag, because a flag would show it in
// ps: only the environment sets it. -h lists it with text.
func (b *binder) Secret(p *string, env, text string) {
	*p = b.getenv(env)
	b.secrets = append(b.secrets, secret{env: env, text: text})
}

// Parse parses args, then reports the first invalid environment value.
// Asked for help (-h), it prints the help to standard output and returns
// flag.ErrHelp, which run treats as success.
func (b *binder) Parse(args []string) error {
	if slices.ContainsFunc(args, isHelp) {
		b.fs.SetOutput(b.stdout)
	}
	if err := b.fs.Parse(args); err != nil {
		return err
	}
	return b.err
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// databaseURL is a flag.Value whose printed form hides the password, so
// that `inbox serve -h` and log lines never show it.
type databaseURL struct{ s string }

func (u *databaseURL) Set(s string) error { u.s = s; return nil }
func (u *databaseURL) String() string     { return dbconfig.Redact(u.s) }

// redactURL is dbconfig.Redact, for log lines.
func redactURL(s string) string { return dbconfig.Redact(s) }

// commonConfig is what every subcommand that touches the database needs.
type commonConfig struct {
	getenv      func(string) string
	databaseURL databaseURL
	logLevel    string
	logFormat   string
}

// bind registers the common flags.
func (c *commonConfig) bind(b *binder) {
	c.getenv = b.getenv
	c.databaseURL.s = dbconfig.URL(b.getenv)
	b.fs.Var(&c.databaseURL, "database-url", "PostgreSQL `URL` (env DATABASE_URL, else the PG* variables); pool settings go in it")
	b.String(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	b.String(&c.logFormat, "log-format", "LOG_FORMAT", "auto", "auto (coloured text on a terminal, else JSON), text or json")
}

// setup builds the logger and the validated pool configuration every
// database subcommand starts from, without connecting; maxConns, when not
// 0, is the pool's size unless DATABASE_URL sets pool_max_conns.
func (c *commonConfig) setup(stderr io.Writer, maxConns int32) (*slog.Logger, *pgxpool.Config, error) {
	logger, err := c.logger(stderr)
	if err != nil {
		return nil, nil, err
	}
	poolCfg, err := dbconfig.Pool(c.databaseURL.s, c.getenv, maxConns)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid DATABASE_URL: %w", err)
	}
	return logger, poolCfg, nil
}

// pool opens a pool of its own on DATABASE_URL for one part of a process,
// of exactly maxConns connections whatever the URL's pool_max_conns says
// (that is the webhook's), each with statementTimeout (0: the server's):
// a part that cannot take another's connections, nor hold its own for
// longer than the timeout. The caller closes it.
func (c *commonConfig) pool(ctx context.Context, maxConns int32, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := dbconfig.Pool(c.databaseURL.s, c.getenv, maxConns)
	if err != nil {
		return nil, fmt.Errorf("invalid DATABASE_URL: %w", err)
	}
	cfg.MaxConns = maxConns
	cfg.MinConns = min(cfg.MinConns, maxConns)
	if statementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create database pool: %w", err)
	}
	return pool, nil
}

// open is setup, then the pool (which connects when first used); the
// caller closes it.
func (c *commonConfig) open(ctx context.Context, stderr io.Writer, maxConns int32) (*slog.Logger, *pgxpool.Pool, error) {
	logger, poolCfg, err := c.setup(stderr, maxConns)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create database pool: %w", err)
	}
	return logger, pool, nil
}

// logger builds the process's logger: tint's coloured text when stderr is a
// terminal (or when asked), JSON otherwise, which is what log collectors want.
func (c *commonConfig) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("invalid LOG_LEVEL %q: want debug, info, warn or error", c.logLevel)
	}
	f, isFile := stderr.(*os.File)
	terminal := isFile && term.IsTerminal(int(f.Fd()))
	var text bool
	switch strings.ToLower(c.logFormat) {
	case "auto":
		text = terminal
	case "text":
		text = true
	case "json":
	default:
		return nil, fmt.Errorf("invalid LOG_FORMAT %q: want auto, text or json", c.logFormat)
	}
	if text {
		return slog.New(tint.NewTextHandler(stderr, &tint.Options{Level: level, TimeFormat: "15:04:05.000", NoColor: !terminal})), nil
	}
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}
