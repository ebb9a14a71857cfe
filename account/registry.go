package account

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"inbox/keyring"
	"inbox/metrics"
	"inbox/store"
	"inbox/twilio"
)

// Registry defaults.
const (
	// DefaultNegativeTTL is how long a sid found in no account is answered
	// from memory before it may be looked up again.
	DefaultNegativeTTL = 30 * time.Second
	// DefaultMaxNegative bounds the sids remembered as unknown, so a flood
	// of forged sids cannot grow memory; past it, unknown sids are not
	// remembered, and the lookup budget alone bounds the queries.
	DefaultMaxNegative = 10_000
	// DefaultLookupsPerSecond and DefaultLookupBurst bound the queries
	// that sids not in memory can cause, whatever arrives.
	DefaultLookupsPerSecond = 5
	DefaultLookupBurst      = 20
	// DefaultLookupTimeout bounds one lookup.
	DefaultLookupTimeout = 5 * time.Second
	// reloadEvery reloads every account even when no notification came: a
	// safety net under LISTEN/NOTIFY, not the way changes arrive.
	reloadEvery = 5 * time.Minute
)

// RegistryConfig is what NewRegistry needs.
type RegistryConfig struct {
	Store *store.Store
	Keys  *keyring.Keyring
	// Fallback verifies the sids that are not in the table
	// (TWILIO_AUTH_TOKEN, and its secondary); nil refuses them.
	Fallback *twilio.Validator
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	// Zero means the Default of each.
	NegativeTTL      time.Duration
	MaxNegative      int
	LookupsPerSecond float64
	LookupBurst      float64
	// LookupTimeout bounds the query for a sid not in memory (serve: its
	// REQUEST_TIMEOUT), so a slow database delays only those deliveries.
	LookupTimeout time.Duration
}

type entry struct {
	v        *twilio.Validator
	disabled bool
	err      error // set when the tokens cannot be opened
}

// Registry answers, for an account sid, the validator of its tokens.
type Registry struct {
	cfg RegistryConfig
	now func() time.Time

	mu       sync.RWMutex
	accounts map[string]entry
	negative map[string]time.Time // sid → until when it is known unknown

	listening atomic.Bool

	// budget bounds the lookups of sids not in memory.
	budget *rate.Limiter
}

// NewRegistry returns an empty Registry; Load fills it.
func NewRegistry(cfg RegistryConfig) *Registry {
	cfg.NegativeTTL = cmp.Or(cfg.NegativeTTL, DefaultNegativeTTL)
	cfg.MaxNegative = cmp.Or(cfg.MaxNegative, DefaultMaxNegative)
	cfg.LookupsPerSecond = cmp.Or(cfg.LookupsPerSecond, DefaultLookupsPerSecond)
	cfg.LookupBurst = cmp.Or(cfg.LookupBurst, DefaultLookupBurst)
	cfg.LookupTimeout = cmp.Or(cfg.LookupTimeout, DefaultLookupTimeout)
	r := &Registry{cfg: cfg, now: time.Now, accounts: map[string]entry{}, negative: map[string]time.Time{},
		budget: rate.NewLimiter(rate.Limit(cfg.LookupsPerSecond), max(1, int(cfg.LookupBurst)))}
	cfg.Metrics.RegisterAccounts(r.Sizes)
	return r
}

// Sizes returns how many accounts are in memory, how many of them cannot
// be opened with the keys this process holds, and how many sids are known
// to be unknown.
func (r *Registry) Sizes() (accounts, unreadable, negative int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.accounts {
		if e.err != nil {
			unreadable++
		}
	}
	return len(r.accounts), unreadable, len(r.negative)
}

// Len is the number of accounts in memory.
func (r *Registry) Len() int {
	n, _, _ := r.Sizes()
	return n
}

// UnreadableError is what Load returns when some accounts' tokens cannot be
// opened with the keys this process holds: those accounts' deliveries are
// refused, the others served. It wraps ErrUnreadable.
type UnreadableError struct {
	// SIDs are the unreadable accounts, in sid order, and Errs why each.
	SIDs []string
	Errs []error
	// Total is how many accounts were read.
	Total int
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("%v: %d of %d (is ENCRYPTION_KEY the key they were sealed with?): %v",
		ErrUnreadable, len(e.SIDs), e.Total, errors.Join(e.Errs...))
}

func (e *UnreadableError) Unwrap() error { return ErrUnreadable }

// Listening reports whether the Registry is subscribed to changes: from
// then on, a committed change reaches it within moments.
func (r *Registry) Listening() bool { return r.listening.Load() }

// HasFallback reports whether sids outside the table are verified with
// TWILIO_AUTH_TOKEN.
func (r *Registry) HasFallback() bool { return r.cfg.Fallback != nil }

func (r *Registry) entryOf(a store.Account) (entry, error) {
	v, err := validator(r.cfg.Keys, a)
	if err != nil {
		return entry{disabled: a.Disabled, err: err}, err
	}
	return entry{v: v, disabled: a.Disabled}, nil
}

// Load reads every account and replaces what is in memory. An account whose
// tokens cannot be opened is kept, refusing its deliveries
// (ErrUnreadable), and named in the *UnreadableError returned, so a server
// can say which accounts it cannot serve, and refuse to start when it can
// serve none.
func (r *Registry) Load(ctx context.Context) error {
	all, err := r.cfg.Store.AllAccounts(ctx)
	if err != nil {
		return fmt.Errorf("load twilio accounts: %w", err)
	}
	accounts := make(map[string]entry, len(all))
	unreadable := &UnreadableError{Total: len(all)}
	for _, a := range all {
		e, err := r.entryOf(a)
		if err != nil {
			unreadable.SIDs = append(unreadable.SIDs, a.SID)
			unreadable.Errs = append(unreadable.Errs, err)
		}
		accounts[a.SID] = e
	}
	// The sids remembered as unknown stay so: the table was just read
	// whole, and an account in it is found in accounts first.
	r.mu.Lock()
	r.accounts = accounts
	r.mu.Unlock()
	if len(unreadable.SIDs) > 0 {
		return unreadable
	}
	return nil
}

// LogLoadError logs why Load failed, as Run does after each reload: for
// unreadable accounts, one ERROR line each, naming the sid.
func (r *Registry) LogLoadError(ctx context.Context, err error) {
	ue, ok := errors.AsType[*UnreadableError](err)
	if !ok {
		r.cfg.Logger.ErrorContext(ctx, "reading twilio accounts", "err", err)
		return
	}
	for i, sid := range ue.SIDs {
		r.cfg.Logger.ErrorContext(ctx, "twilio account's token cannot be decrypted with ENCRYPTION_KEY: its deliveries are refused (403 account_unreadable)",
			"account_sid", sid, "keys_held", r.cfg.Keys.Fingerprints(), "err", ue.Errs[i])
	}
}

// refresh reads one account again after a notification.
func (r *Registry) refresh(ctx context.Context, sid string) {
	a, err := r.cfg.Store.Account(ctx, sid)
	switch {
	case errors.Is(err, store.ErrNoAccount):
		r.mu.Lock()
		delete(r.accounts, sid)
		r.mu.Unlock()
		r.cfg.Logger.InfoContext(ctx, "twilio account removed", "account_sid", sid)
		return
	case err != nil:
		r.cfg.Logger.ErrorContext(ctx, "reading a changed twilio account; its old state stays until the next reload", "account_sid", sid, "err", err)
		return
	}
	e, err := r.entryOf(a)
	if err != nil {
		r.cfg.Logger.ErrorContext(ctx, "twilio account's token cannot be decrypted: its deliveries are refused", "account_sid", sid, "err", err)
	}
	r.mu.Lock()
	r.accounts[sid] = e
	delete(r.negative, sid)
	r.mu.Unlock()
	r.cfg.Logger.InfoContext(ctx, "twilio account changed", "account_sid", sid, "disabled", a.Disabled)
}

// Validator returns the signature check for deliveries that name
// accountSID: the table's tokens for an account in it (ErrDisabled,
// ErrUnreadable), else the fallback, else ErrUnknown. A sid not in memory
// is looked up at most once per NegativeTTL, within a budget of queries a
// second, so forged sids cannot turn into a flood of queries.
func (r *Registry) Validator(ctx context.Context, accountSID string) (*twilio.Validator, error) {
	r.mu.RLock()
	e, ok := r.accounts[accountSID]
	until, known := r.negative[accountSID]
	r.mu.RUnlock()
	switch {
	case ok:
		return e.result()
	case !twilio.IsAccountSID(accountSID), known && r.now().Before(until), !r.spend():
		return r.fallback()
	}
	// Not in memory: changed in the last moments (its notification is on
	// its way), or not an account at all.
	r.cfg.Metrics.AccountLookup()
	// Bounded here, not by the caller: a known sid needs no timer.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
	defer cancel()
	a, err := r.cfg.Store.Account(ctx, accountSID)
	switch {
	case errors.Is(err, store.ErrNoAccount):
		now := r.now()
		r.mu.Lock()
		if len(r.negative) >= r.cfg.MaxNegative {
			// Full: drop what has expired (a flood's sids, long gone), so
			// a sid that keeps coming is remembered again.
			maps.DeleteFunc(r.negative, func(_ string, until time.Time) bool { return !now.Before(until) })
		}
		if len(r.negative) < r.cfg.MaxNegative {
			r.negative[accountSID] = now.Add(r.cfg.NegativeTTL)
		}
		r.mu.Unlock()
		return r.fallback()
	case err != nil && r.cfg.Fallback != nil:
		// The database cannot say; the sid was not in the table when it
		// was last read whole, so the fallback token is what most likely
		// signed it, and the delivery's own insert will meet the outage.
		return r.cfg.Fallback, nil
	case err != nil:
		return nil, fmt.Errorf("look up twilio account %s: %w", accountSID, err)
	}
	e, _ = r.entryOf(a)
	r.mu.Lock()
	r.accounts[accountSID] = e
	r.mu.Unlock()
	return e.result()
}

func (e entry) result() (*twilio.Validator, error) {
	switch {
	case e.err != nil:
		return nil, ErrUnreadable
	case e.disabled:
		return nil, ErrDisabled
	}
	return e.v, nil
}

func (r *Registry) fallback() (*twilio.Validator, error) {
	if r.cfg.Fallback == nil {
		return nil, ErrUnknown
	}
	return r.cfg.Fallback, nil
}

// spend takes one lookup from the budget, a token bucket.
func (r *Registry) spend() bool { return r.budget.AllowN(r.now(), 1) }

// Run keeps the Registry fresh until ctx ends: it listens for the
// notifications every change sends, reads the changed account again, and
// reloads everything after (re)connecting (changes made while it was not
// listening) and every five minutes. A lost connection is retried with
// backoff; meanwhile the accounts in memory keep serving.
func (r *Registry) Run(ctx context.Context, ready func()) error {
	ready() // serving from what Load read; changes arrive as they may
	backoff := time.Second
	for ctx.Err() == nil {
		err := r.listen(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errReconnect):
			backoff = time.Second
			continue
		}
		r.cfg.Logger.WarnContext(ctx, "not listening for twilio account changes; retrying", "err", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

// errReconnect ends a listen that should simply start again.
var errReconnect = errors.New("reconnect")

func (r *Registry) listen(ctx context.Context) error {
	l, err := r.cfg.Store.ListenForAccountChanges(ctx)
	if err != nil {
		return err
	}
	defer l.Close(context.WithoutCancel(ctx))
	if err := r.Load(ctx); err != nil {
		r.LogLoadError(ctx, err)
	}
	r.listening.Store(true)
	defer r.listening.Store(false)
	for {
		waitCtx, cancel := context.WithTimeout(ctx, reloadEvery)
		sid, err := l.Next(waitCtx)
		cancel()
		switch {
		case err == nil:
			r.refresh(ctx, sid)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// A wait interrupted by its context ends the connection:
			// listen again on a new one, which reloads.
			return errReconnect
		default:
			return err
		}
	}
}
