package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"inbox/internal/pgdial"
)

// defaultDatabaseURL is used when neither DATABASE_URL nor any PG* variable
// is set: the local server the README's scripts create the database on.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/inbox?sslmode=disable"

// pgVars are the libpq variables pgx reads when given an empty URL.
var pgVars = []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE", "PGSSLMODE"}

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
		fmt.Fprintln(out, "Flags (each defaults to the environment variable it names):")
		fs.PrintDefaults()
		b.printSecrets(out)
	}
	return b
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

// minRetention keeps retention from deleting what is still being worked
// on: Twilio retries within minutes, and a failing forward retries for days.
const minRetention = 24 * time.Hour

// Retention binds a duration that may also be given in days ("90d"), and
// must be at least minRetention; unset is 0, off.
func (b *binder) Retention(p *time.Duration, name, env, text string) {
	b.fs.Func(name, withEnv(text, env), func(v string) error {
		d, err := parseRetention(v)
		*p = d
		return err
	})
	if v := b.env(env, ""); v != "" {
		d, err := parseRetention(v)
		if err != nil {
			b.fail(fmt.Errorf("invalid %s: %w", env, err))
		}
		*p = d
	}
}

func parseRetention(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: want a number of days such as 90d, or a duration such as 36h", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q: want a number of days such as 90d, or a duration such as 36h", v)
		}
	}
	if d < minRetention {
		return 0, fmt.Errorf("%q: retention must be at least 1d, or a redelivery or a retrying forward could outlive its message", v)
	}
	return d, nil
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

// truncateArg shortens an argument quoted back in an error.
func truncateArg(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// databaseURL is a flag.Value whose printed form hides the password, so
// that `inbox serve -h` and log lines never show it.
type databaseURL struct{ s string }

func (u *databaseURL) Set(s string) error { u.s = s; return nil }
func (u *databaseURL) String() string     { return redactURL(u.s) }

// redactURL returns a connection string with its password replaced by
// "xxxxx", in URL or keyword/value form.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	fields := strings.Fields(s)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

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
	c.databaseURL.s = defaultDBURL(b.getenv)
	b.fs.Var(&c.databaseURL, "database-url", "PostgreSQL `URL` (env DATABASE_URL, else the PG* variables); pool settings go in it")
	b.String(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	b.String(&c.logFormat, "log-format", "LOG_FORMAT", "auto", "auto (coloured text on a terminal, else JSON), text or json")
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

// setup builds the logger and the validated pool configuration every
// database subcommand starts from, without connecting.
func (c *commonConfig) setup(stderr io.Writer) (*slog.Logger, *pgxpool.Config, error) {
	logger, err := c.logger(stderr)
	if err != nil {
		return nil, nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(c.databaseURL.s)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid DATABASE_URL: %w", err)
	}
	applyNetworkDefaults(poolCfg, connParams(c.databaseURL.s, c.getenv))
	return logger, poolCfg, nil
}

// Defaults for what the URL does not set, so that a database that vanishes
// from the network (no reset, no answer) costs seconds, not minutes, once it
// is back: without them, connection attempts made during the outage hung
// for the kernel's TCP timeout, held pool slots, and kept the service
// answering 503 for 16 s after the network healed.
const (
	// defaultConnectTimeout bounds dialing, TLS and authentication
	// (connect_timeout, in seconds, in the URL).
	defaultConnectTimeout = 2 * time.Second
	// defaultPingTimeout bounds the liveness ping pgxpool sends on a
	// connection that sat idle for a second before handing it out
	// (pool_ping_timeout); a dead one is dropped and the next tried.
	defaultPingTimeout = time.Second
)

// keepAlive finds a dead idle connection in about 30 s (Go's default is
// about 2.5 min); pgx has no URL setting for it.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

func applyNetworkDefaults(cfg *pgxpool.Config, set map[string]bool) {
	if !set["connect_timeout"] {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if !set["pool_ping_timeout"] {
		cfg.PingTimeout = defaultPingTimeout
	}
	cfg.ConnConfig.DialFunc = pgdial.New(cfg.ConnConfig.ConnectTimeout, keepAlive)
}

// connParams returns which settings a connection string names, in URL
// (postgres://…?k=v) or keyword/value (k=v k2='v 2') form, and which the
// libpq environment sets; values are not needed, only presence.
func connParams(s string, getenv func(string) string) map[string]bool {
	set := map[string]bool{}
	if getenv("PGCONNECT_TIMEOUT") != "" {
		set["connect_timeout"] = true
	}
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		for k := range u.Query() {
			set[k] = true
		}
		return set
	}
	for rest := strings.TrimSpace(s); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		set[strings.TrimSpace(key)] = true
		after = strings.TrimLeft(after, " \t\n")
		if strings.HasPrefix(after, "'") { // quoted: up to the next unescaped quote
			i := 1
			for i < len(after) && after[i] != '\'' {
				if after[i] == '\\' {
					i++
				}
				i++
			}
			after = after[min(i+1, len(after)):]
		} else if i := strings.IndexAny(after, " \t\n"); i >= 0 {
			after = after[i:]
		} else {
			after = ""
		}
		rest = strings.TrimSpace(after)
	}
	return set
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
