// Package routing is which app gets which message: the destinations an
// operator defines (a name, a URL, a Standard Webhooks secret and match
// rules), checked once here for every edge (the CLI, the admin API, the
// console), sealed at rest with the keyring as Twilio tokens are, and the
// rule a message is matched by. It sits between the edges and the store,
// as package account does for Twilio accounts.
package routing

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"inbox/internal/clip"
	"inbox/twilio"
)

// The events a destination may ask for.
const (
	EventInbound = "inbound" // a new inbound message
	EventStatus  = "status"  // an outbound message's status change
)

// Events lists the events, in the order the CLI names them.
func Events() []string { return []string{EventInbound, EventStatus} }

// MaxRuleValues bounds each rule's list: a rule is matched on every stored
// message, and a list longer than this is a sign of a mistake (a whole
// export pasted in), not of routing.
const MaxRuleValues = 1000

// Rules say which messages a destination gets: each list left empty
// matches anything, and a message matches when every rule does.
type Rules struct {
	Accounts  []string // account sids, AC…
	ToNumbers []string // To as Twilio writes it: +1555…, whatsapp:+1555…, a short code
	Services  []string // Messaging Service sids, MG…
	Events    []string // EventInbound, EventStatus
}

// Message is what a rule looks at.
type Message struct {
	AccountSID          string
	To                  string
	MessagingServiceSID string // "" when none
	Event               string
}

// Match reports whether m matches every rule of r.
func (r Rules) Match(m Message) bool {
	return matches(r.Accounts, m.AccountSID) && matches(r.ToNumbers, m.To) &&
		matches(r.Services, m.MessagingServiceSID) && matches(r.Events, m.Event)
}

func matches(rule []string, v string) bool { return len(rule) == 0 || slices.Contains(rule, v) }

var (
	namePattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	e164Pattern      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	shortCodePattern = regexp.MustCompile(`^[0-9]{3,8}$`)
	serviceSID       = regexp.MustCompile(`^MG[0-9a-f]{32}$`)
)

// CheckName refuses a name that is not a destination name: lower-case
// letters, digits and hyphens, starting with a letter or digit, at most 63
// (it is the River queue of its deliveries and a metric label).
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%q is not a destination name: want lower-case letters, digits and hyphens, starting with a letter or digit, at most 63 (e.g. orders-bot)", clip.Clip(name))
	}
	return nil
}

// CheckNumber refuses a To that Twilio would never send: an E.164 number
// (+ and 7 to 15 digits), the same behind a channel prefix
// (whatsapp:+…, messenger: and the like keep their own shapes and are not
// routed by number), or a short code (3 to 8 digits).
func CheckNumber(n string) error {
	bare, _ := strings.CutPrefix(n, "whatsapp:")
	if e164Pattern.MatchString(bare) || (bare == n && shortCodePattern.MatchString(n)) {
		return nil
	}
	return fmt.Errorf("%q is not a number Twilio sends as To: want E.164 (+15551234567), whatsapp:+15551234567 or a short code", clip.Clip(n))
}

// Check refuses rules with a value no message could carry, naming the flag
// (the CLI's; the API's fields have the same names) and the value.
func (r Rules) Check() error {
	checks := []struct {
		flag   string
		values []string
		check  func(string) error
	}{
		{"-account", r.Accounts, func(v string) error {
			if !twilio.IsAccountSID(v) {
				return fmt.Errorf("%q is not an account sid: want AC and 32 lower-case hex digits", clip.Clip(v))
			}
			return nil
		}},
		{"-to", r.ToNumbers, CheckNumber},
		{"-messaging-service", r.Services, func(v string) error {
			if !serviceSID.MatchString(v) {
				return fmt.Errorf("%q is not a Messaging Service sid: want MG and 32 lower-case hex digits", clip.Clip(v))
			}
			return nil
		}},
		{"-events", r.Events, func(v string) error {
			if !slices.Contains(Events(), v) {
				return fmt.Errorf("unknown event %q: want %s", clip.Clip(v), strings.Join(Events(), " or "))
			}
			return nil
		}},
	}
	for _, c := range checks {
		if len(c.values) > MaxRuleValues {
			return fmt.Errorf("%s: %d values, more than %d", c.flag, len(c.values), MaxRuleValues)
		}
		for _, v := range c.values {
			if err := c.check(v); err != nil {
				return fmt.Errorf("%s: %w", c.flag, err)
			}
		}
	}
	return nil
}

// Normal returns r with each list sorted and without repeats, so two
// equal rule sets are stored and shown alike.
func (r Rules) Normal() Rules {
	norm := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return slices.Compact(s) }
	return Rules{Accounts: norm(r.Accounts), ToNumbers: norm(r.ToNumbers), Services: norm(r.Services), Events: norm(r.Events)}
}
