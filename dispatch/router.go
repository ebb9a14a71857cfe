package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"inbox/destination"
	"inbox/job"
	"inbox/queue"
	"inbox/store"
)

// DefaultRouteRefresh is how often a process rereads the destinations: one
// added reaches its workers within this, one changed (its URL, secret) is
// rebuilt, one removed stops.
const DefaultRouteRefresh = 5 * time.Second

// Router runs the delivery jobs of every destination: each job names its
// destination ("" for FORWARD_URL's), and the router hands it to that
// destination's Dispatcher, so each has its own gate (pause, rate,
// breaker) and its own queue. It keeps the destinations of the table in
// step with it (Run).
type Router struct {
	cfg RouterConfig
	mu  sync.RWMutex
	// routes: name → its dispatcher; built: name → the row it was built
	// from, to tell a changed destination.
	routes map[string]*Dispatcher
	built  map[string]time.Time
}

// RouterConfig is what NewRouter needs.
type RouterConfig struct {
	Logger *slog.Logger
	// Default is FORWARD_URL's dispatcher; nil when it is not set.
	Default *Dispatcher
	// List reads the destinations of the table; Build makes the
	// dispatcher of one; AddQueue has the queue fetch the jobs of a new
	// one (its name is its queue).
	List     func(ctx context.Context) ([]store.Destination, error)
	Build    func(d store.Destination) (*Dispatcher, error)
	AddQueue func(name string) error
	// Refresh: see DefaultRouteRefresh.
	Refresh time.Duration
}

// NewRouter returns a router with the default destination, if any; Sync
// adds the table's.
func NewRouter(cfg RouterConfig) *Router {
	r := &Router{cfg: cfg, routes: map[string]*Dispatcher{}, built: map[string]time.Time{}}
	if cfg.Default != nil {
		r.routes[""] = cfg.Default
	}
	return r
}

// Register registers the delivery jobs' workers: a message's own
// (job.Message), a batch's (job.Messages) and a status change's
// (job.Status), for every destination.
func (r *Router) Register(ws *queue.Workers) {
	queue.Handle(ws, func(ctx context.Context, j *queue.Job[job.Message]) error {
		d, err := r.route(ctx, j.Args.Destination)
		if err != nil {
			return err
		}
		return d.forwardMessage(ctx, j)
	})
	queue.Handle(ws, func(ctx context.Context, j *queue.Job[job.Messages]) error {
		d, err := r.route(ctx, j.Args.Destination)
		if err != nil {
			return err
		}
		return d.forwardBatch(ctx, j)
	})
	queue.Handle(ws, func(ctx context.Context, j *queue.Job[job.Status]) error {
		d, err := r.route(ctx, j.Args.Destination)
		if err != nil {
			return err
		}
		return d.forwardStatus(ctx, j)
	})
}

// ErrNoRoute is a job's whose destination is not defined: removed since
// it was enqueued, or FORWARD_URL unset. Its job is cancelled.
var ErrNoRoute = errors.New("no such destination")

// route returns the dispatcher of the destination name, reading the table
// again first when it is not known (a destination added moments ago).
func (r *Router) route(ctx context.Context, name string) (*Dispatcher, error) {
	if d := r.get(name); d != nil {
		return d, nil
	}
	if name != "" {
		if err := r.Sync(ctx); err != nil {
			return nil, err
		}
		if d := r.get(name); d != nil {
			return d, nil
		}
	}
	if name == "" {
		name = "default (FORWARD_URL is not set)"
	}
	return nil, destination.Permanent(fmt.Errorf("%w: %s", ErrNoRoute, name))
}

func (r *Router) get(name string) *Dispatcher {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.routes[name]
}

// Sync reads the destinations and brings the routes in step: a new one is
// built and its queue added, a changed one rebuilt, a removed one dropped.
// A destination that cannot be built (its secret sealed with a key this
// process lacks) is logged and left out, so the others run.
func (r *Router) Sync(ctx context.Context) error {
	ds, err := r.cfg.List(ctx)
	if err != nil {
		return fmt.Errorf("read destinations: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, d := range ds {
		seen[d.Name] = true
		if at, ok := r.built[d.Name]; ok && at.Equal(d.UpdatedAt) {
			continue
		}
		dp, err := r.cfg.Build(d)
		if err != nil {
			r.cfg.Logger.ErrorContext(ctx, "destination cannot be delivered to; its deliveries wait", "destination", d.Name, "err", err)
			continue
		}
		if _, known := r.built[d.Name]; !known {
			if err := r.cfg.AddQueue(d.Name); err != nil {
				r.cfg.Logger.ErrorContext(ctx, "destination's queue cannot be added; its deliveries wait", "destination", d.Name, "err", err)
				continue
			}
			r.cfg.Logger.InfoContext(ctx, "delivering to destination", "destination", d.Name, "url", d.URLShown)
		}
		if old := r.routes[d.Name]; old != nil {
			// Its in-flight deliveries fail and are retried by the new one.
			r.close(ctx, d.Name, old)
		}
		r.routes[d.Name], r.built[d.Name] = dp, d.UpdatedAt
	}
	for name := range r.built {
		if !seen[name] {
			r.close(ctx, name, r.routes[name])
			delete(r.routes, name)
			delete(r.built, name)
			r.cfg.Logger.InfoContext(ctx, "destination removed: its waiting deliveries are cancelled when taken", "destination", name)
		}
	}
	return nil
}

// close closes what the dispatcher of the destination name holds open.
func (r *Router) close(ctx context.Context, name string, d *Dispatcher) {
	if d == nil {
		return
	}
	if err := d.Close(); err != nil {
		r.cfg.Logger.WarnContext(ctx, "closing a destination's connection failed", "destination", name, "err", err)
	}
}

// Hold holds the destinations' connections (a broker's) open until ctx
// ends, then closes them: a lifecycle part started before the workers, so
// it stops after them and no delivery loses its connection mid-publish.
func (r *Router) Hold(ctx context.Context, ready func()) error {
	ready()
	<-ctx.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, d := range r.routes {
		r.close(context.WithoutCancel(ctx), name, d)
	}
	return nil
}

// Run rereads the destinations every Refresh until ctx ends: a lifecycle
// part. A failed read is logged; the routes as they were stand.
func (r *Router) Run(ctx context.Context, ready func()) error {
	ready()
	t := time.NewTicker(cmp.Or(r.cfg.Refresh, DefaultRouteRefresh))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.WarnContext(ctx, "rereading the destinations failed; the routes as they were stand", "err", err)
			}
		}
	}
}

// DestinationControls are a destination's controls in the store.
type DestinationControls interface {
	DestinationControl(ctx context.Context, name string) (store.Control, error)
	ReserveDestinationSlot(ctx context.Context, name string, maxAhead time.Duration) (bool, time.Duration, error)
}

// ForDestination returns st as the workers of the destination name read
// it: the same payloads, that destination's controls.
func ForDestination(st Store, controls DestinationControls, name string) Store {
	return destinationStore{Store: st, controls: controls, name: name}
}

type destinationStore struct {
	Store
	controls DestinationControls
	name     string
}

func (s destinationStore) ForwardingControl(ctx context.Context) (store.Control, error) {
	return s.controls.DestinationControl(ctx, s.name)
}

func (s destinationStore) ReserveForwardSlot(ctx context.Context, maxAhead time.Duration) (bool, time.Duration, error) {
	return s.controls.ReserveDestinationSlot(ctx, s.name, maxAhead)
}
