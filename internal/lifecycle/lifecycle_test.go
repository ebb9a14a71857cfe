package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"inbox/internal/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records the order in which parts start and stop.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, s)
}

// part serves until its context ends, recording both ends; stopErr is
// what it returns then.
func part(j *journal, name string, stopErr error) func(context.Context, func()) error {
	return func(ctx context.Context, ready func()) error {
		j.add("start " + name)
		ready()
		<-ctx.Done()
		j.add("stop " + name)
		return stopErr
	}
}

func TestPartsStopInReverseOrderAndEveryErrorIsReported(t *testing.T) {
	t.Parallel()
	j := &journal{}
	var g lifecycle.Group
	g.Add("a", part(j, "a", nil))
	g.Add("b", part(j, "b", errors.New("b's shutdown failed")))
	g.Add("c", part(j, "c", errors.New("c's shutdown failed")))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	cancel()
	err := <-done
	if want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}; !slices.Equal(j.lines, want) {
		t.Fatalf("order %v, want %v", j.lines, want)
	}
	if err == nil || !strings.Contains(err.Error(), "b: b's shutdown failed") || !strings.Contains(err.Error(), "c: c's shutdown failed") {
		t.Fatalf("err = %v, want both shutdown errors", err)
	}
}

func TestAPartThatFailsToStartStopsThoseBeforeIt(t *testing.T) {
	t.Parallel()
	j := &journal{}
	var g lifecycle.Group
	g.Add("a", part(j, "a", nil))
	g.Add("b", func(context.Context, func()) error { return errors.New("port in use") })
	g.Add("c", part(j, "c", nil))
	err := g.Run(t.Context())
	if want := []string{"start a", "stop a"}; !slices.Equal(j.lines, want) {
		t.Fatalf("order %v, want %v: c never starts, a is stopped", j.lines, want)
	}
	if err == nil || err.Error() != "start b: port in use" {
		t.Fatalf("err = %v", err)
	}
}

func TestAPartThatStopsByItselfStopsTheGroup(t *testing.T) {
	t.Parallel()
	j := &journal{}
	var g lifecycle.Group
	g.Add("a", part(j, "a", nil))
	g.Add("b", func(ctx context.Context, ready func()) error { ready(); return nil })
	err := g.Run(t.Context())
	if want := []string{"start a", "stop a"}; !slices.Equal(j.lines, want) {
		t.Fatalf("order %v, want %v", j.lines, want)
	}
	if err == nil || err.Error() != "b stopped by itself" {
		t.Fatalf("err = %v, want b named", err)
	}
}
