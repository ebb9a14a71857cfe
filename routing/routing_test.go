package routing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"inbox/destination"
	"inbox/internal/dbtest"
	"inbox/keyring"
	"inbox/routing"
	"inbox/store"
)

func newManager(t *testing.T, conns int32) (*routing.Manager, *store.Store) {
	t.Helper()
	keys, err := keyring.Parse("0000000000000000000000000000000000000000000000000000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(dbtest.Pool(t, conns))
	return &routing.Manager{Store: st, Keys: keys}, st
}

// TestSecretAndCredentialsAreSealed: what the table holds of a destination
// shows neither its secret nor its URL's password, and opens to both.
func TestSecretAndCredentialsAreSealed(t *testing.T) {
	m, st := newManager(t, 2)
	secret := routing.GenerateSecret()
	url := "https://bot:hunter2hunter2@orders.example/hook"
	if err := m.Add(t.Context(), routing.Definition{Name: "orders", URL: url, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	d, err := st.Destination(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	for _, stored := range [][]byte{d.URLSealed, d.SecretSealed, []byte(d.URLShown)} {
		if bytes.Contains(stored, []byte("hunter2")) || bytes.Contains(stored, []byte(secret[6:])) {
			t.Errorf("the table holds a secret in the clear: %q", stored)
		}
	}
	got, err := m.Open(d)
	if err != nil || got.URL != url || got.Secret != secret || got.Kind != routing.KindHTTP {
		t.Errorf("Open = %q, %q, %q, %v; want what was added", got.Kind, got.URL, got.Secret, err)
	}
	if err := m.Add(t.Context(), routing.Definition{Name: "orders", URL: url, Secret: secret}); !errors.Is(err, routing.ErrExists) {
		t.Errorf("adding a name twice: %v, want ErrExists", err)
	}
	plain := &routing.Manager{Store: st, Keys: &keyring.Keyring{}}
	if err := plain.Add(t.Context(), routing.Definition{Name: "other", URL: url, Secret: secret}); !errors.Is(err, routing.ErrPlaintextRefused) {
		t.Errorf("adding without a key: %v, want ErrPlaintextRefused", err)
	}
}

// TestConcurrentAddsKeepTheCapAndTheNames: 40 adds at once of 20 names,
// with room for 10 more destinations, store exactly 10, each name at most
// once, and the others say why.
func TestConcurrentAddsKeepTheCapAndTheNames(t *testing.T) {
	m, st := newManager(t, 16)
	ctx := t.Context()
	secret := routing.GenerateSecret()
	for i := range store.MaxDestinations - 10 {
		if err := m.Add(ctx, routing.Definition{Name: fmt.Sprintf("app-%03d", i), URL: "https://app.example/", Secret: secret}); err != nil {
			t.Fatal(err)
		}
	}
	var added, exists, full atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			err := m.Add(context.WithoutCancel(ctx), routing.Definition{Name: fmt.Sprintf("new-%02d", i%20), URL: "https://app.example/", Secret: secret})
			switch {
			case err == nil:
				added.Add(1)
			case errors.Is(err, routing.ErrExists):
				exists.Add(1)
			case errors.Is(err, store.ErrTooMany):
				full.Add(1)
			default:
				t.Errorf("add: %v", err)
			}
		})
	}
	wg.Wait()
	all, err := st.Destinations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if added.Load() != 10 || len(all) != store.MaxDestinations {
		t.Errorf("added %d (%d exist, %d refused as too many), table holds %d; want 10 added and %d in all",
			added.Load(), exists.Load(), full.Load(), len(all), store.MaxDestinations)
	}
	seen := map[string]bool{}
	for _, d := range all {
		if seen[d.Name] {
			t.Errorf("%s stored twice", d.Name)
		}
		seen[d.Name] = true
	}
}

// TestSetChangesOnlyWhatIsGiven: a rule not given stays, one given empty
// clears, a rate of 0 is unlimited, and pause keeps its first reason.
func TestSetChangesOnlyWhatIsGiven(t *testing.T) {
	m, st := newManager(t, 2)
	ctx := t.Context()
	if err := m.Add(ctx, routing.Definition{Name: "bot", URL: "https://bot.example/", Secret: routing.GenerateSecret(), Rate: 5,
		Rules: routing.Rules{Accounts: []string{acA}, ToNumbers: []string{"+15550000002", "+15550000001", "+15550000001"}}}); err != nil {
		t.Fatal(err)
	}
	zero := 0.0
	if err := m.Set(ctx, "bot", routing.Change{ToNumbers: []string{}, Events: []string{routing.EventStatus}, Rate: &zero}); err != nil {
		t.Fatal(err)
	}
	d, err := st.Destination(ctx, "bot")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Accounts) != 1 || len(d.ToNumbers) != 0 || len(d.Events) != 1 || d.Rate != nil {
		t.Errorf("after set: accounts %v, to %v, events %v, rate %v; want the account kept, numbers cleared, status, unlimited",
			d.Accounts, d.ToNumbers, d.Events, d.Rate)
	}
	if err := m.Set(ctx, "nope", routing.Change{}); !errors.Is(err, store.ErrNoDestination) {
		t.Errorf("set of a missing destination: %v", err)
	}
	if changed, err := m.Pause(ctx, "bot", "deploying"); err != nil || !changed {
		t.Fatalf("pause: %v, %v", changed, err)
	}
	if changed, err := m.Pause(ctx, "bot", "again"); err != nil || changed {
		t.Errorf("second pause: changed %v, %v; want unchanged", changed, err)
	}
	if d, _ := st.Destination(ctx, "bot"); d.PausedDetail != "deploying" || d.PausedReason != "operator" {
		t.Errorf("pause reason %q detail %q; want the first", d.PausedReason, d.PausedDetail)
	}
	if changed, err := m.Resume(ctx, "bot"); err != nil || !changed {
		t.Errorf("resume: %v, %v", changed, err)
	}
}

// TestTheDatabaseMatchesAsRulesDo: for every message of a grid of
// accounts, numbers, services and events, the destinations the database
// fans it out to (destination_matches) are exactly those whose Rules.Match
// says so, over destinations with every combination of empty and set
// rules.
func TestTheDatabaseMatchesAsRulesDo(t *testing.T) {
	m, _ := newManager(t, 2)
	ctx := t.Context()
	accounts := []string{acA, acB}
	numbers := []string{"+15550000001", "whatsapp:+15550000001", "12345"}
	services := []string{mg, ""}
	pick := func(bits, bit int, values []string) []string {
		if bits&(1<<bit) == 0 {
			return nil
		}
		return values
	}
	rules := map[string]routing.Rules{}
	for bits := range 16 {
		r := routing.Rules{Accounts: pick(bits, 0, []string{acA}), ToNumbers: pick(bits, 1, []string{"+15550000001", "12345"}),
			Services: pick(bits, 2, []string{mg}), Events: pick(bits, 3, []string{routing.EventStatus})}
		name := fmt.Sprintf("rules-%02d", bits)
		rules[name] = r
		if err := m.Add(ctx, routing.Definition{Name: name, URL: "https://app.example/", Secret: routing.GenerateSecret(), Rules: r}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range accounts {
		for _, n := range numbers {
			for _, s := range services {
				for _, e := range routing.Events() {
					msg := routing.Message{AccountSID: a, To: n, MessagingServiceSID: s, Event: e}
					got, err := m.Matching(ctx, msg)
					if err != nil {
						t.Fatal(err)
					}
					var want []string
					for bits := range 16 {
						name := fmt.Sprintf("rules-%02d", bits)
						if rules[name].Match(msg) {
							want = append(want, name)
						}
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%+v: the database matches %v, Rules.Match %v", msg, got, want)
					}
				}
			}
		}
	}
}

// TestABrokersCredentialsAreSealed: a NATS credentials file is sealed with
// the URL and secret, and opens to what was given; the target is kept as
// given; a broker destination that cannot be published to is not stored.
func TestABrokersCredentialsAreSealed(t *testing.T) {
	m, st := newManager(t, 2)
	creds := []byte("-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5In0.hunter2jwt\n------END NATS USER JWT------\n")
	refused := errors.New("no stream captures subject")
	m.Check = func(_ context.Context, tg destination.Target) error {
		if tg.Subject == "nowhere.messages" {
			return refused
		}
		return nil
	}
	d := routing.Definition{Name: "bus", URL: "nats://inbox:hunter2@nats.internal:4222", Secret: routing.GenerateSecret(),
		Target: routing.Target{Subject: "nowhere.messages", Creds: creds}}
	if err := m.Add(t.Context(), d); !errors.Is(err, routing.ErrCheckFailed) || !errors.Is(err, refused) {
		t.Fatalf("Add of a subject the check refuses: %v, want ErrCheckFailed", err)
	}
	if _, err := st.Destination(t.Context(), "bus"); !errors.Is(err, store.ErrNoDestination) {
		t.Fatalf("a refused destination was stored: %v", err)
	}
	d.Target.Subject = "inbox.messages"
	if err := m.Add(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	row, err := st.Destination(t.Context(), "bus")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(row.CredsSealed, []byte("hunter2")) || bytes.Contains(row.URLSealed, []byte("hunter2")) || strings.Contains(row.URLShown, "hunter2") {
		t.Error("the table holds the broker's credentials in the clear")
	}
	got, err := m.Open(row)
	if err != nil || got.Kind != "nats" || got.Subject != "inbox.messages" || !bytes.Equal(got.Creds, creds) || got.URL != d.URL {
		t.Fatalf("Open = %+v, %v; want what was added", got, err)
	}
	if err := m.Set(t.Context(), "bus", routing.Change{URL: ptr("https://app.example/hook")}); !errors.Is(err, routing.ErrInvalid) {
		t.Errorf("set -url to another kind: %v, want refused", err)
	}
	if err := m.Set(t.Context(), "bus", routing.Change{Subject: ptr("inbox.sms")}); err != nil {
		t.Fatal(err)
	}
	if row, _ := st.Destination(t.Context(), "bus"); row.Subject != "inbox.sms" {
		t.Errorf("subject after set: %q", row.Subject)
	}
}

func ptr(s string) *string { return &s }
