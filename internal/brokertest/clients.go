package brokertest

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
)

// CreateStream creates a file-backed stream capturing subjects, with a
// duplicate window of two minutes (JetStream's default).
func (n *NATS) CreateStream(name string, subjects ...string) {
	n.t.Helper()
	nc, js := n.connect()
	defer nc.Close()
	_, err := js.CreateStream(n.t.Context(), jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		n.t.Fatal(err)
	}
}

// Messages returns every message the stream holds, by sequence.
func (n *NATS) Messages(stream string) []*jetstream.RawStreamMsg {
	n.t.Helper()
	nc, s, info := n.stream(stream)
	defer nc.Close()
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(n.t.Context(), seq)
		if err != nil {
			n.t.Fatalf("stream %s, message %d: %v", stream, seq, err)
		}
		out = append(out, m)
	}
	return out
}

func (n *NATS) connect() (*nats.Conn, jetstream.JetStream) {
	n.t.Helper()
	nc, err := nats.Connect(n.URL(), n.opts...)
	if err != nil {
		n.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		n.t.Fatal(err)
	}
	return nc, js
}

// Declare declares a durable direct exchange and, unless queue is "", a
// durable queue bound to it by key.
func (r *RabbitMQ) Declare(exchange, queue, key string) {
	r.t.Helper()
	conn, ch := r.channel()
	defer conn.Close()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		r.t.Fatal(err)
	}
	if queue == "" {
		return
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		r.t.Fatal(err)
	}
	if err := ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		r.t.Fatal(err)
	}
}

// Drain takes every message of queue.
func (r *RabbitMQ) Drain(queue string) []amqp.Delivery {
	r.t.Helper()
	conn, ch := r.channel()
	defer conn.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			r.t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func (r *RabbitMQ) channel() (*amqp.Connection, *amqp.Channel) {
	r.t.Helper()
	conn, err := amqp.Dial(r.URL())
	if err != nil {
		r.t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		r.t.Fatal(err)
	}
	return conn, ch
}

// Count returns how many messages the stream holds.
func (n *NATS) Count(stream string) uint64 {
	n.t.Helper()
	nc, _, info := n.stream(stream)
	nc.Close()
	return info.State.Msgs
}

// stream returns a connection (the caller closes it), the stream and what
// it holds now.
func (n *NATS) stream(name string) (*nats.Conn, jetstream.Stream, *jetstream.StreamInfo) {
	n.t.Helper()
	nc, js := n.connect()
	s, err := js.Stream(n.t.Context(), name)
	if err != nil {
		nc.Close()
		n.t.Fatal(err)
	}
	info, err := s.Info(n.t.Context())
	if err != nil {
		nc.Close()
		n.t.Fatal(err)
	}
	return nc, s, info
}
