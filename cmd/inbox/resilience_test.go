package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"inbox/internal/dbtest"
	"inbox/internal/poll"
	"inbox/simulate"
)

// TestPasswordIsNeverShown: neither -h nor the start-up log shows the
// password of DATABASE_URL.
func TestPasswordIsNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "pa55-w0rd-never-shown"
	for _, u := range []string{
		"postgres://inbox:" + secret + "@127.0.0.1:5432/inbox?sslmode=disable",
		"postgres://inbox@127.0.0.1:5432/inbox?password=" + secret,
		"host=127.0.0.1 user=inbox password=" + secret + " dbname=inbox",
	} {
		for _, cmd := range []string{"serve", "migrate", "simulate"} {
			var stdout bytes.Buffer
			err := run(t.Context(), []string{cmd, "-h"}, env(map[string]string{"DATABASE_URL": u}), nil, &stdout, io.Discard)
			if err != nil {
				t.Fatalf("%s -h: %v", cmd, err)
			}
			if strings.Contains(stdout.String(), secret) || !strings.Contains(stdout.String(), "xxxxx") {
				t.Fatalf("%s -h with %q shows the password or no redacted URL:\n%s", cmd, redactURL(u), stdout.String())
			}
		}
	}
	// The start-up log names the database without its password (the test
	// database's user has one).
	url := dbtest.URL(t)
	_, password, _ := strings.Cut(strings.Split(strings.TrimPrefix(url, "postgres://"), "@")[0], ":")
	if password == "" {
		t.Fatalf("test database URL %s has no password to hide", redactURL(url))
	}
	s := startServe(t, url, nil)
	if log := s.stderr.String(); strings.Contains(log, password) || !strings.Contains(log, `"database":"postgres://pgtdbuser:xxxxx@`) {
		t.Fatalf("start-up log shows the password or not the redacted URL:\n%s", log)
	}
}

// TestMaxConnectionsCapsOpenConnections: past MAX_CONNECTIONS, a new
// connection waits in the kernel's queue until one closes.
func TestMaxConnectionsCapsOpenConnections(t *testing.T) {
	t.Parallel()
	s := startServe(t, dbtest.URL(t), map[string]string{"MAX_CONNECTIONS": "2"})
	// startServe's readiness poll used a connection of its own; let it go.
	http.DefaultClient.CloseIdleConnections()

	healthz := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		poll.Until(t, "a held connection to be served", func() bool { return healthz(c) == nil })
		held = append(held, c)
	}
	third, err := net.Dial("tcp", s.addr) // the kernel accepts; the server does not
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	// Not served while two are open. The deadline only bounds the wait: a
	// server without the cap answers at once and fails the test.
	third.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if err := healthz(third); err == nil {
		t.Fatal("a third connection was served with MAX_CONNECTIONS=2")
	}
	third.Close()

	held[0].Close()
	fourth, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	fourth.SetDeadline(time.Now().Add(10 * time.Second))
	if err := healthz(fourth); err != nil {
		t.Fatalf("after one connection closed, a new one was not served: %v", err)
	}
}

// TestRecoversWithinSecondsAfterNetworkBlackhole: the database vanishes
// from the network without resetting connections (every open and new
// connection swallows what is sent), deliveries keep coming and get 503,
// then the network heals. The first delivery after that must succeed
// within 3 s, with the service's default connection settings. Before
// pgdial it took 16 s; before the store reset the pool on a lost batch,
// 13 ms to 4 s, as the pool found its dead idle connections one liveness
// ping (one second) at a time; now tens of milliseconds.
func TestRecoversWithinSecondsAfterNetworkBlackhole(t *testing.T) {
	t.Parallel()
	proxy, viaProxy := dbtest.NewProxy(t, dbtest.URL(t))
	s := startServe(t, viaProxy, map[string]string{"REQUEST_TIMEOUT": "1s"})
	client := &http.Client{Timeout: 10 * time.Second}
	deliver := func() (int, error) {
		req := signedRequest(t, s.addr, testToken, simulate.InboundForm(simulate.SMS, simulate.NewMessageSID(simulate.SMS), 1))
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// round sends 16 deliveries at once; each must get want.
	round := func(when string, want int) {
		t.Helper()
		statuses := make(chan int, 16)
		for range 16 {
			go func() { st, _ := deliver(); statuses <- st }()
		}
		for range 16 {
			if st := <-statuses; st != want {
				t.Fatalf("%s: %d, want %d", when, st, want)
			}
		}
	}
	round("before the outage", http.StatusOK) // the pool warm, as in production

	proxy.Blackhole()
	// Each delivery holds a pool slot until its 1 s deadline, and those
	// that dial hold one until the connect timeout; all answer 503.
	for range 3 {
		round("during the outage", http.StatusServiceUnavailable)
	}

	proxy.Heal()
	healed := time.Now()
	for {
		st, err := deliver()
		if err == nil && st == http.StatusOK {
			break
		}
		if time.Since(healed) > 5*time.Second {
			var other []string
			for l := range strings.Lines(s.stderr.String()) {
				if !strings.Contains(l, `"msg":"request"`) && !strings.Contains(l, `"msg":"stored new message"`) {
					other = append(other, l)
				}
			}
			t.Fatalf("no 200 within 5 s of the network healing (last: %d, %v); the log but its request lines:\n%s", st, err, strings.Join(other, ""))
		}
	}
	t.Logf("first 200 %s after the network healed", time.Since(healed).Round(time.Millisecond))
}
