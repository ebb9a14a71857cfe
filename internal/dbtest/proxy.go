package dbtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to a database server and fails them the
// ways a network and a server fail, without stopping a server other tests
// share:
//   - SetDown(true) resets every connection and refuses new ones, as a
//     crashed server does;
//   - Blackhole makes every open and every new connection swallow what is
//     sent without an answer or a reset, as a vanished network does; Heal
//     lets new connections through again, and the swallowed ones stay dead;
//   - CutReplyTo lets one request reach the server and then cuts the
//     connection before its answer comes back, as a crash during a commit
//     does: the server has done the work, the client cannot know;
//   - Statements counts the statements clients ran through it.
type Proxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	down      bool
	blackhole bool
	cutAfter  []byte // arms CutReplyTo
	links     map[*link]struct{}

	statements atomic.Int64
}

// Statements returns how many statements clients have run through the
// proxy: the protocol's Execute and simple Query messages, so each query
// pgx sends counts once, prepared or not.
func (p *Proxy) Statements() int64 { return p.statements.Load() }

// frontend follows the messages a client sends, for Statements: a
// startup message (length, then body) and then typed messages (type byte,
// length, body). Connections here never ask for TLS (sslmode=disable).
type frontend struct {
	started bool
	hdr     []byte
	skip    int
}

func (f *frontend) feed(chunk []byte, count func()) {
	for len(chunk) > 0 {
		if f.skip > 0 {
			n := min(f.skip, len(chunk))
			f.skip -= n
			chunk = chunk[n:]
			continue
		}
		want := 5
		if !f.started {
			want = 4
		}
		n := min(want-len(f.hdr), len(chunk))
		f.hdr = append(f.hdr, chunk[:n]...)
		chunk = chunk[n:]
		if len(f.hdr) < want {
			return
		}
		if !f.started {
			f.started = true
			f.skip = int(binary.BigEndian.Uint32(f.hdr)) - 4
		} else {
			if t := f.hdr[0]; t == 'E' || t == 'Q' {
				count()
			}
			f.skip = int(binary.BigEndian.Uint32(f.hdr[1:])) - 4
		}
		f.hdr = f.hdr[:0]
	}
}

// link is one client connection and its connection to the server.
type link struct {
	client, server net.Conn
	dead           bool // swallowing: nothing is forwarded either way
	cutOnReply     bool // the next reply from the server is dropped and the link cut
}

// NewProxy starts a proxy to the server of databaseURL and returns it with
// the URL to connect through it. It stops when the test ends.
func NewProxy(t testing.TB, databaseURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("parse database url: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, links: map[*link]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.SetDown(true)
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

// SetDown cuts every open connection and refuses new ones (down) or lets
// connections through again (up).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for l := range p.links {
			l.client.Close()
			l.server.Close()
		}
		clear(p.links)
	}
}

// Blackhole makes every open connection, and every one opened until Heal,
// swallow what either side sends, with neither an answer nor a reset.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = true
	for l := range p.links {
		l.dead = true
	}
}

// Heal ends a blackhole: new connections work again; those it swallowed
// stay dead, as after a real outage their peers have moved on.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = false
}

// CutReplyTo arms a one-time cut: the first client message that contains
// pattern reaches the server, and the connection is cut before the
// server's reply reaches the client.
func (p *Proxy) CutReplyTo(pattern []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = bytes.Clone(pattern)
}

func (p *Proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		go p.forward(client)
	}
}

func (p *Proxy) forward(client net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	l := &link{client: client, server: server}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	l.dead = p.blackhole
	p.links[l] = struct{}{}
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	go func() { p.pump(l, client, server, true); done <- struct{}{} }()
	go func() { p.pump(l, server, client, false); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pump copies from src to dst until either fails, applying the link's
// state to every chunk: swallowed when dead, cut when a reply is to be cut.
func (p *Proxy) pump(l *link, src, dst net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	var tail []byte // the end of the previous chunk, so a pattern split across reads is found
	var fe frontend
	count := func() { p.statements.Add(1) }
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			p.mu.Lock()
			dead := l.dead
			if fromClient && len(p.cutAfter) > 0 && !dead {
				if bytes.Contains(append(tail, chunk...), p.cutAfter) {
					l.cutOnReply = true // before the server can answer
					p.cutAfter = nil
				}
				keep := min(len(p.cutAfter), n)
				tail = append(tail[:0], chunk[n-keep:]...)
			}
			cut := !fromClient && l.cutOnReply
			p.mu.Unlock()
			switch {
			case cut:
				l.client.Close()
				l.server.Close()
				return
			case dead:
				continue
			}
			if fromClient {
				fe.feed(chunk, count)
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
