package routing_test

import (
	"testing"

	"inbox/internal/dbtest"
)

// TestMain drops the template database these tests cloned theirs from, and
// fails the run if a passing test left its database or a goroutine behind.
func TestMain(m *testing.M) { dbtest.Main(m) }
