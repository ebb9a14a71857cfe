package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestServeStartsInEveryStateOfItsDatabase: with the defaults
// (reconciliation on) and with FORWARD_URL set, serve started while its
// database is unreachable, or reachable but never migrated, keeps serving
// (/readyz 503, webhooks 503) rather than exit, as a rolling deploy needs;
// once the database is up and migrated, without a restart, webhooks are
// stored, its workers start and the message is forwarded.
func TestServeStartsInEveryStateOfItsDatabase(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"unreachable", "unmigrated"} {
		for _, setup := range []string{"defaults", "FORWARD_URL"} {
			t.Run(state+"/"+setup, func(t *testing.T) {
				t.Parallel()
				databaseURL := dbtest.EmptyURL(t)
				proxy, viaProxy := dbtest.NewProxy(t, databaseURL)
				if state == "unreachable" {
					proxy.SetDown(true)
				} else {
					proxy = nil
				}
				// The defaults: startServe's RECONCILE_INTERVAL=off undone.
				extra := map[string]string{"RECONCILE_INTERVAL": ""}
				var app *teamapp.App
				if setup == "FORWARD_URL" {
					app = teamapp.New(t, teamapp.Options{})
					for k, v := range app.Env() {
						extra[k] = v
					}
				}
				s := startServe(t, viaProxy, extra)
				if st := readyz(t, s.addr); st != http.StatusServiceUnavailable {
					t.Fatalf("/readyz while the database is %s: %d, want 503", state, st)
				}
				if proxy != nil {
					proxy.SetDown(false)
				}
				mustInbox(t, databaseURL, "migrate", "up")
				sid := simulate.NewMessageSID(simulate.SMS)
				poll.Until(t, "a webhook stored once the database is ready", func() bool {
					return deliverAt(t, []string{s.addr}, sid, 1)[0] == http.StatusOK
				})
				poll.Until(t, "the workers started", func() bool { return strings.Contains(s.stderr.String(), `"msg":"workers started"`) })
				if app != nil {
					poll.Until(t, "the message forwarded", func() bool { return app.Distinct() == 1 })
				}
				if strings.Contains(s.stderr.String(), `"level":"ERROR","msg":"stopped`) {
					t.Fatalf("serve stopped:\n%s", s.stderr)
				}
				s.stop(t)
			})
		}
	}
}

// readyz is the status /readyz answers at addr.
func readyz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
