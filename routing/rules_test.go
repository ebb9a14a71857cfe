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

// TestABrokerTargetIsCheckedByItsKind: the URL's scheme names the kind,
// and each kind takes its own target and refuses another's, naming the
// flag.
func TestABrokerTargetIsCheckedByItsKind(t *testing.T) {
	for raw, want := range map[string]string{
		"https://app.example/hook":                 routing.KindHTTP,
		"nats://user:pass@nats.internal:4222":      "nats",
		"tls://nats.internal:4222":                 "nats",
		"amqp://guest:guest@rabbit.internal:5672/": "amqp",
		"amqps://rabbit.internal/vhost":            "amqp",
	} {
		kind, shown, err := routing.ParseURL(raw)
		if err != nil || kind != want || strings.Contains(shown, ":pass@") || strings.Contains(shown, ":guest@") {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want kind %s, password hidden", raw, kind, shown, err, want)
		}
	}
	cases := []struct {
		kind   string
		target routing.Target
		want   string // "" accepts it
	}{
		{"nats", routing.Target{Subject: "inbox.messages"}, ""},
		{"nats", routing.Target{}, "-subject is required"},
		{"nats", routing.Target{Subject: "inbox.*"}, "-subject"},
		{"nats", routing.Target{Subject: "inbox..messages"}, "-subject"},
		{"nats", routing.Target{Subject: "inbox messages"}, "-subject"},
		{"nats", routing.Target{Subject: "inbox.>"}, "-subject"},
		{"nats", routing.Target{Subject: "a", Exchange: "x"}, "-exchange"},
		{"nats", routing.Target{Subject: "a", Creds: make([]byte, routing.MaxCreds+1)}, "-creds"},
		{"amqp", routing.Target{Exchange: "inbox", RoutingKey: "sms"}, ""},
		{"amqp", routing.Target{Exchange: "inbox"}, ""},
		{"amqp", routing.Target{RoutingKey: "sms"}, "-exchange is required"},
		{"amqp", routing.Target{Exchange: "inbox", Subject: "a"}, "-subject"},
		{"amqp", routing.Target{Exchange: strings.Repeat("x", 256)}, "-exchange"},
		{"amqp", routing.Target{Exchange: "inbox", RoutingKey: "a\nb"}, "-routing-key"},
		{routing.KindHTTP, routing.Target{}, ""},
		{routing.KindHTTP, routing.Target{Subject: "a"}, "broker destinations"},
	}
	for _, c := range cases {
		err := c.target.Check(c.kind)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %+v refused: %v", c.kind, c.target, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %+v: %v, want an error saying %q", c.kind, c.target, err, c.want)
		}
	}
}
