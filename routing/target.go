package routing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"inbox/destination"
	"inbox/internal/clip"
)

// Bounds of a broker's target, as the brokers bound them.
const (
	maxSubject  = 255 // bytes: NATS allows more; no stream config needs it
	maxAMQPName = 255 // bytes: AMQP's short string
	// MaxCreds bounds a NATS credentials file (a JWT and a seed: about 1 KB).
	MaxCreds = 16 << 10
)

// Target is where a broker destination publishes: a JetStream subject
// (and a credentials file) for nats://, an exchange and routing key for
// amqp://. An http(s) destination has none.
type Target struct {
	Subject    string
	Creds      []byte
	Exchange   string
	RoutingKey string
}

// Check refuses a target the kind does not take or cannot publish to,
// naming the flag (the API's fields have the same names).
func (t Target) Check(kind string) error {
	switch kind {
	case destination.KindNATS:
		if t.Exchange != "" || t.RoutingKey != "" {
			return errors.New("-exchange and -routing-key are for amqp:// destinations; a nats:// one takes -subject")
		}
		if len(t.Creds) > MaxCreds {
			return fmt.Errorf("-creds: %d bytes, more than %d", len(t.Creds), MaxCreds)
		}
		return CheckSubject(t.Subject)
	case destination.KindAMQP:
		if t.Subject != "" || len(t.Creds) > 0 {
			return errors.New("-subject and -creds are for nats:// destinations; an amqp:// one takes -exchange and -routing-key (credentials in the URL)")
		}
		if t.Exchange == "" {
			return errors.New("-exchange is required for an amqp:// destination: the exchange each message is published to")
		}
		if err := checkAMQPName("-exchange", t.Exchange); err != nil {
			return err
		}
		return checkAMQPName("-routing-key", t.RoutingKey)
	default:
		if len(t.Creds) > 0 || t.Subject != "" || t.Exchange != "" || t.RoutingKey != "" {
			return errors.New("-subject, -creds, -exchange and -routing-key are for broker destinations (nats://, amqp://), not http(s)://")
		}
		return nil
	}
}

// CheckSubject refuses what is not a subject a message can be published
// to: dot-separated tokens, no wildcards, no spaces.
func CheckSubject(subject string) error {
	if subject == "" {
		return errors.New("-subject is required for a nats:// destination: the JetStream subject each message is published to")
	}
	if len(subject) > maxSubject {
		return fmt.Errorf("-subject: %d bytes, more than %d", len(subject), maxSubject)
	}
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("-subject: %q is not a subject to publish to (dot-separated tokens, no wildcards or spaces)", clip.Clip(subject))
		}
	}
	return nil
}

func checkAMQPName(flag, v string) error {
	if len(v) > maxAMQPName {
		return fmt.Errorf("%s: %d bytes, more than %d", flag, len(v), maxAMQPName)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s: %q has a control character", flag, clip.Clip(v))
		}
	}
	return nil
}

// checkChange refuses a change of URL or target that the destination
// name's kind does not take: a destination keeps its kind (remove it and
// add another to change it).
func (m *Manager) checkChange(ctx context.Context, name string, c Change) error {
	d, err := m.Store.Destination(ctx, name)
	if err != nil {
		return err
	}
	if c.URL != nil {
		kind, _, err := ParseURL(*c.URL)
		if err != nil {
			return invalid(err)
		}
		if kind != d.Kind {
			return invalid(fmt.Errorf("-url: %s is a %s destination; a %s URL would change its kind (remove it and add another)", name, d.Kind, kind))
		}
	}
	t := Target{Subject: d.Subject, Exchange: d.Exchange, RoutingKey: d.RoutingKey}
	for _, f := range []struct {
		to   *string
		from *string
	}{{&t.Subject, c.Subject}, {&t.Exchange, c.Exchange}, {&t.RoutingKey, c.RoutingKey}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	return invalid(t.Check(d.Kind))
}

// Where says where the destination's events go, as shown: its URL
// (redacted), and a broker's subject or exchange and routing key.
func (s Summary) Where() string {
	switch {
	case s.Subject != "":
		return s.URL + " subject " + s.Subject
	case s.Exchange != "":
		return s.URL + " exchange " + s.Exchange + " routing key " + strconv.Quote(s.RoutingKey)
	default:
		return s.URL
	}
}
