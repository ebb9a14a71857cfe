// Package lifecycle starts the parts of a process in order and stops them
// in reverse, the one way every part of serve and work starts and stops:
// each part is a Run function that serves until its context ends, says
// when it is ready, and returns only once everything it started has
// stopped. Nothing is left running when Group.Run returns, and every
// part's shutdown error is reported.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Part is one part of a process.
type Part struct {
	// Name names the part in errors.
	Name string
	// Run runs the part until ctx ends, then stops it and returns. It
	// calls ready once it serves (a listener bound, workers started), so
	// the parts after it start only then; a Run that returns before
	// calling ready failed to start. A nil error after ctx ended is a
	// clean stop.
	Run func(ctx context.Context, ready func()) error
}

// Group is the parts of a process, in the order they start.
type Group struct {
	parts []Part
}

// Add appends a part: it starts after those added before it, and stops
// before them.
func (g *Group) Add(name string, run func(ctx context.Context, ready func()) error) {
	g.parts = append(g.parts, Part{Name: name, Run: run})
}

// running is a started part.
type running struct {
	name string
	stop context.CancelFunc
	done chan error // its Run's result, once
}

// Run starts the parts in order, each once the one before it is ready,
// and runs them until ctx ends or one of them returns. Then it stops the
// started parts in reverse order, each after the one after it has
// returned, and returns every error: a part that failed to start, one
// that stopped by itself, and every shutdown error.
func (g *Group) Run(ctx context.Context) error {
	var started []running
	var errs []error
	returned := make(chan int, len(g.parts)) // index of a part whose Run returned
	for _, p := range g.parts {
		r, err := start(ctx, p, len(started), returned)
		if err != nil {
			errs = append(errs, err)
			break
		}
		started = append(started, r)
	}
	self := -1 // the part that returned by itself, if any
	if len(errs) == 0 {
		select {
		case <-ctx.Done():
		case self = <-returned:
		}
	}
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		r.stop()
		err := <-r.done
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
		case i == self:
			errs = append(errs, fmt.Errorf("%s stopped by itself", r.name))
		}
	}
	return errors.Join(errs...)
}

// start runs p and waits until it is ready or has returned; i is its
// index, sent on returned when its Run returns.
func start(parent context.Context, p Part, i int, returned chan int) (running, error) {
	// Not parent itself: a part stops when the group stops it, in order,
	// not when the signal arrives.
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		err := p.Run(ctx, func() { once.Do(func() { close(ready) }) })
		done <- err
		returned <- i
	}()
	select {
	case <-ready:
		return running{name: p.Name, stop: cancel, done: done}, nil
	case err := <-done:
		cancel()
		<-returned
		if err == nil {
			err = errors.New("returned before it was ready")
		}
		return running{}, fmt.Errorf("start %s: %w", p.Name, err)
	}
}
