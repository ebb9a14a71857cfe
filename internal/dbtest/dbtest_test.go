package dbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestMainFindsWhatATestLeftBehind: while a test's database still exists,
// the check Main runs after the tests reports it, and drops the template;
// the test's database itself is dropped when the test passes, so Main, at
// the end of this package, finds nothing.
func TestMainFindsWhatATestLeftBehind(t *testing.T) {
	url := URL(t)
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	err := dropTemplates(true)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("with %s still there: %v, want it named", name, err)
	}
	conn, err := pgx.Connect(context.Background(), ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var templates int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE shobj_description(oid, 'pg_database') = $1`, templateMark()).Scan(&templates); err != nil || templates != 0 {
		t.Fatalf("%d templates of this process left (%v), want 0", templates, err)
	}
}
