// Package kinds builds a destination's Sender from its Target, by its
// kind: the one place a new kind of destination is added (its package
// beside httpdest, natsdest and amqpdest, and a case in Open and Check).
package kinds

import (
	"context"
	"fmt"
	"io"
	"time"

	"inbox/destination"
	"inbox/destination/amqpdest"
	"inbox/destination/httpdest"
	"inbox/destination/natsdest"
)

// Sender is a destination's Sender with what it holds open (a broker's
// connection), closed once its workers have stopped or it was changed.
type Sender interface {
	destination.Sender
	io.Closer
}

// Open returns the Sender of t, each attempt bounded by timeout.
func Open(t destination.Target, timeout time.Duration) (Sender, error) {
	switch t.Kind {
	case destination.KindHTTP:
		f, err := httpdest.NewForwarder(t.URL, t.Secret, timeout)
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", t.Name, err)
		}
		return nopCloser{f}, nil
	case destination.KindNATS:
		return natsdest.Open(t, timeout)
	case destination.KindAMQP:
		return amqpdest.Open(t, timeout)
	default:
		return nil, fmt.Errorf("destination %s: unknown kind %q (a newer release's?)", t.Name, t.Kind)
	}
}

// CheckTimeout bounds Check.
const CheckTimeout = 10 * time.Second

// Check connects to a broker destination's server and asks whether it
// can publish as t says (the stream, the exchange), within CheckTimeout.
// An app over HTTP is not called: a request would be a delivery.
func Check(ctx context.Context, t destination.Target) error {
	const timeout = CheckTimeout
	switch t.Kind {
	case destination.KindNATS:
		return natsdest.Check(ctx, t, timeout)
	case destination.KindAMQP:
		return amqpdest.Check(t, timeout)
	default:
		return nil
	}
}

type nopCloser struct{ destination.Sender }

func (nopCloser) Close() error { return nil }
