// Package dbconfig turns DATABASE_URL into the pool configuration every
// subcommand connects with: the default when nothing is set, network
// defaults for what the URL does not say, and the URL with its password
// hidden, for help and logs.
package dbconfig

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/internal/pgdial"
)

// DefaultURL is used when neither DATABASE_URL nor any PG* variable is
// set: the local server the README's scripts create the database on.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/inbox?sslmode=disable"

// pgVars are the libpq variables pgx reads when given an empty URL.
func pgVars() []string {
	return []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE", "PGSSLMODE"}
}

// URL returns the connection string to use: DATABASE_URL when set; else ""
// (pgx reads the PG* variables itself from an empty URL) when any of them
// is set; else DefaultURL.
func URL(getenv func(string) string) string {
	if u := getenv("DATABASE_URL"); u != "" {
		return u
	}
	for _, v := range pgVars() {
		if getenv(v) != "" {
			return ""
		}
	}
	return DefaultURL
}

// Defaults for what the URL does not set, so that a database that vanishes
// from the network (no reset, no answer) costs seconds, not minutes, once it
// is back: without them, connection attempts made during the outage hung
// for the kernel's TCP timeout, held pool slots, and kept the service
// answering 503 for 16 s after the network healed.
const (
	// DefaultConnectTimeout bounds dialing, TLS and authentication
	// (connect_timeout, in seconds, in the URL).
	DefaultConnectTimeout = 2 * time.Second
	// DefaultPingTimeout bounds the liveness ping pgxpool sends on a
	// connection that sat idle for a second before handing it out
	// (pool_ping_timeout); a dead one is dropped and the next tried.
	DefaultPingTimeout = time.Second
)

// keepAlive finds a dead idle connection in about 30 s (Go's default is
// about 2.5 min); pgx has no URL setting for it.
func keepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}
}

// Pool parses s and applies the network defaults for what it does not set
// (connect_timeout, pool_ping_timeout; PGCONNECT_TIMEOUT counts as set),
// and pgdial's dialer, which bounds the close of a connection that stopped
// answering. maxConns, when not 0, replaces pgx's default pool size unless
// s sets pool_max_conns.
func Pool(s string, getenv func(string) string, maxConns int32) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, err
	}
	set := Params(s, getenv)
	if !set["connect_timeout"] {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if !set["pool_ping_timeout"] {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if maxConns > 0 && !set["pool_max_conns"] {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.DialFunc = pgdial.New(cfg.ConnConfig.ConnectTimeout, keepAlive())
	return cfg, nil
}

// Params returns which settings a connection string names, in URL
// (postgres://…?k=v) or keyword/value (k=v k2='v 2') form, and which the
// libpq environment sets; values are not needed, only presence.
func Params(s string, getenv func(string) string) map[string]bool {
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

// Redact returns a connection string with its password replaced by
// "xxxxx", in URL or keyword/value form.
func Redact(s string) string {
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
