package routing

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	"inbox/destination"
	"inbox/internal/text"
	"inbox/keyring"
	"inbox/queue"
	"inbox/store"
	"inbox/webhook"
)

// KindHTTP is the destination kind that posts each event to a URL.
const KindHTTP = destination.KindHTTP

// ErrPlaintextRefused is returned when a secret would be stored in the
// clear.
var ErrPlaintextRefused = errors.New("ENCRYPTION_KEY is not set: refusing to store a destination's secret and URL in the clear, " +
	"where anyone who can read the table or a backup could sign deliveries as this service; " +
	"set ENCRYPTION_KEY (32 bytes, e.g. openssl rand -base64 32), or pass -allow-plaintext-secrets")

// DefaultName is the destination FORWARD_URL and FORWARD_SECRET define, from
// the environment, matching every message: a deployment that upgrades keeps
// forwarding as before. No destination of the table may take the name.
const DefaultName = store.DefaultDestination

// ErrInvalid wraps every refusal of input: a name, URL, secret, rule,
// rate or note no destination may have. Its message names the flag (the
// CLI's; the API's fields have the same names) and the value.
var ErrInvalid = errors.New("invalid destination")

func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

// ErrExists is returned by Add for a name that is taken.
var ErrExists = errors.New("a destination with this name exists")

// Store is what the Manager keeps destinations in.
type Store interface {
	Destinations(ctx context.Context) ([]store.Destination, error)
	Destination(ctx context.Context, name string) (store.Destination, error)
	AddDestination(ctx context.Context, d store.Destination) (bool, error)
	UpdateDestination(ctx context.Context, name string, c store.DestinationChange) error
	PauseDestination(ctx context.Context, name, reason, detail string) (bool, error)
	ResumeDestination(ctx context.Context, name string) (bool, error)
	RemoveDestination(ctx context.Context, name string) error
	MatchingDestinations(ctx context.Context, account, to, service, event string) ([]string, error)
	AddBackfillProgress(ctx context.Context, id, read, queued int64) error
	FinishBackfill(ctx context.Context, id int64, errText string) error
	BackfillRun(ctx context.Context, id int64) (store.Backfill, error)
	Backfills(ctx context.Context, dest string, limit int32) ([]store.Backfill, error)
	DeliveryCounts(ctx context.Context, dest string, since time.Time, capAt int32) (map[string]int64, error)
}

// Deliveries are a destination's jobs in the queue (queue.Queue): its
// name is its queue.
type Deliveries interface {
	Backlog(ctx context.Context, queue string) (waiting int64, oldestDue time.Time, err error)
	Waiting(ctx context.Context, queue string) (int64, error)
	CancelWaiting(ctx context.Context, queue string) (int64, error)
	ReleaseHeld(ctx context.Context, queue string) (int64, error)
	Transact(ctx context.Context, fn func(*queue.Tx) error) error
	Backfill(ctx context.Context, p queue.BackfillPage) (queue.BackfilledPage, error)
}

// ErrPending is returned by Remove, without force, for a destination whose
// deliveries wait.
var ErrPending = errors.New("deliveries to this destination wait")

// Manager defines, changes and lists destinations: the one place their
// input is checked and their URL and secret sealed.
type Manager struct {
	Store Store
	// Deliveries, when set, lets Remove see and cancel what waits.
	Deliveries Deliveries
	Keys       *keyring.Keyring
	// AllowPlaintext lets a Manager without keys store secrets in the
	// clear (marked as such).
	AllowPlaintext bool
	// Attempts are the attempts of the delivery jobs a backfill queues
	// (FORWARD_MAX_ATTEMPTS; DefaultAttempts when 0).
	Attempts int16
	// Check, when set, is asked before a broker destination is added:
	// can it publish as defined, now (kinds.Check)? nil checks nothing.
	Check func(ctx context.Context, t destination.Target) error
}

// ErrCheckFailed wraps what Check found wrong with a new destination:
// nothing is stored (Definition.NoCheck skips the check, for a broker that
// is not up yet).
var ErrCheckFailed = errors.New("the destination cannot be published to")

// Definition is a new destination.
type Definition struct {
	Name   string
	URL    string // may carry credentials: sealed, and shown redacted
	Secret string // whsec_…
	// A broker's target (Target): its kind is its URL's scheme's.
	Target Target
	Rules  Rules
	Rate   float64 // deliveries a second; 0: unlimited
	// NoCheck skips Manager.Check.
	NoCheck bool
}

// The slots a destination's sealed values are bound to.
const (
	slotURL    = "url"
	slotSecret = "secret"
	slotCreds  = "creds"
)

func aad(name, slot string) []byte { return []byte("destinations/" + name + "/" + slot) }

// GenerateSecret returns a new Standard Webhooks secret: whsec_ and the
// base64 of 32 random bytes.
func GenerateSecret() string {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// CheckURL refuses a URL no kind of destination takes, naming it without
// its credentials, and returns the form shown everywhere: the password
// replaced (url.URL.Redacted).
func CheckURL(raw string) (shown string, err error) {
	_, shown, err = ParseURL(raw)
	return shown, err
}

// ParseURL is CheckURL, and the kind of destination the URL's scheme
// names: http and https an app (KindHTTP), nats and tls a NATS server
// (KindNATS), amqp and amqps a RabbitMQ broker (KindAMQP).
func ParseURL(raw string) (kind, shown string, err error) {
	u, err := url.Parse(raw)
	if err == nil && u.Host != "" {
		switch u.Scheme {
		case "http", "https":
			return destination.KindHTTP, u.Redacted(), nil
		case "nats", "tls":
			return destination.KindNATS, u.Redacted(), nil
		case "amqp", "amqps":
			return destination.KindAMQP, u.Redacted(), nil
		}
	}
	what := "it does not parse"
	if err == nil {
		what = "want http(s)://, nats:// (or tls://), or amqp(s):// and a host"
	}
	return "", "", fmt.Errorf("-url: not a destination's URL (%s)", what)
}

// CheckSecret refuses a secret that is not a Standard Webhooks secret.
func CheckSecret(secret string) error {
	if _, err := webhook.ParseSecret(secret); err != nil {
		return errors.New("the secret is not a Standard Webhooks secret: want whsec_ followed by the standard base64 of at least 24 random bytes (or -generate-secret)")
	}
	return nil
}

// CheckRate refuses a rate that is not a positive, finite number.
func CheckRate(rate float64) error {
	if err := store.CheckRate(rate); err != nil {
		return fmt.Errorf("-rate: %w", err)
	}
	return nil
}

func (m *Manager) seal(name, slot, value string) ([]byte, error) {
	if !m.Keys.Encrypts() && !m.AllowPlaintext {
		return nil, ErrPlaintextRefused
	}
	return m.Keys.Seal([]byte(value), aad(name, slot))
}

// Add stores a new destination, or says why not: a bad name, URL,
// secret, rule or rate (naming the flag), a name that is taken
// (ErrExists), no keys (ErrPlaintextRefused), or store.ErrTooMany.
func (m *Manager) Add(ctx context.Context, d Definition) error {
	if err := m.check(d); err != nil {
		return invalid(err)
	}
	if kind, _, _ := ParseURL(d.URL); m.Check != nil && !d.NoCheck && kind != destination.KindHTTP {
		t := destination.Target{Name: d.Name, Kind: kind, URL: d.URL, Secret: d.Secret, Subject: d.Target.Subject, Creds: d.Target.Creds,
			Exchange: d.Target.Exchange, RoutingKey: d.Target.RoutingKey}
		if err := m.Check(ctx, t); err != nil {
			return fmt.Errorf("%w: %s: %w (nothing stored; -no-check adds it anyway)", ErrCheckFailed, d.Name, err)
		}
	}
	return m.add(ctx, d)
}

// check refuses d's name, URL, secret, rules or rate.
func (m *Manager) check(d Definition) error {
	if err := CheckName(d.Name); err != nil {
		return err
	}
	kind, _, err := ParseURL(d.URL)
	if err != nil {
		return err
	}
	if err := d.Target.Check(kind); err != nil {
		return err
	}
	if err := CheckSecret(d.Secret); err != nil {
		return err
	}
	if d.Rate != 0 {
		if err := CheckRate(d.Rate); err != nil {
			return err
		}
	}
	return d.Rules.Check()
}

func (m *Manager) add(ctx context.Context, d Definition) error {
	if d.Name == DefaultName {
		return fmt.Errorf("%w: %s is the destination FORWARD_URL defines; choose another name", ErrExists, DefaultName)
	}
	kind, shown, _ := ParseURL(d.URL) // checked
	var rate *float64
	if d.Rate != 0 {
		rate = &d.Rate
	}
	sealedURL, err := m.seal(d.Name, slotURL, d.URL)
	if err != nil {
		return err
	}
	sealedSecret, err := m.seal(d.Name, slotSecret, d.Secret)
	if err != nil {
		return err
	}
	r := d.Rules.Normal()
	var sealedCreds []byte
	if len(d.Target.Creds) > 0 {
		if sealedCreds, err = m.seal(d.Name, slotCreds, string(d.Target.Creds)); err != nil {
			return err
		}
	}
	added, err := m.Store.AddDestination(ctx, store.Destination{Name: d.Name, Kind: kind, URLSealed: sealedURL, URLShown: shown,
		SecretSealed: sealedSecret, Accounts: r.Accounts, ToNumbers: r.ToNumbers, Services: r.Services, Events: r.Events, Rate: rate,
		Subject: d.Target.Subject, Exchange: d.Target.Exchange, RoutingKey: d.Target.RoutingKey, CredsSealed: sealedCreds})
	if err != nil {
		return err
	}
	if !added {
		return fmt.Errorf("%w: %s (change it with set, or remove it first)", ErrExists, d.Name)
	}
	return nil
}

// Change is what Set changes of a destination: a nil field stays.
type Change struct {
	URL       *string
	Accounts  []string
	ToNumbers []string
	Services  []string
	Events    []string
	Rate      *float64 // 0: unlimited
	// A broker's target: Subject for nats, Exchange and RoutingKey for
	// amqp.
	Subject    *string
	Exchange   *string
	RoutingKey *string
}

// Set changes the destination name as c says, checked as Add checks.
func (m *Manager) Set(ctx context.Context, name string, c Change) error {
	r := Rules{Accounts: c.Accounts, ToNumbers: c.ToNumbers, Services: c.Services, Events: c.Events}
	if err := r.Check(); err != nil {
		return invalid(err)
	}
	var sc store.DestinationChange
	if c.URL != nil || c.Subject != nil || c.Exchange != nil || c.RoutingKey != nil {
		if err := m.checkChange(ctx, name, c); err != nil {
			return err
		}
		sc.Subject, sc.Exchange, sc.RoutingKey = c.Subject, c.Exchange, c.RoutingKey
	}
	if c.URL != nil {
		shown, _ := CheckURL(*c.URL) // checked
		var err error
		if sc.URLSealed, err = m.seal(name, slotURL, *c.URL); err != nil {
			return err
		}
		sc.URLShown = &shown
	}
	if c.Rate != nil {
		if *c.Rate == 0 {
			sc.ClearRate = true
		} else if err := CheckRate(*c.Rate); err != nil {
			return invalid(err)
		} else {
			sc.Rate = c.Rate
		}
	}
	n := r.Normal()
	// Normal makes an empty list of a nil one: a rule not given stays.
	keep := func(given, norm []string) []string {
		if given == nil {
			return nil
		}
		return norm
	}
	sc.Accounts, sc.ToNumbers = keep(c.Accounts, n.Accounts), keep(c.ToNumbers, n.ToNumbers)
	sc.Services, sc.Events = keep(c.Services, n.Services), keep(c.Events, n.Events)
	if err := m.Store.UpdateDestination(ctx, name, sc); err != nil {
		return err
	}
	if c.Rate != nil && m.Deliveries != nil {
		// What the old rate held waits no longer than the new one says.
		if _, err := m.Deliveries.ReleaseHeld(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// MaxNote is the longest note a pause may carry, in bytes.
const MaxNote = 500

// Pause pauses the destination name by the operator, with an optional
// note; changed is false when it was paused already.
func (m *Manager) Pause(ctx context.Context, name, note string) (changed bool, err error) {
	if len(note) > MaxNote {
		return false, invalid(fmt.Errorf("-note: %d bytes, more than %d", len(note), MaxNote))
	}
	if err := text.Printable(note); err != nil {
		// Shown on the console and in logs: a NUL would be refused by
		// PostgreSQL, an override would disguise what the note says.
		return false, invalid(fmt.Errorf("-note: %w", err))
	}
	return m.Store.PauseDestination(ctx, name, "operator", note)
}

// Resume resumes the destination name; changed is false when it ran.
func (m *Manager) Resume(ctx context.Context, name string) (changed bool, err error) {
	return m.Store.ResumeDestination(ctx, name)
}

// Remove deletes the destination name. While its deliveries wait it
// refuses (ErrPending, saying how many) unless force, which cancels them
// first and returns how many jobs it cancelled. One enqueued between the
// cancel and the removal is cancelled when a worker takes it.
func (m *Manager) Remove(ctx context.Context, name string, force bool) (cancelled int64, err error) {
	if _, err := m.Store.Destination(ctx, name); err != nil {
		return 0, err
	}
	if m.Deliveries != nil {
		waiting, err := m.Deliveries.Waiting(ctx, name)
		if err != nil {
			return 0, err
		}
		if waiting > 0 && !force {
			return 0, fmt.Errorf("%w: %d to %s; -force cancels them and removes it", ErrPending, waiting, name)
		}
		if waiting > 0 {
			if cancelled, err = m.Deliveries.CancelWaiting(ctx, name); err != nil {
				return 0, err
			}
		}
	}
	return cancelled, m.Store.RemoveDestination(ctx, name)
}

// Summary is a destination as it is shown: never its secret, its URL
// only redacted.
type Summary struct {
	Name string
	Kind string
	URL  string
	// A broker's target; its credentials are never shown.
	Subject, Exchange, RoutingKey string
	Rules                         Rules
	Rate                          *float64
	PausedReason                  string
	PausedDetail                  string
	PausedAt                      *time.Time
	CreatedAt                     time.Time
	// Waiting counts the deliveries that wait or run, and Lag is how long
	// the longest-waiting due one has waited; both zero when the Manager
	// has no Deliveries.
	Waiting int64
	Lag     time.Duration
}

func summarize(d store.Destination) Summary {
	return Summary{Name: d.Name, Kind: d.Kind, URL: d.URLShown, Subject: d.Subject, Exchange: d.Exchange, RoutingKey: d.RoutingKey,
		Rules: Rules{Accounts: d.Accounts, ToNumbers: d.ToNumbers, Services: d.Services, Events: d.Events},
		Rate:  d.Rate, PausedReason: d.PausedReason, PausedDetail: d.PausedDetail, PausedAt: d.PausedAt, CreatedAt: d.CreatedAt}
}

// Get returns the destination name, or store.ErrNoDestination.
func (m *Manager) Get(ctx context.Context, name string) (Summary, error) {
	d, err := m.Store.Destination(ctx, name)
	if err != nil {
		return Summary{}, err
	}
	return m.withBacklog(ctx, summarize(d))
}

// withBacklog adds what waits for s, when the Manager can see it.
func (m *Manager) withBacklog(ctx context.Context, s Summary) (Summary, error) {
	if m.Deliveries == nil {
		return s, nil
	}
	waiting, oldest, err := m.Deliveries.Backlog(ctx, s.Name)
	if err != nil {
		return s, err
	}
	s.Waiting, s.Lag = waiting, max(0, time.Since(oldest))
	return s, nil
}

// List returns every destination, by name.
func (m *Manager) List(ctx context.Context) ([]Summary, error) {
	ds, err := m.Store.Destinations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Summary, len(ds))
	for i, d := range ds {
		if out[i], err = m.withBacklog(ctx, summarize(d)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Open returns where the destination's events go, its URL, secret and
// credentials opened with the keys: for the workers that deliver to it.
func (m *Manager) Open(d store.Destination) (destination.Target, error) {
	t := destination.Target{Name: d.Name, Kind: d.Kind, Subject: d.Subject, Exchange: d.Exchange, RoutingKey: d.RoutingKey}
	u, err := m.Keys.Open(d.URLSealed, aad(d.Name, slotURL))
	if err != nil {
		return t, fmt.Errorf("open the URL of destination %s: %w", d.Name, err)
	}
	s, err := m.Keys.Open(d.SecretSealed, aad(d.Name, slotSecret))
	if err != nil {
		return t, fmt.Errorf("open the secret of destination %s: %w", d.Name, err)
	}
	if len(d.CredsSealed) > 0 {
		if t.Creds, err = m.Keys.Open(d.CredsSealed, aad(d.Name, slotCreds)); err != nil {
			return t, fmt.Errorf("open the credentials of destination %s: %w", d.Name, err)
		}
	}
	t.URL, t.Secret = string(u), string(s)
	return t, nil
}

// Matching returns, by name, the destinations m goes to, as the database
// decides it for every stored message (destination_matches, held equal to
// Rules.Match by a test).
func (m *Manager) Matching(ctx context.Context, msg Message) ([]string, error) {
	return m.Store.MatchingDestinations(ctx, msg.AccountSID, msg.To, msg.MessagingServiceSID, msg.Event)
}

// Breaker is what a destination's circuit breaker pauses it with
// (dispatch.Pauser): a pause for a reason of the workers' own.
type Breaker struct {
	m    *Manager
	name string
}

// Breaker returns the breaker of the destination name.
func (m *Manager) Breaker(name string) Breaker { return Breaker{m: m, name: name} }

// Pause pauses the destination for reason; changed is false when it was
// paused already.
func (b Breaker) Pause(ctx context.Context, reason, detail string) (changed bool, err error) {
	return b.m.Store.PauseDestination(ctx, b.name, reason, detail)
}

// RecentCap bounds the messages Recent reads.
const RecentCap = 100_000

// Recent counts the destination name's deliveries of the messages
// received in the last d, by state (store.Delivery states), reading at
// most RecentCap messages.
func (m *Manager) Recent(ctx context.Context, name string, d time.Duration) (map[string]int64, error) {
	return m.Store.DeliveryCounts(ctx, name, time.Now().Add(-d), RecentCap)
}
