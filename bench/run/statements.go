package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// stmtCost is one statement's cost over a run, from pg_stat_statements.
type stmtCost struct {
	name       string
	calls      int64
	execMS     float64 // total execution time
	buffers    int64   // shared blocks hit and read
	walBytes   float64
	rowsPerRun float64 // rows a call returned or changed, on average
}

// statements measures what each statement costs PostgreSQL during a run,
// where the server loads pg_stat_statements (scripts/bench starts its own
// that way; a shared server is left alone): reset before the run, read
// after it, for the run's database only.
type statements struct {
	admin string
	ok    bool
}

// newStatements says whether pg_stat_statements can be read, and makes its
// view in the admin database.
func newStatements(ctx context.Context, adminURL string) (*statements, error) {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	var libs string
	if err := c.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries')`).Scan(&libs); err != nil {
		return nil, err
	}
	s := &statements{admin: adminURL, ok: strings.Contains(libs, "pg_stat_statements")}
	if !s.ok {
		fmt.Fprintln(os.Stderr, "pg_stat_statements is not loaded on this server: no per-statement figures (scripts/bench's own server loads it)")
		return s, nil
	}
	_, err = c.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
	return s, err
}

func (s *statements) reset(ctx context.Context) error {
	if !s.ok {
		return nil
	}
	c, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	return err
}

var stmtName = regexp.MustCompile(`-- name: (\w+)`)

// read returns the costliest statements run on database db since the
// reset, by execution time.
func (s *statements) read(ctx context.Context, db string) ([]stmtCost, error) {
	if !s.ok {
		return nil, nil
	}
	c, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT query, calls, total_exec_time, shared_blks_hit + shared_blks_read, wal_bytes::float8, rows
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND calls > 0
		ORDER BY total_exec_time DESC
		LIMIT 8`, db)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stmtCost
	for rows.Next() {
		var q string
		var sc stmtCost
		var n int64
		if err := rows.Scan(&q, &sc.calls, &sc.execMS, &sc.buffers, &sc.walBytes, &n); err != nil {
			return nil, err
		}
		sc.name = statementName(q)
		sc.rowsPerRun = float64(n) / float64(sc.calls)
		out = append(out, sc)
	}
	return out, rows.Err()
}

// statementName is the sqlc (or River) name of a statement, or its start.
func statementName(q string) string {
	if m := stmtName.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 60 {
		q = q[:60] + "…"
	}
	return "`" + strings.ReplaceAll(q, "|", "\\|") + "`"
}
