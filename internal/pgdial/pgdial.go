// Package pgdial dials PostgreSQL for pgx so that a database that stops
// answering (a network blackhole, a frozen server) frees the pool's slots
// in about a second instead of fifteen.
//
// When a query's context ends, pgx closes the connection in the
// background: it sends a cancel request on a new connection and waits for
// the server to acknowledge it, then sends Terminate and drains the socket,
// each bounded only by 15 s, and pgxpool keeps the connection's slot until
// that is done. Against a server that accepts bytes and never answers, every
// timed-out request therefore held a slot for 15 s or more, and the service
// answered 503 for that long after the database came back. The connections
// dialed here recognise those two moments in the protocol (the cancel
// request's code, the Terminate message) and bound the wait that follows
// them to a second. Nothing else about the connection changes.
package pgdial

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"time"
)

// closeWait bounds the wait for a cancel request's acknowledgement and for
// the server's goodbye after Terminate. A live server answers both in
// microseconds; one that does not answer within a second is gone.
const closeWait = time.Second

// cancelRequestCode identifies a CancelRequest message (protocol 3).
const cancelRequestCode = 80877102

// terminate is the Terminate message.
var terminate = []byte{'X', 0, 0, 0, 4}

// New returns a pgx DialFunc: a TCP dial bounded by timeout, with keepalives
// as ka says, whose connections bound the waits described above.
func New(timeout time.Duration, ka net.KeepAliveConfig) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAliveConfig: ka}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &conn{Conn: c}, nil
	}
}

type conn struct{ net.Conn }

func (c *conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err == nil && (isCancelRequest(b) || bytes.HasSuffix(b, terminate)) {
		c.Conn.SetReadDeadline(time.Now().Add(closeWait))
	}
	return n, err
}

func isCancelRequest(b []byte) bool {
	return len(b) >= 12 && binary.BigEndian.Uint32(b[4:8]) == cancelRequestCode && int(binary.BigEndian.Uint32(b[0:4])) == len(b)
}
