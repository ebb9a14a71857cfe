package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
)

// MaxDestinations is how many destinations a deployment may have: each is
// a River queue, a metric label and a console row, so they are few by
// design, and AddDestination refuses one more with ErrTooMany.
const MaxDestinations = 100

// ErrNoDestination is returned for a name no destination has; it wraps
// ErrNotFound.
var ErrNoDestination = fmt.Errorf("no such destination: %w", ErrNotFound)

// ErrTooMany is returned by AddDestination when MaxDestinations exist.
var ErrTooMany = fmt.Errorf("there are %d destinations already, the most a deployment may have", MaxDestinations)

// Destination is a row of destinations: its URL and secret as stored,
// sealed by package keyring, and its rules (an empty list matches
// anything).
type Destination struct {
	ID           int16
	Name         string
	Kind         string
	URLSealed    []byte
	URLShown     string // the URL with any credentials replaced
	SecretSealed []byte
	Accounts     []string
	ToNumbers    []string
	Services     []string
	Events       []string
	Rate         *float64 // deliveries a second; nil: unlimited
	PausedReason string   // "" while it runs
	PausedDetail string
	PausedAt     *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// A broker's target (migration 00018): the JetStream subject of kind
	// nats, and its sealed credentials file if any; the exchange and
	// routing key of kind amqp. Empty for kind http.
	Subject     string
	Exchange    string
	RoutingKey  string
	CredsSealed []byte
}

func toDestination(d db.Destination) Destination {
	return Destination{ID: d.ID, Name: d.Name, Kind: d.Kind, URLSealed: d.UrlSealed, URLShown: d.UrlShown,
		SecretSealed: d.SecretSealed, Accounts: d.Accounts, ToNumbers: d.ToNumbers, Services: d.Services, Events: d.Events,
		Rate: d.Rate, PausedReason: deref(d.PausedReason), PausedDetail: deref(d.PausedDetail), PausedAt: d.PausedAt,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		Subject: deref(d.Subject), Exchange: deref(d.Exchange), RoutingKey: d.RoutingKey, CredsSealed: d.CredsSealed}
}

// Destinations returns every destination, by name.
func (s *Store) Destinations(ctx context.Context) ([]Destination, error) {
	rows, err := s.q.ListDestinations(ctx, MaxDestinations+1)
	if err != nil {
		return nil, fail("list destinations", err, ErrNoDestination)
	}
	ds := make([]Destination, len(rows))
	for i, r := range rows {
		ds[i] = toDestination(r)
	}
	return ds, nil
}

// Destination returns the destination name, or ErrNoDestination.
func (s *Store) Destination(ctx context.Context, name string) (Destination, error) {
	d, err := s.q.GetDestination(ctx, name)
	if err != nil {
		return Destination{}, fail("get destination "+name, err, ErrNoDestination)
	}
	return toDestination(d), nil
}

// AddDestination stores d (its ID and times are the database's), unless
// its name is taken (added false) or MaxDestinations exist (ErrTooMany).
func (s *Store) AddDestination(ctx context.Context, d Destination) (added bool, err error) {
	err = pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.LockDestinations(ctx); err != nil {
			return err
		}
		n, err := q.CountDestinations(ctx)
		if err != nil {
			return err
		}
		if n >= MaxDestinations {
			return ErrTooMany
		}
		_, err = q.InsertDestination(ctx, db.InsertDestinationParams{Name: d.Name, Kind: d.Kind,
			UrlSealed: d.URLSealed, UrlShown: d.URLShown, SecretSealed: d.SecretSealed, Accounts: nonNil(d.Accounts),
			ToNumbers: nonNil(d.ToNumbers), Services: nonNil(d.Services), Events: nonNil(d.Events), Rate: d.Rate,
			Subject: orNil(d.Subject), Exchange: orNil(d.Exchange), RoutingKey: d.RoutingKey, CredsSealed: d.CredsSealed})
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrTooMany):
		return false, err
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil // the name is taken
	}
	return false, fail("add destination "+d.Name, err, ErrNoDestination)
}

// nonNil makes a missing rule the empty list the table holds.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DestinationChange is what UpdateDestination changes: a nil field stays.
type DestinationChange struct {
	URLSealed []byte
	URLShown  *string
	Accounts  []string
	ToNumbers []string
	Services  []string
	Events    []string
	// Rate sets the rate; ClearRate makes it unlimited.
	Rate      *float64
	ClearRate bool
	// A broker's target: nil stays.
	Subject    *string
	Exchange   *string
	RoutingKey *string
}

// UpdateDestination changes the destination name as c says, or returns
// ErrNoDestination.
func (s *Store) UpdateDestination(ctx context.Context, name string, c DestinationChange) error {
	_, err := s.q.UpdateDestination(ctx, db.UpdateDestinationParams{Name: name, UrlSealed: c.URLSealed, UrlShown: c.URLShown,
		Accounts: c.Accounts, ToNumbers: c.ToNumbers, Services: c.Services, Events: c.Events, Rate: c.Rate, ClearRate: c.ClearRate,
		Subject: c.Subject, Exchange: c.Exchange, RoutingKey: c.RoutingKey})
	if err != nil {
		return fail("update destination "+name, err, ErrNoDestination)
	}
	return nil
}

// PauseDestination pauses the destination name for reason, unless it is
// paused already (changed false: the first reason stands).
func (s *Store) PauseDestination(ctx context.Context, name, reason, detail string) (changed bool, err error) {
	changed, err = s.q.PauseDestination(ctx, db.PauseDestinationParams{Name: name, Reason: reason, Detail: detail})
	if err != nil {
		return false, fail("pause destination "+name, err, ErrNoDestination)
	}
	return changed, nil
}

// ResumeDestination resumes the destination name (changed false: it was
// not paused).
func (s *Store) ResumeDestination(ctx context.Context, name string) (changed bool, err error) {
	changed, err = s.q.ResumeDestination(ctx, name)
	if err != nil {
		return false, fail("resume destination "+name, err, ErrNoDestination)
	}
	return changed, nil
}

// RemoveDestination deletes the destination name, or returns
// ErrNoDestination.
func (s *Store) RemoveDestination(ctx context.Context, name string) error {
	n, err := s.q.DeleteDestination(ctx, name)
	if err != nil {
		return fail("remove destination "+name, err, ErrNoDestination)
	}
	if n == 0 {
		return fmt.Errorf("remove destination %s: %w", name, ErrNoDestination)
	}
	return nil
}

// MatchingDestinations returns, by name, the destinations whose rules a
// message with these fields matches (the SQL function destination_matches);
// service "" is a message without a Messaging Service.
func (s *Store) MatchingDestinations(ctx context.Context, account, to, service, event string) ([]string, error) {
	var svc *string
	if service != "" {
		svc = &service
	}
	names, err := s.q.MatchingDestinations(ctx, db.MatchingDestinationsParams{AccountSID: account, ToAddress: to,
		MessagingServiceSID: svc, Event: event})
	if err != nil {
		return nil, fail("match destinations", err, ErrNoDestination)
	}
	return names, nil
}

// DestinationControl returns the destination name's controls, as the
// workers apply them: ForwardingControl for one destination.
func (s *Store) DestinationControl(ctx context.Context, name string) (Control, error) {
	d, err := s.Destination(ctx, name)
	if err != nil {
		return Control{}, err
	}
	return Control{Rate: d.Rate, PausedReason: d.PausedReason, PausedDetail: d.PausedDetail, PausedAt: d.PausedAt}, nil
}

// ReserveDestinationSlot is ReserveForwardSlot under the destination
// name's rate.
func (s *Store) ReserveDestinationSlot(ctx context.Context, name string, maxAhead time.Duration) (reserved bool, wait time.Duration, err error) {
	r, err := s.q.ReserveDestinationSlot(ctx, db.ReserveDestinationSlotParams{Name: name, MaxAheadSeconds: maxAhead.Seconds()})
	if err != nil {
		return false, 0, fail("reserve a delivery slot of "+name, err, ErrNoDestination)
	}
	return r.Reserved, time.Duration(r.WaitSeconds * float64(time.Second)), nil
}
