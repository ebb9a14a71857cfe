// Package amqpdest is the RabbitMQ destination: each event published to an
// exchange with publisher confirms, mandatory (a message no queue is bound
// to receive comes back, and is an error, never silently dropped), as a
// persistent message whose message_id is its webhook-id and whose headers
// are the Standard Webhooks signature, so a consumer verifies it as an
// HTTP app does and drops a repeat by message_id: RabbitMQ itself has no
// deduplication, so a confirm lost to a broken connection publishes again.
package amqpdest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"inbox/destination"
	"inbox/webhook"
)

// maxIdle bounds the channels a Publisher keeps open between publishes:
// one per worker publishing at once.
const maxIdle = 64

// Publisher is the destination.Sender of an amqp destination. Its one
// connection is shared by every worker of the process and dialled again
// after it closes (a broker restart); each publish takes a channel of its
// own, in confirm mode, so a confirm and a return belong to exactly that
// publish. A channel that failed in any way is closed, never reused.
type Publisher struct {
	name, url     string
	exchange, key string
	secret        []byte
	timeout       time.Duration
	now           func() time.Time

	mu     sync.Mutex
	conn   *amqp.Connection
	idle   []*confirmChannel
	closed bool
}

// confirmChannel is a channel in confirm mode with its own return and
// close notifications: one publish at a time, so the return the broker
// sends before a confirm is that publish's.
type confirmChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

// Open returns t's Publisher, each publish bounded by timeout. It does not
// connect: the first publish does, so the process starts while the broker
// is down.
func Open(t destination.Target, timeout time.Duration) (*Publisher, error) {
	key, err := webhook.ParseSecret(t.Secret)
	if err != nil {
		return nil, err
	}
	return &Publisher{name: t.Name, url: t.URL, exchange: t.Exchange, key: t.RoutingKey, secret: key, timeout: timeout, now: time.Now}, nil
}

// Send implements destination.Sender: one confirmed, mandatory publish.
func (p *Publisher) Send(ctx context.Context, ev destination.Event) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	c, err := p.take()
	if err != nil {
		return fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	now := p.now()
	headers := amqp.Table{}
	// Signed afresh on every attempt, as an HTTP forward is.
	for name, v := range webhook.Headers(p.secret, ev.ID, now, ev.Payload) {
		headers[name] = v
	}
	dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, p.key, true, false, amqp.Publishing{
		Headers: headers, ContentType: "application/json", DeliveryMode: amqp.Persistent,
		MessageId: ev.ID, Timestamp: now, Body: ev.Payload,
	})
	if err != nil {
		c.ch.Close()
		return p.failed(ev.ID, c, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// The confirm may still come: this channel is done with.
		c.ch.Close()
		return fmt.Errorf("publish %s: no confirm within %s: %w", ev.ID, p.timeout, err)
	}
	if !acked {
		c.ch.Close()
		return p.failed(ev.ID, c, errors.New("the broker did not take it (nack)"))
	}
	select {
	case r := <-c.returns:
		p.put(c)
		return fmt.Errorf("publish %s: unroutable: no queue is bound to exchange %q with routing key %q (%d %s)",
			ev.ID, p.exchange, p.key, r.ReplyCode, r.ReplyText)
	default:
	}
	p.put(c)
	return nil
}

// failed says why a publish on c failed: the channel's close names an
// exchange that does not exist or a permission refused, both settings to
// fix (destination.Misconfigured).
func (p *Publisher) failed(id string, c *confirmChannel, err error) error {
	select {
	case e := <-c.closes:
		if e != nil {
			err = e
		}
	default:
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.NotFound:
			return destination.Misconfigured(fmt.Errorf("publish %s: exchange %q does not exist: declare it (docs/destinations.md, \"Brokers\"): %w", id, p.exchange, err))
		case amqp.AccessRefused:
			return destination.Misconfigured(fmt.Errorf("publish %s: the broker refuses to let this user publish to %q: %w", id, p.exchange, err))
		}
	}
	return fmt.Errorf("publish %s: %w", id, err)
}

// take returns an idle channel, or opens one (dialling first when the
// connection is closed or was never opened).
func (p *Publisher) take() (*confirmChannel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("the destination's connection is closed")
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !c.ch.IsClosed() {
			return c, nil
		}
	}
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := dial(p.name, p.url, p.timeout)
		if err != nil {
			return nil, err
		}
		p.conn = conn
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open a channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("put the channel in confirm mode: %w", err)
	}
	return &confirmChannel{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1)), closes: ch.NotifyClose(make(chan *amqp.Error, 1))}, nil
}

// put keeps c for the next publish, or closes it.
func (p *Publisher) put(c *confirmChannel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || c.ch.IsClosed() || len(p.idle) >= maxIdle {
		c.ch.Close()
		return
	}
	p.idle = append(p.idle, c)
}

// Close closes the connection and its channels.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.idle = nil
	if p.conn != nil {
		return p.conn.Close()
	}
	return nil
}

// dial connects to the broker at url within timeout; credentials it
// refuses are destination.Misconfigured.
func dial(name, url string, timeout time.Duration) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("inbox destination " + name)
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout), Properties: props, Heartbeat: 10 * time.Second})
	if err == nil {
		return conn, nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return nil, destination.Misconfigured(fmt.Errorf("connect to RabbitMQ: the broker refuses the credentials or the virtual host: %w", err))
	}
	return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
}

// Check connects to t's broker, now, and asks whether its exchange
// exists: what `inbox destinations add` checks before storing it.
func Check(t destination.Target, timeout time.Duration) error {
	conn, err := dial(t.Name, t.URL, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open a channel: %w", err)
	}
	if err := ch.ExchangeDeclarePassive(t.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("exchange %q does not exist: declare it, and bind a queue to it (docs/destinations.md, \"Brokers\")", t.Exchange)
		}
		return fmt.Errorf("check exchange %q: %w", t.Exchange, err)
	}
	return nil
}
