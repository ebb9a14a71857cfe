package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"inbox/internal/dbtest"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// TestStandInAppOutlivesEachSimulateRun: the quick start's stand-in app
// (`inbox simulate -app`, which scripts/run keeps running) takes the
// forwards of several simulate runs, each checking what arrived by asking
// it (-receive on its address); after the runs, the console's "Forward
// again" reaches it too (before, the app lived only as long as one
// simulate run, and the replay met a closed port 25 times).
func TestStandInAppOutlivesEachSimulateRun(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appAddr := ln.Addr().String()
	ln.Close()
	appOut := &logtest.Buffer{}
	ctx, stop := context.WithCancel(context.Background())
	appDone := make(chan error, 1)
	go func() {
		appDone <- run(ctx, []string{"simulate", "-app", appAddr}, env(map[string]string{"FORWARD_SECRET": teamapp.Secret}), nil, appOut, io.Discard)
	}()
	t.Cleanup(func() { stop(); <-appDone })
	poll.Until(t, "the stand-in app listening", func() bool { return strings.Contains(appOut.String(), "listens on http://"+appAddr) })

	databaseURL := dbtest.URL(t)
	s, base := startAdmin(t, databaseURL, map[string]string{"FORWARD_URL": "http://" + appAddr + "/inbox", "FORWARD_SECRET": teamapp.Secret})
	vars := s.simulateEnv()
	vars["FORWARD_SECRET"] = teamapp.Secret
	var sid string
	for i := range 2 {
		var stdout bytes.Buffer
		if err := run(t.Context(), []string{"simulate", "-n", "3", "-receive", appAddr}, env(vars), nil, &stdout, io.Discard); err != nil ||
			!strings.Contains(stdout.String(), "forwarded: 3 messages, each once") {
			t.Fatalf("simulate run %d against the stand-in app: %v\n%s", i, err, stdout.String())
		}
		sid = strings.Fields(strings.SplitAfter(appOut.String(), "webhook-id ")[1])[0]
		sid = strings.TrimSuffix(sid, ",")
	}
	arrivals, err := simulate.NewRemoteArrivals(t.Context(), appAddr)
	if err != nil {
		t.Fatal(err)
	}
	if st, _, body := adminDo(t, http.MethodPost, base+"/api/messages/"+sid+"/forward", "Bearer "+adminToken); st != http.StatusAccepted && st != http.StatusOK {
		t.Fatalf("forward again: %d %s", st, body)
	}
	poll.Until(t, "the replay at the stand-in app", func() bool {
		tally, err := arrivals.Arrived(t.Context(), []string{sid})
		return err == nil && tally.Forwarded == 1 && tally.Redeliveries == 1
	})
	if strings.Contains(appOut.String(), "NOT verified") {
		t.Fatalf("a forward did not verify at the stand-in app:\n%s", appOut)
	}
}

// TestSimulateSignsAsAnAddedAccount: -account signs as an account added
// with `inbox accounts add`, with its token; with another token, the
// report says why the service refused.
func TestSimulateSignsAsAnAddedAccount(t *testing.T) {
	t.Parallel()
	databaseURL := dbtest.URL(t)
	key := newKeyB64()
	sid, token := newAccount()
	mustAccounts(t, databaseURL, key, token, "add", sid)
	s := startServe(t, databaseURL, map[string]string{"ENCRYPTION_KEY": key})
	vars := s.simulateEnv()
	var stdout bytes.Buffer
	vars["TWILIO_AUTH_TOKEN"] = testToken // the fallback's: refused for this account
	if err := run(t.Context(), []string{"simulate", "-n", "2", "-account", sid}, env(vars), nil, &stdout, io.Discard); err == nil ||
		!strings.Contains(stdout.String(), "answered 403: 6 (the first said: X-Twilio-Signature does not match") {
		t.Fatalf("simulate -account with another token: %v\n%s", err, stdout.String())
	}
	stdout.Reset()
	withToken := maps.Clone(vars)
	withToken["TWILIO_AUTH_TOKEN"] = token
	if err := run(t.Context(), []string{"simulate", "-n", "2", "-account", sid}, env(withToken), nil, &stdout, io.Discard); err != nil ||
		!strings.Contains(stdout.String(), "answered 200: 6") {
		t.Fatalf("simulate -account with its token: %v\n%s", err, stdout.String())
	}
	if err := run(t.Context(), []string{"simulate", "-account", "AC123"}, env(withToken), nil, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "AC and 32 hexadecimal digits") {
		t.Fatalf("simulate -account AC123: %v", err)
	}
	// Nothing listening: the report says where it looked and what to run.
	stdout.Reset()
	withToken["SIMULATE_URL"] = "http://127.0.0.1:1"
	if err := run(t.Context(), []string{"simulate", "-n", "1", "-account", sid}, env(withToken), nil, &stdout, io.Discard); err == nil ||
		!strings.Contains(stdout.String(), "nothing listens at http://127.0.0.1:1") || !strings.Contains(stdout.String(), "./scripts/run") {
		t.Fatalf("simulate with nothing listening: %v\n%s", err, stdout.String())
	}
}

// TestScriptsSimulateHonoursTheCallerAndSaysWhatIsMissing: scripts/simulate,
// with a .bin/env an earlier scripts/run left behind, uses the SIMULATE_URL
// its caller sets (it ignored it), and without one says that the server
// scripts/run started is not running rather than fail obscurely.
func TestScriptsSimulateHonoursTheCallerAndSaysWhatIsMissing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, dir := range []string{"scripts", ".bin"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script, err := os.ReadFile("../../scripts/simulate")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "scripts", "simulate"), script, 0o755))
	must(os.Symlink(buildInbox(t), filepath.Join(root, ".bin", "inbox")))
	// What a scripts/run long gone left: its server's pid no longer runs.
	must(os.WriteFile(filepath.Join(root, ".bin", "env"), []byte("export DATABASE_URL=postgres://postgres@127.0.0.1:1/inbox TWILIO_AUTH_TOKEN=t "+
		"PUBLIC_BASE_URL=http://127.0.0.1:8080 SIMULATE_URL=http://127.0.0.1:8080 FORWARD_SECRET= SIMULATE_RECEIVE= ADMIN_TOKEN=x ADMIN_URL=x\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, ".bin", "run.pid"), []byte("999999999\n"), 0o600))
	simulateScript := func(extra ...string) string {
		cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root, "scripts", "simulate"), "-n", "1")
		cmd.Env = append(os.Environ(), extra...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := simulateScript(); !strings.Contains(out, "the server ./scripts/run started is not running") {
		t.Fatalf("scripts/simulate with a stale .bin/env:\n%s", out)
	}
	if out := simulateScript("SIMULATE_URL=http://127.0.0.1:1"); !strings.Contains(out, "nothing listens at http://127.0.0.1:1") {
		t.Fatalf("scripts/simulate with SIMULATE_URL set over a stale .bin/env:\n%s", out)
	}
}

// TestQuickStartKeepsSimulatedMedia: as scripts/run sets it up with the
// development token, the stand-in app also plays Twilio's media host
// (TWILIO_API_URL), so simulated MMS have their picture and PDF fetched
// with Basic auth, kept, and read back by the app from each forward's
// download_url without any Twilio credentials.
func TestQuickStartKeepsSimulatedMedia(t *testing.T) {
	t.Parallel()
	var addrs [2]string // the app's; the service's, which its download links name
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	appAddr, apiURL := addrs[0], "http://"+addrs[0]
	appOut := &logtest.Buffer{}
	ctx, stop := context.WithCancel(context.Background())
	appDone := make(chan error, 1)
	go func() {
		appDone <- run(ctx, []string{"simulate", "-app", appAddr},
			env(map[string]string{"FORWARD_SECRET": teamapp.Secret, "TWILIO_AUTH_TOKEN": testToken, "TWILIO_API_URL": apiURL}), nil, appOut, io.Discard)
	}()
	t.Cleanup(func() { stop(); <-appDone })
	poll.Until(t, "the stand-in app playing the media host", func() bool { return strings.Contains(appOut.String(), "plays Twilio's media host") })

	databaseURL := dbtest.URL(t)
	s := startServe(t, databaseURL, map[string]string{"FORWARD_URL": apiURL + "/inbox", "FORWARD_SECRET": teamapp.Secret, "TWILIO_API_URL": apiURL,
		"LISTEN_ADDR": addrs[1], "PUBLIC_BASE_URL": "http://" + addrs[1]})
	vars := s.simulateEnv()
	vars["FORWARD_SECRET"], vars["TWILIO_API_URL"], vars["PUBLIC_BASE_URL"] = teamapp.Secret, apiURL, "http://"+addrs[1]
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"simulate", "-n", "3", "-kind", "mms", "-receive", appAddr}, env(vars), nil, &stdout, io.Discard); err != nil ||
		!strings.Contains(stdout.String(), "forwarded: 3 messages, each once") {
		t.Fatalf("simulate: %v\n%s", err, stdout.String())
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	poll.Until(t, "the six media kept", func() bool {
		var kept int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM media WHERE state = 'kept'`).Scan(&kept); err != nil {
			t.Fatal(err)
		}
		return kept == 6
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the stand-in app:\n%s", appOut)
		}
	})
	poll.Until(t, "the app reading each medium from its download_url", func() bool {
		out := appOut.String()
		return strings.Count(out, "without Twilio's credentials: 200, image/png") == 3 &&
			strings.Count(out, "without Twilio's credentials: 200, application/pdf") == 3
	})
	if strings.Contains(appOut.String(), "NOT") {
		t.Fatalf("the stand-in app:\n%s", appOut)
	}
}
