package dbconfig_test

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"inbox/internal/dbconfig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestURLPrefersDatabaseURLThenThePGVariables(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"DATABASE_URL": "postgres://a@b/c"}, "postgres://a@b/c"},
		{map[string]string{"PGHOST": "db.internal"}, ""},
		{nil, dbconfig.DefaultURL},
	} {
		if got := dbconfig.URL(env(c.vars)); got != c.want {
			t.Errorf("URL(%v) = %q, want %q", c.vars, got, c.want)
		}
	}
}

func TestParamsReadsBothForms(t *testing.T) {
	for s, want := range map[string][]string{
		"postgres://u@h/db?connect_timeout=5&pool_max_conns=3": {"connect_timeout", "pool_max_conns"},
		"host=h password='a b\\' c' pool_ping_timeout=2s":      {"host", "password", "pool_ping_timeout"},
		"": {},
	} {
		got := dbconfig.Params(s, env(nil))
		if len(got) != len(want) {
			t.Errorf("Params(%q) = %v, want %v", s, got, want)
		}
		for _, k := range want {
			if !got[k] {
				t.Errorf("Params(%q) lacks %s: %v", s, k, got)
			}
		}
	}
	if !dbconfig.Params("postgres://u@h/db", env(map[string]string{"PGCONNECT_TIMEOUT": "9"}))["connect_timeout"] {
		t.Error("PGCONNECT_TIMEOUT does not count as connect_timeout")
	}
}

func TestPoolAppliesDefaultsOnlyWhereTheURLIsSilent(t *testing.T) {
	cfg, err := dbconfig.Pool("postgres://u@h/db", env(nil), 16)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.ConnectTimeout != dbconfig.DefaultConnectTimeout || cfg.PingTimeout != dbconfig.DefaultPingTimeout || cfg.MaxConns != 16 || cfg.ConnConfig.DialFunc == nil {
		t.Fatalf("defaults not applied: connect %s, ping %s, max %d", cfg.ConnConfig.ConnectTimeout, cfg.PingTimeout, cfg.MaxConns)
	}
	cfg, err = dbconfig.Pool("postgres://u@h/db?connect_timeout=7&pool_ping_timeout=3s&pool_max_conns=2", env(nil), 16)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.ConnectTimeout != 7*time.Second || cfg.PingTimeout != 3*time.Second || cfg.MaxConns != 2 {
		t.Fatalf("the URL's settings lost: connect %s, ping %s, max %d", cfg.ConnConfig.ConnectTimeout, cfg.PingTimeout, cfg.MaxConns)
	}
}

func TestRedactHidesThePasswordOnly(t *testing.T) {
	const secret = "pa55-w0rd"
	for _, s := range []string{
		"postgres://inbox:" + secret + "@127.0.0.1:5432/inbox?sslmode=disable",
		"postgres://inbox@127.0.0.1:5432/inbox?password=" + secret,
		"host=127.0.0.1 user=inbox password=" + secret + " dbname=inbox",
	} {
		got := dbconfig.Redact(s)
		if strings.Contains(got, secret) || !strings.Contains(got, "xxxxx") || !strings.Contains(got, "inbox") {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
}
