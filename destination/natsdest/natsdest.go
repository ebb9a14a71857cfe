// Package natsdest is the NATS JetStream destination: each event published
// to a subject a stream captures, with Nats-Msg-Id set to its webhook-id,
// so the stream stores it once however often it is published within its
// duplicate window, and signed as an HTTP app's forwards are (the
// Standard Webhooks headers, as NATS headers), so a consumer verifies it
// as an app does.
package natsdest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"inbox/destination"
	"inbox/webhook"
)

// HeaderMsgID is the header JetStream drops a repeat by, within the
// stream's duplicate window.
const HeaderMsgID = "Nats-Msg-Id"

// Publisher is the destination.Sender of a nats destination: one
// connection, shared by every worker of the process, that reconnects by
// itself after the server restarts (publishes made meanwhile time out and
// are retried, and JetStream drops any that did arrive by Nats-Msg-Id).
//
// An event counts as delivered only when its PubAck arrives, a duplicate's
// included. A subject no stream captures, and credentials the server
// refuses, are destination.Misconfigured: the destination pauses.
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
	secret  []byte
	timeout time.Duration
	now     func() time.Time
}

// Open connects to t's server (or keeps trying in the background, so a
// server that is down does not stop the process: its publishes fail until
// it is up) and returns its Publisher, each publish bounded by timeout.
func Open(t destination.Target, timeout time.Duration) (*Publisher, error) {
	key, err := webhook.ParseSecret(t.Secret)
	if err != nil {
		return nil, err
	}
	opts, err := options(t, timeout)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		// Errors are the publishes': nothing to print behind the service's
		// back.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(t.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("destination %s: connect to NATS: %w", t.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("destination %s: %w", t.Name, err)
	}
	return &Publisher{nc: nc, js: js, subject: t.Subject, secret: key, timeout: timeout, now: time.Now}, nil
}

// options are the connection's: its name as the server shows it, the
// connect timeout, and the credentials file's JWT and seed when given.
func options(t destination.Target, timeout time.Duration) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("inbox destination " + t.Name), nats.Timeout(timeout)}
	if len(t.Creds) == 0 {
		return opts, nil
	}
	jwt, err := nkeys.ParseDecoratedJWT(t.Creds)
	if err != nil {
		return nil, fmt.Errorf("destination %s: the credentials file has no user JWT: %w", t.Name, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(t.Creds)
	if err != nil {
		return nil, fmt.Errorf("destination %s: the credentials file has no seed: %w", t.Name, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("destination %s: the credentials file's seed: %w", t.Name, err)
	}
	return append(opts, nats.UserJWTAndSeed(jwt, string(seed))), nil
}

// Send implements destination.Sender: one publish, waiting for its PubAck.
func (p *Publisher) Send(ctx context.Context, ev destination.Event) error {
	msg := nats.NewMsg(p.subject)
	msg.Data = ev.Payload
	msg.Header.Set(HeaderMsgID, ev.ID)
	msg.Header.Set("Content-Type", "application/json")
	// Signed afresh on every attempt, as an HTTP forward is.
	for name, v := range webhook.Headers(p.secret, ev.ID, p.now(), ev.Payload) {
		msg.Header.Set(name, v)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	_, err := p.js.PublishMsg(ctx, msg)
	if err == nil {
		return nil
	}
	return p.failed(ev.ID, err)
}

// failed says what went wrong with a publish, and whether a retry can
// help before someone fixes the destination.
func (p *Publisher) failed(id string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return destination.Misconfigured(fmt.Errorf("publish %s: no stream captures subject %q: create one (docs/destinations.md, \"Brokers\")", id, p.subject))
	}
	if !p.nc.IsConnected() {
		last := p.nc.LastError()
		if last != nil && refused(last) {
			return destination.Misconfigured(fmt.Errorf("publish %s: the NATS server refuses the credentials: %w", id, last))
		}
		// Before its first connection the client cannot even say whether
		// the server takes headers: whatever the publish said, this is why.
		why := "the server is unreachable"
		if last != nil {
			why = last.Error()
		}
		return fmt.Errorf("publish %s: not connected to NATS (%s); retried until it is", id, why)
	}
	return fmt.Errorf("publish %s to %q: %w", id, p.subject, err)
}

// refused reports whether err is the server refusing the connection's
// credentials.
func refused(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// Close closes the connection, after what was published was flushed.
func (p *Publisher) Close() error {
	p.nc.Close()
	return nil
}

// Check connects to t's server, now, and asks which stream captures its
// subject: what `inbox destinations add` checks before storing it.
func Check(ctx context.Context, t destination.Target, timeout time.Duration) error {
	opts, err := options(t, timeout)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(t.URL, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stream, err := js.StreamNameBySubject(ctx, t.Subject)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("no stream captures subject %q: create one first (docs/destinations.md, \"Brokers\")", t.Subject)
		}
		return fmt.Errorf("find the stream of subject %q: %w", t.Subject, err)
	}
	if stream == "" {
		return fmt.Errorf("no stream captures subject %q", t.Subject)
	}
	return nil
}
