// Package account keeps the Twilio accounts whose webhooks this deployment
// accepts: each account sid with its auth tokens, sealed at rest by package
// keyring. Manager changes them (the `inbox accounts` CLI); Registry is what
// a server checks signatures against: every account in memory, kept fresh
// by PostgreSQL notifications, so the hot path never queries for a known
// account and a flood of unknown sids costs a bounded number of queries.
package account

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"inbox/internal/clip"
	"inbox/internal/text"
	"inbox/keyring"
	"inbox/store"
	"inbox/twilio"
	"inbox/twilioapi"
)

// Errors a lookup returns; the api package answers both with 403.
var (
	// ErrUnknown: the account sid is not in the table, and there is no
	// fallback token (TWILIO_AUTH_TOKEN) for sids outside it.
	ErrUnknown = errors.New("unknown Twilio account")
	// ErrDisabled: the account is in the table, disabled.
	ErrDisabled = errors.New("twilio account disabled")
	// ErrUnreadable: the account's tokens cannot be opened with the keys
	// this process holds.
	ErrUnreadable = errors.New("twilio account token cannot be decrypted with ENCRYPTION_KEY")
)

// ErrPlaintextRefused is returned when a token would be stored in the clear
// without the caller allowing it.
var ErrPlaintextRefused = errors.New("ENCRYPTION_KEY is not set: refusing to store an auth token in the clear, " +
	"where anyone who can read the table or a backup could sign webhooks as Twilio; " +
	"set ENCRYPTION_KEY (32 bytes, e.g. openssl rand -base64 32), or pass --allow-plaintext-tokens")

// Twilio auth tokens are 32 lower-case hex digits.
var tokenShape = regexp.MustCompile(`^[0-9a-f]{32}$`)

// CheckToken refuses what cannot be a Twilio auth token. The error never
// contains the token.
func CheckToken(token string) error {
	if !tokenShape.MatchString(token) {
		return fmt.Errorf("not an auth token: want 32 lower-case hex digits, got %d characters", len(token))
	}
	return nil
}

// aad binds a sealed token to its account and slot, so a value copied to
// another row or slot does not open.
func aad(sid, slot string) []byte { return []byte("twilio_accounts/" + sid + "/" + slot) }

const (
	slotPrimary   = "primary"
	slotSecondary = "secondary"
)

// open returns the account's tokens in the clear.
func open(keys *keyring.Keyring, a store.Account) (primary, secondary string, err error) {
	p, err := keys.Open(a.PrimaryToken, aad(a.SID, slotPrimary))
	if err != nil {
		return "", "", fmt.Errorf("account %s, primary token: %w", a.SID, err)
	}
	if a.SecondaryToken != nil {
		s, err := keys.Open(a.SecondaryToken, aad(a.SID, slotSecondary))
		if err != nil {
			return "", "", fmt.Errorf("account %s, secondary token: %w", a.SID, err)
		}
		secondary = string(s)
	}
	return string(p), secondary, nil
}

// validator builds the signature check of an account.
func validator(keys *keyring.Keyring, a store.Account) (*twilio.Validator, error) {
	p, s, err := open(keys, a)
	if err != nil {
		return nil, err
	}
	return twilio.NewValidator(p, s)
}

// Manager changes accounts: it seals tokens with the keyring's first key
// before they reach the store.
type Manager struct {
	Store *store.Store
	Keys  *keyring.Keyring
	// AllowPlaintext lets tokens be stored in the clear when Keys has no
	// key; without it, such writes fail with ErrPlaintextRefused.
	AllowPlaintext bool
	// Force lets Add and SetSecondary store a token although Keys does not
	// open the tokens already in the table (see ErrKeyMismatch).
	Force bool
}

// ErrKeyMismatch is returned by Add and SetSecondary when the keys given do
// not open every token already stored: a token sealed with another key
// would be unreadable to servers that hold the table's key, and, while any
// account is unreadable, a server started with this key could read only
// its own.
var ErrKeyMismatch = errors.New("ENCRYPTION_KEY does not open the tokens already in twilio_accounts")

// checkKeys refuses, with ErrKeyMismatch, keys that do not open every token
// in the table, naming the keys the table's tokens were sealed with.
func (m *Manager) checkKeys(ctx context.Context) error {
	if m.Force {
		return nil
	}
	all, err := m.Store.AllAccounts(ctx)
	if err != nil {
		return err
	}
	var unreadable []string
	sealedWith := map[string]bool{}
	for _, a := range all {
		if _, _, err := open(m.Keys, a); err != nil {
			unreadable = append(unreadable, a.SID)
			sealedWith[keyring.KeyOf(a.PrimaryToken)] = true
		}
	}
	if len(unreadable) == 0 {
		return nil
	}
	held := "none (ENCRYPTION_KEY is not set)"
	if fps := m.Keys.Fingerprints(); len(fps) > 0 {
		held = strings.Join(fps, ", ")
	}
	return fmt.Errorf("%w: %d of %d accounts (first %s) are sealed with key %s, and the keys given are %s: "+
		"give the table's key (to change keys, put the new one first: ENCRYPTION_KEY=new,old, then inbox accounts reseal), "+
		"or -force to store this token anyway",
		ErrKeyMismatch, len(unreadable), len(all), unreadable[0], strings.Join(slices.Sorted(maps.Keys(sealedWith)), ", "), held)
}

// MaxLabel is the longest label an account may have, in characters.
const MaxLabel = 200

// CheckLabel refuses a label that is not printable text of at most
// MaxLabel characters: labels are printed to terminals, where control
// characters and escape sequences would act rather than show.
func CheckLabel(label string) error {
	if err := text.Printable(label); err != nil {
		return fmt.Errorf("label: %w", err)
	}
	if n := utf8.RuneCountInString(label); n > MaxLabel {
		return fmt.Errorf("label has %d characters, more than %d", n, MaxLabel)
	}
	return nil
}

func (m *Manager) seal(sid, slot, token string) ([]byte, error) {
	if !m.Keys.Encrypts() && !m.AllowPlaintext {
		return nil, ErrPlaintextRefused
	}
	if err := CheckToken(token); err != nil {
		return nil, err
	}
	return m.Keys.Seal([]byte(token), aad(sid, slot))
}

func checkSID(sid string) error {
	if !twilio.IsAccountSID(sid) {
		return fmt.Errorf("%q is not an account sid: want AC and 32 lower-case hex digits", clip.Clip(sid))
	}
	return nil
}

// Add stores a new account with its primary token. It refuses a label
// CheckLabel refuses, and keys that do not open the tokens already stored
// (ErrKeyMismatch, unless Force).
func (m *Manager) Add(ctx context.Context, sid, token, label string) error {
	if err := checkSID(sid); err != nil {
		return err
	}
	if err := CheckLabel(label); err != nil {
		return err
	}
	if err := m.checkKeys(ctx); err != nil {
		return err
	}
	sealed, err := m.seal(sid, slotPrimary, token)
	if err != nil {
		return err
	}
	added, err := m.Store.AddAccount(ctx, sid, sealed, label)
	if err != nil {
		return err
	}
	if !added {
		return fmt.Errorf("account %s exists already: use set-secondary and rotate to change its token", sid)
	}
	return nil
}

// SetSecondary sets the account's secondary token: both verify until
// Rotate promotes it. Like Add, it refuses keys that do not open the tokens
// already stored.
func (m *Manager) SetSecondary(ctx context.Context, sid, token string) error {
	if err := checkSID(sid); err != nil {
		return err
	}
	if err := m.checkKeys(ctx); err != nil {
		return err
	}
	sealed, err := m.seal(sid, slotSecondary, token)
	if err != nil {
		return err
	}
	return m.Store.SetAccountSecondary(ctx, sid, sealed)
}

// Rotate promotes the secondary token to primary; the old primary stops
// verifying.
func (m *Manager) Rotate(ctx context.Context, sid string) error {
	if err := checkSID(sid); err != nil {
		return err
	}
	a, err := m.Store.Account(ctx, sid)
	if err != nil {
		return err
	}
	if a.SecondaryToken == nil {
		return fmt.Errorf("account %s has no secondary token to promote: set-secondary first", sid)
	}
	_, secondary, err := open(m.Keys, a)
	if err != nil {
		return err
	}
	sealed, err := m.seal(sid, slotPrimary, secondary)
	if err != nil {
		return err
	}
	return m.Store.PromoteAccountSecondary(ctx, sid, sealed)
}

// SetDisabled disables or enables an account.
func (m *Manager) SetDisabled(ctx context.Context, sid string, disabled bool) error {
	if err := checkSID(sid); err != nil {
		return err
	}
	return m.Store.SetAccountDisabled(ctx, sid, disabled)
}

// Remove deletes an account.
func (m *Manager) Remove(ctx context.Context, sid string) error {
	if err := checkSID(sid); err != nil {
		return err
	}
	return m.Store.RemoveAccount(ctx, sid)
}

// Reseal seals every token again with the keyring's first key, after a new
// key was put first in ENCRYPTION_KEY; then the old key can be dropped. It
// returns how many accounts changed.
func (m *Manager) Reseal(ctx context.Context) (int, error) {
	if !m.Keys.Encrypts() {
		return 0, errors.New("ENCRYPTION_KEY is not set: there is no key to seal with")
	}
	all, err := m.Store.AllAccounts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range all {
		if m.Keys.SealedByFirst(a.PrimaryToken) && (a.SecondaryToken == nil || m.Keys.SealedByFirst(a.SecondaryToken)) {
			continue
		}
		p, s, err := open(m.Keys, a)
		if err != nil {
			return n, err
		}
		primary, err := m.Keys.Seal([]byte(p), aad(a.SID, slotPrimary))
		if err != nil {
			return n, err
		}
		var secondary []byte
		if a.SecondaryToken != nil {
			if secondary, err = m.Keys.Seal([]byte(s), aad(a.SID, slotSecondary)); err != nil {
				return n, err
			}
		}
		ok, err := m.Store.ResealAccount(ctx, a, primary, secondary)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, fmt.Errorf("account %s changed while resealing: run reseal again", a.SID)
		}
		n++
	}
	return n, nil
}

// Summary is what List shows of an account: never a token.
type Summary struct {
	SID          string
	Label        string
	HasSecondary bool
	Disabled     bool
	Encrypted    bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// List returns every account, in sid order, without tokens.
func (m *Manager) List(ctx context.Context) ([]Summary, error) {
	all, err := m.Store.AllAccounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Summary, len(all))
	for i, a := range all {
		out[i] = Summary{SID: a.SID, Label: a.Label, HasSecondary: a.SecondaryToken != nil, Disabled: a.Disabled,
			Encrypted: !keyring.Plain(a.PrimaryToken), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	}
	return out, nil
}

// Credentials returns what reconciliation calls Twilio's API with: every
// enabled account in the table whose primary token opens with keys, and,
// when fallback names an account (TWILIO_ACCOUNT_SID with
// TWILIO_AUTH_TOKEN) the table does not have, that one. An account that
// cannot be opened is left out: serve names it at start, and refuses its
// deliveries.
func Credentials(ctx context.Context, st *store.Store, keys *keyring.Keyring, fallback twilioapi.Credentials) ([]twilioapi.Credentials, error) {
	all, err := st.AllAccounts(ctx)
	if err != nil {
		return nil, err
	}
	var out []twilioapi.Credentials
	inTable := false
	for _, a := range all {
		inTable = inTable || a.SID == fallback.AccountSID
		if a.Disabled {
			continue
		}
		p, _, err := open(keys, a)
		if err != nil {
			continue
		}
		out = append(out, twilioapi.Credentials{AccountSID: a.SID, Token: p})
	}
	if fallback.AccountSID != "" && fallback.Token != "" && !inTable {
		out = append(out, fallback)
	}
	return out, nil
}

// ErrNoCredentials: no token of the account is known here.
var ErrNoCredentials = errors.New("no token of the account is known: add it (inbox accounts add) or set TWILIO_AUTH_TOKEN")

// CredentialsOf returns the account sid's credentials: its token in the
// table when it is there, enabled and opens with keys; else, when the table
// does not have it, fallbackToken (TWILIO_AUTH_TOKEN, which verifies the
// deliveries of accounts the table does not have); else ErrNoCredentials.
func CredentialsOf(ctx context.Context, st *store.Store, keys *keyring.Keyring, fallbackToken, sid string) (twilioapi.Credentials, error) {
	all, err := st.AllAccounts(ctx)
	if err != nil {
		return twilioapi.Credentials{}, err
	}
	for _, a := range all {
		if a.SID != sid {
			continue
		}
		if a.Disabled {
			return twilioapi.Credentials{}, fmt.Errorf("account %s is disabled: %w", sid, ErrNoCredentials)
		}
		p, _, err := open(keys, a)
		if err != nil {
			return twilioapi.Credentials{}, fmt.Errorf("account %s's token does not open with ENCRYPTION_KEY: %w", sid, ErrNoCredentials)
		}
		return twilioapi.Credentials{AccountSID: sid, Token: p}, nil
	}
	if fallbackToken == "" {
		return twilioapi.Credentials{}, fmt.Errorf("account %s: %w", sid, ErrNoCredentials)
	}
	return twilioapi.Credentials{AccountSID: sid, Token: fallbackToken}, nil
}

// Readable reports, by sid, whether each account in the table opens with
// keys: one that does not has its deliveries refused (the console shows it
// unreadable). Nothing opened is kept.
func Readable(ctx context.Context, st *store.Store, keys *keyring.Keyring) (map[string]bool, error) {
	all, err := st.AllAccounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(all))
	for _, a := range all {
		_, _, err := open(keys, a)
		out[a.SID] = err == nil
	}
	return out, nil
}
