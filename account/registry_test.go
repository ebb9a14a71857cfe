package account_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"testing"
	"time"

	"inbox/account"
	"inbox/internal/dbtest"
	"inbox/keyring"
	"inbox/store"
)

func newSID() string {
	var b [16]byte
	rand.Read(b[:])
	return "AC" + hex.EncodeToString(b[:])
}

// TestUnknownSIDsAreRememberedWithinABound: with a lookup budget larger
// than the flood, every unknown sid is looked up once and refused, and at
// most MaxNegative of them are remembered; an account added later is found.
func TestUnknownSIDsAreRememberedWithinABound(t *testing.T) {
	t.Parallel()
	st := store.New(dbtest.Pool(t, 2))
	keys, _ := keyring.Parse("")
	reg := account.NewRegistry(account.RegistryConfig{
		Store: st, Keys: keys, Logger: slog.New(slog.DiscardHandler),
		MaxNegative: 100, LookupsPerSecond: 1e6, LookupBurst: 1e6,
	})
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	sids := make([]string, 1000)
	for i := range sids {
		sids[i] = newSID()
		if _, err := reg.Validator(t.Context(), sids[i]); !errors.Is(err, account.ErrUnknown) {
			t.Fatalf("unknown sid: %v, want ErrUnknown", err)
		}
	}
	if accounts, _, unknown := reg.Sizes(); accounts != 0 || unknown != 100 {
		t.Fatalf("held %d accounts and %d unknown sids, want 0 and 100", accounts, unknown)
	}

	// An account added by another process, whose notification this
	// Registry has not seen (it is not listening), is found on its first
	// delivery, even after being remembered as unknown.
	m := &account.Manager{Store: st, Keys: keys, AllowPlaintext: true}
	if err := m.Add(t.Context(), sids[0], "0123456789abcdef0123456789abcdef", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Validator(t.Context(), sids[0]); !errors.Is(err, account.ErrUnknown) {
		t.Fatalf("a sid remembered as unknown: %v, want ErrUnknown until its memory expires or a notification comes", err)
	}
	if err := m.Add(t.Context(), sids[500], "0123456789abcdef0123456789abcdef", ""); err != nil {
		t.Fatal(err)
	}
	if v, err := reg.Validator(t.Context(), sids[500]); err != nil || v == nil {
		t.Fatalf("an account added since, not remembered as unknown: %v", err)
	}
}

// TestExpiredUnknownSIDsMakeRoom: once the memory of unknown sids is full
// of expired ones, a new unknown sid is remembered again, not looked up on
// every delivery.
func TestExpiredUnknownSIDsMakeRoom(t *testing.T) {
	t.Parallel()
	st := store.New(dbtest.Pool(t, 2))
	keys, _ := keyring.Parse("")
	reg := account.NewRegistry(account.RegistryConfig{
		Store: st, Keys: keys, Logger: slog.New(slog.DiscardHandler),
		MaxNegative: 10, NegativeTTL: time.Nanosecond, LookupsPerSecond: 1e6, LookupBurst: 1e6,
	})
	for range 10 {
		reg.Validator(t.Context(), newSID())
	}
	if _, _, unknown := reg.Sizes(); unknown != 10 {
		t.Fatalf("%d unknown sids remembered, want the 10 of a full memory", unknown)
	}
	sid := newSID()
	reg.Validator(t.Context(), sid)
	if _, _, unknown := reg.Sizes(); unknown != 1 {
		t.Fatalf("%d unknown sids remembered after the expired ones were dropped, want only the new one", unknown)
	}
}
