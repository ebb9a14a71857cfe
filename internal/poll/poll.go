// Package poll waits, in tests, for a condition that another goroutine or
// process brings about: it checks the condition itself, so a test never
// sleeps for a guessed time to synchronise.
package poll

import (
	"testing"
	"time"
)

// Until checks cond every 10 ms until it holds, and fails the test if it
// does not within 15 s; what names the condition in the failure.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, 15*time.Second, what, cond)
}

// Within is Until with a limit of d, for conditions that take longer by
// design (River's rescuer looks every 30 s).
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
