package main

import (
	"regexp"
	"strings"
	"testing"

	"inbox/internal/dbtest"
	"inbox/routing"
)

// destinationsCLI runs `inbox destinations args…` in-process with stdin.
func destinationsCLI(t *testing.T, databaseURL, key, stdin string, args ...string) (string, error) {
	t.Helper()
	return cli(t, "destinations", databaseURL, key, stdin, args...)
}

// TestDestinationsCLI: add, list, set, pause, resume and remove as an
// operator's script runs them; the secret and the URL's password never
// appear in what it prints.
func TestDestinationsCLI(t *testing.T) {
	url, key := dbtest.URL(t), newKeyB64()
	secret := routing.GenerateSecret()
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := destinationsCLI(t, url, key, stdin, args...)
		if err != nil {
			t.Fatalf("inbox destinations %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must(secret, "add", "orders", "-url", "https://bot:pa55word@orders.example/hook",
		"-account", "AC00000000000000000000000000000001", "-to", "+15550000001,+15550000002", "-to", "whatsapp:+447700900123")
	gen := must("", "add", "analytics", "-url", "https://analytics.example/", "-events", "status", "-generate-secret", "-rate", "20")
	lines := strings.Split(strings.TrimSpace(gen), "\n")
	generated := lines[len(lines)-1]
	if err := routing.CheckSecret(generated); err != nil {
		t.Errorf("-generate-secret printed %q: %v", gen, err)
	}
	list := must("", "list")
	for _, want := range []string{"orders", "https://bot:xxxxx@orders.example/hook", "+15550000001,+15550000002,whatsapp:+447700900123",
		"analytics", "status", "20/s", "2 destinations"} {
		if !strings.Contains(list, want) {
			t.Errorf("list does not show %q:\n%s", want, list)
		}
	}
	for _, never := range []string{"pa55word", secret, generated} {
		if strings.Contains(list, never) {
			t.Errorf("list shows a secret:\n%s", list)
		}
	}
	must("", "pause", "orders", "-note", "moving the app")
	if list := must("", "list"); !strings.Contains(list, "paused (operator)") {
		t.Errorf("list after pause:\n%s", list)
	}
	must("", "resume", "orders")
	must("", "set", "orders", "-to", "", "-rate", "0")
	if list := must("", "list"); strings.Contains(list, "+15550000001") || strings.Contains(list, "paused") {
		t.Errorf("list after set and resume:\n%s", list)
	}
	// A delivery waiting for it: remove refuses, saying how many, until
	// -force cancels it.
	pool := dbtest.Connect(t, url, 1)
	if _, err := pool.Exec(t.Context(), `INSERT INTO river_job (args, kind, max_attempts, queue)
		VALUES ('{"sid": "SM00000000000000000000000000000001", "destination": "analytics"}', 'inbox_message', 25, 'analytics')`); err != nil {
		t.Fatal(err)
	}
	if list := must("", "list"); !regexp.MustCompile(`analytics .* 1 +[0-9]+s`).MatchString(list) {
		t.Errorf("list does not show the delivery waiting for analytics:\n%s", list)
	}
	if out, err := destinationsCLI(t, url, key, "", "remove", "analytics"); err == nil || !strings.Contains(err.Error(), "1 to analytics; -force cancels them") {
		t.Errorf("remove with a delivery waiting: %v\n%s; want it refused, saying how many", err, out)
	}
	if out := must("", "remove", "analytics", "-force"); !strings.Contains(out, "1 waiting delivery jobs cancelled") {
		t.Errorf("remove -force: %s", out)
	}
	var state string
	if err := pool.QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE queue = 'analytics'`).Scan(&state); err != nil || state != "cancelled" {
		t.Errorf("the waiting delivery is %q (%v), want cancelled", state, err)
	}
	if list := must("", "list"); strings.Contains(list, "analytics") || !strings.Contains(list, "1 destinations") {
		t.Errorf("list after remove:\n%s", list)
	}
}

// TestDestinationsCLIRefusesBadInputNamingTheFlag: each mistake an
// operator's script could make gets an error that names what is wrong,
// and stores nothing.
func TestDestinationsCLIRefusesBadInputNamingTheFlag(t *testing.T) {
	url, key := dbtest.URL(t), newKeyB64()
	secret := routing.GenerateSecret()
	if _, err := destinationsCLI(t, url, key, secret, "add", "taken", "-url", "https://app.example/"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{secret, []string{"add", "orders", "-url", "https://app.example/", "-events", "inbound,outbound"}, `-events: unknown event "outbound"`},
		{secret, []string{"add", "orders", "-url", "https://app.example/", "-to", "555-1234"}, `-to: "555-1234" is not a number Twilio sends`},
		{secret, []string{"add", "orders", "-url", "ftp://app.example/"}, "-url: not a destination's URL"},
		{secret, []string{"add", "orders"}, "-url is required"},
		{secret, []string{"add", "Orders", "-url", "https://app.example/"}, "is not a destination name"},
		{secret, []string{"add", "taken", "-url", "https://app.example/"}, "a destination with this name exists"},
		{secret, []string{"add", "default", "-url", "https://app.example/"}, "default is the destination FORWARD_URL defines"},
		{secret, []string{"add", "orders", "-url", "https://app.example/", "-rate", "-3"}, "-rate:"},
		{secret, []string{"add", "orders", "-url", "https://app.example/", "-rate", "fast"}, "-rate:"},
		{secret, []string{"add", "orders", "-url", "https://app.example/", "-account", "AC1"}, "-account:"},
		{"not-a-secret", []string{"add", "orders", "-url", "https://app.example/"}, "not a Standard Webhooks secret"},
		{"", []string{"add", "orders", "-url", "https://app.example/"}, "no secret on standard input"},
		{"", []string{"add", "orders", "-url", "https://app.example/", secret}, "never from an argument"},
		{"", []string{"pause", "nope"}, "no such destination"},
		{"", []string{"remove", "nope"}, "no such destination"},
		{"", []string{"backfill", "taken"}, "-since is required"},
		{"", []string{"backfill", "taken", "-since", "9000h"}, "-since 9000h0m0s: want a duration from 1s to"},
		{"", []string{"backfill", "taken", "-since", "yesterday"}, "invalid value \"yesterday\" for flag -since"},
		{"", []string{"backfill", "nope", "-since", "1h"}, "no such destination"},
		{"", []string{"launch"}, `unknown verb "launch"`},
		{"", []string{"pause"}, "the destination's name comes first"},
	}
	for _, c := range cases {
		out, err := destinationsCLI(t, url, key, c.stdin, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("inbox destinations %s: %v; want an error saying %q\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("inbox destinations %s: the error shows the secret", strings.Join(c.args, " "))
		}
	}
	if list, err := destinationsCLI(t, url, key, "", "list"); err != nil || !strings.Contains(list, "1 destinations") {
		t.Errorf("after the refusals, list = %v\n%s; want only the first", err, list)
	}
}
