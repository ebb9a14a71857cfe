package routing_test

import (
	"strings"
	"testing"

	"inbox/routing"
)

const (
	acA = "AC00000000000000000000000000000001"
	acB = "AC00000000000000000000000000000002"
	mg  = "MG0000000000000000000000000000000a"
)

func TestEmptyRulesMatchAnythingAndEveryRuleMustMatch(t *testing.T) {
	msg := routing.Message{AccountSID: acA, To: "+15550000001", MessagingServiceSID: mg, Event: routing.EventInbound}
	cases := []struct {
		name  string
		rules routing.Rules
		want  bool
	}{
		{"no rules", routing.Rules{}, true},
		{"its account", routing.Rules{Accounts: []string{acB, acA}}, true},
		{"another account", routing.Rules{Accounts: []string{acB}}, false},
		{"its number", routing.Rules{ToNumbers: []string{"+15550000001"}}, true},
		{"its account, another number", routing.Rules{Accounts: []string{acA}, ToNumbers: []string{"+15550000002"}}, false},
		{"its service", routing.Rules{Services: []string{mg}}, true},
		{"status only", routing.Rules{Events: []string{routing.EventStatus}}, false},
		{"every rule matches", routing.Rules{Accounts: []string{acA}, ToNumbers: []string{"+15550000001"}, Services: []string{mg},
			Events: []string{routing.EventInbound}}, true},
	}
	for _, c := range cases {
		if got := c.rules.Match(msg); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.name, got, c.want)
		}
	}
	if (routing.Rules{Services: []string{mg}}).Match(routing.Message{AccountSID: acA, Event: routing.EventInbound}) {
		t.Error("a message without a Messaging Service matched a rule that names one")
	}
}

func TestBadRulesNameTheFlagAndTheValue(t *testing.T) {
	cases := []struct {
		rules routing.Rules
		want  []string
	}{
		{routing.Rules{Accounts: []string{"AC123"}}, []string{"-account", `"AC123"`}},
		{routing.Rules{ToNumbers: []string{"555-1234"}}, []string{"-to", `"555-1234"`, "E.164"}},
		{routing.Rules{ToNumbers: []string{"whatsapp:12"}}, []string{"-to"}},
		{routing.Rules{Services: []string{"MGxyz"}}, []string{"-messaging-service"}},
		{routing.Rules{Events: []string{"outbound"}}, []string{"-events", `unknown event "outbound"`, "inbound or status"}},
	}
	for _, c := range cases {
		err := c.rules.Check()
		if err == nil {
			t.Errorf("%+v: accepted", c.rules)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not say %q", c.rules, err, w)
			}
		}
	}
	good := routing.Rules{Accounts: []string{acA}, ToNumbers: []string{"+15550000001", "whatsapp:+447700900123", "12345"},
		Services: []string{mg}, Events: routing.Events()}
	if err := good.Check(); err != nil {
		t.Errorf("good rules refused: %v", err)
	}
}

func TestNamesAndURLs(t *testing.T) {
	for _, ok := range []string{"orders", "a", "support-desk-2", strings.Repeat("a", 63)} {
		if err := routing.CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Orders", "-orders", "orders_bot", "orders bot", strings.Repeat("a", 64)} {
		if routing.CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	shown, err := routing.CheckURL("https://user:s3cret@app.example/hook")
	if err != nil || strings.Contains(shown, "s3cret") || !strings.Contains(shown, "app.example/hook") {
		t.Errorf("CheckURL with credentials: %q, %v; want them redacted", shown, err)
	}
	for _, bad := range []string{"ftp://app.example/", "app.example/hook", "https://", "://x"} {
		if _, err := routing.CheckURL(bad); err == nil || !strings.Contains(err.Error(), "-url") {
			t.Errorf("CheckURL(%q) = %v, want an error naming -url", bad, err)
		}
	}
	if err := routing.CheckSecret(routing.GenerateSecret()); err != nil {
		t.Errorf("a generated secret is refused: %v", err)
	}
	if err := routing.CheckSecret("whsec_short"); err == nil {
		t.Error("a short secret is accepted")
	}
}
