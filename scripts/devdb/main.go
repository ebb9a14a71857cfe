// Command devdb creates and drops the databases the README's scripts use, on
// a server they were given or started. It marks each database it creates with
// a comment and refuses to drop, or to reuse, one that lacks the mark: the
// scripts never touch a database they did not create.
//
//	go run ./scripts/devdb create|drop SERVER_URL NAME
//
// create prints the new database's URL. It needs only Go, not psql.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

const mark = "created by inbox scripts/devdb"

var validName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "devdb: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 3 || (args[0] != "create" && args[0] != "drop") {
		return errors.New("usage: devdb create|drop SERVER_URL NAME")
	}
	cmd, serverURL, name := args[0], args[1], args[2]
	if !validName.MatchString(name) {
		return fmt.Errorf("database name %q: want lower-case letters, digits and _", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)

	var comment *string
	err = conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, name).Scan(&comment)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	ours := exists && comment != nil && *comment == mark
	if exists && !ours {
		return fmt.Errorf("database %s exists and was not created by these scripts; not touching it (set DATABASE_URL to use it)", name)
	}

	switch cmd {
	case "create":
		if !exists {
			ident := pgx.Identifier{name}.Sanitize()
			if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
				return fmt.Errorf("create database %s: %w", name, err)
			}
			if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+ident+" IS '"+mark+"'"); err != nil {
				return fmt.Errorf("mark database %s: %w", name, err)
			}
		}
		u, err := url.Parse(serverURL)
		if err != nil {
			return fmt.Errorf("parse server url: %w", err)
		}
		u.Path = "/" + name
		fmt.Println(u.String())
	case "drop":
		if exists {
			if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
				return fmt.Errorf("drop database %s: %w", name, err)
			}
		}
	}
	return nil
}
