package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// roleURL is databaseURL as role, with password.
func roleURL(t *testing.T, databaseURL, role, password string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// applyRoles runs deploy/roles.sql on the database at superuserURL, as
// psql would with -v owner=… -v app=…, and gives both roles password.
func applyRoles(t *testing.T, superuserURL, owner, app, password string) {
	t.Helper()
	sql, err := os.ReadFile("../../deploy/roles.sql")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.NewReplacer(`:"owner"`, pgx.Identifier{owner}.Sanitize(), `:"app"`, pgx.Identifier{app}.Sanitize()).Replace(string(sql))
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, superuserURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, script); err != nil {
		t.Fatalf("deploy/roles.sql: %v", err)
	}
	for _, role := range []string{owner, app} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), password)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, superuserURL)
		if err != nil {
			t.Errorf("drop the test's roles: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, sql := range []string{
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN ($1, $2)`,
		} {
			conn.Exec(ctx, sql, owner, app)
		}
		// One role at a time: the owner's default privileges name the app.
		for _, sql := range []string{"DROP OWNED BY %s", "DROP ROLE %s"} {
			for _, role := range []string{app, owner} {
				if _, err := conn.Exec(ctx, fmt.Sprintf(sql, pgx.Identifier{role}.Sanitize())); err != nil {
					t.Errorf("%s: %v", fmt.Sprintf(sql, role), err)
				}
			}
		}
	})
}

// TestLeastPrivilegedRoleRunsTheService: with deploy/roles.sql applied,
// the owner role migrates, and the app role runs serve (storing, forwarding,
// status callbacks, retention), work and accounts, and cannot create,
// alter or drop anything, nor migrate.
func TestLeastPrivilegedRoleRunsTheService(t *testing.T) {
	t.Parallel()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	owner, app := "inbox_owner_"+hex.EncodeToString(suffix), "inbox_app_"+hex.EncodeToString(suffix)
	password := hex.EncodeToString(suffix) + "-pw"
	emptyURL := dbtest.EmptyURL(t)
	u, _ := url.Parse(emptyURL)
	superuserURL := dbtest.ServerURL()
	su, _ := url.Parse(superuserURL)
	su.Path = u.Path // the test's database, as the superuser
	applyRoles(t, su.String(), owner, app, password)
	ownerURL, appURL := roleURL(t, emptyURL, owner, password), roleURL(t, emptyURL, app, password)

	ctx := t.Context()
	migrate := func(url string, args ...string) error {
		return run(ctx, append([]string{"migrate"}, args...), env(map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json"}),
			nil, io.Discard, io.Discard)
	}
	if err := migrate(ownerURL, "up"); err != nil {
		t.Fatalf("migrate up as the owner: %v", err)
	}
	// A message old enough for retention, stored by the owner.
	old := fixture.SID()
	ownerPool := dbtest.Connect(t, ownerURL, 2)
	if _, err := ownerPool.Exec(ctx, `INSERT INTO messages (direction, account_sid, from_address, to_address, body, num_media, num_segments, media, status, metadata, received_at)
		VALUES ('inbound', $1, '+1', '+2', 'old', 0, 1, '[]', 'received', jsonb_build_object('message_sid', $2::text, 'params', '{}'::jsonb), now() - interval '3 days')`,
		fixture.Account, old); err != nil {
		t.Fatal(err)
	}

	// The app role cannot change the schema, nor migrate.
	appPool := dbtest.Connect(t, appURL, 2)
	for _, ddl := range []string{
		`CREATE TABLE intruder (id int)`,
		`ALTER TABLE messages ADD COLUMN intruder int`,
		`DROP TABLE messages`,
		`TRUNCATE river_job`,
		`CREATE INDEX intruder ON messages (body)`,
		`DROP FUNCTION message_delivery_state(bigint, text)`,
	} {
		_, err := appPool.Exec(ctx, ddl)
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || (pe.Code != "42501" && pe.Code != "42P01") {
			t.Errorf("%s as the app role: %v, want permission denied", ddl, err)
		}
	}
	if err := migrate(appURL, "down"); err == nil || !strings.Contains(err.Error(), "run migrations as its owner, \""+owner+"\"") {
		t.Errorf("migrate down as the app role: %v; want it refused naming the owner role", err)
	}

	// accounts, as the app role.
	key := newKeyB64()
	acct, acctToken := newAccount()
	mustAccounts(t, appURL, key, acctToken, "add", acct, "-label", "least-privilege")
	if out := mustAccounts(t, appURL, key, "", "list"); !strings.Contains(out, acct) {
		t.Fatalf("accounts list as the app role:\n%s", out)
	}

	// serve enqueues (and runs retention), work forwards, both as the app.
	a := teamapp.New(t, teamapp.Options{})
	vars := a.Env()
	vars["WORKERS"], vars["RETENTION"], vars["ENCRYPTION_KEY"] = "0", "1d", key
	s := startServe(t, appURL, vars)
	// The command it names is docs/deploy.md's, word for word.
	deploy, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.stderr.String(), "River's nightly reindex of the job table is off") || !strings.Contains(s.stderr.String(), "REINDEX TABLE CONCURRENTLY river_job") ||
		!strings.Contains(string(deploy), "REINDEX TABLE CONCURRENTLY river_job") {
		t.Errorf("serve as the app role does not say River's reindex is off, naming docs/deploy.md's command:\n%s", s.stderr)
	}
	st, sid := deliverAs(t, s.addr, acct, acctToken)
	if st != http.StatusOK {
		t.Fatalf("delivery as the app role: %d\n%s", st, s.stderr)
	}
	outbound := fixture.SID()
	if resp, err := http.DefaultClient.Do(signedStatus(t, s.addr, outbound)); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status callback as the app role: %v %v", resp, err)
	}
	poll.Until(t, "retention, as the app role, to delete the old message", func() bool {
		var n int
		ownerPool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE metadata->>'message_sid' = $1`, old).Scan(&n)
		return n == 0
	})

	wvars := maps.Clone(vars)
	wvars["WORKERS"], wvars["DATABASE_URL"], wvars["LOG_FORMAT"], wvars["RECONCILE_INTERVAL"] = "2", appURL, "json", "off"
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &logtest.Buffer{}
	go func() { done <- run(wctx, []string{"work"}, env(wvars), nil, io.Discard, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("work as the app role: %v", err)
		}
		if strings.Contains(log.String(), `"level":"ERROR"`) {
			t.Errorf("work as the app role logged an error:\n%s", log)
		}
	})
	poll.Until(t, "work, as the app role, to forward the message", func() bool { return a.Deliveries(sid) == 1 })
	if strings.Contains(s.stderr.String(), `"level":"ERROR"`) {
		t.Errorf("serve as the app role logged an error:\n%s", s.stderr)
	}
}

// signedStatus is a delivery status callback for an outbound message sid,
// signed for publicURL.
func signedStatus(t *testing.T, addr, sid string) *http.Request {
	t.Helper()
	req, err := simulate.NewRequest(t.Context(), "http://"+addr+"/twilio/status", publicURL+"/twilio/status", testToken,
		simulate.StatusForm(sid, "delivered", ""))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
