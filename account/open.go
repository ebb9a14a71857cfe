package account

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// loadTimeout bounds the first read of the accounts at start.
const loadTimeout = 10 * time.Second

// Open returns a Registry loaded with the Twilio accounts signatures are
// checked against, or why the service must not start. An account whose
// token cannot be opened with the keys is logged at ERROR and its
// deliveries refused; Open refuses only when no account can be opened and
// there is no fallback (TWILIO_AUTH_TOKEN), or there is neither an account
// nor a fallback. A database that cannot be read at start is fatal only
// without a fallback: with one, the one-account deployment serves as
// before and the accounts load once the database answers (Run).
func Open(ctx context.Context, cfg RegistryConfig) (*Registry, error) {
	reg := NewRegistry(cfg)
	loadCtx, cancel := context.WithTimeout(ctx, loadTimeout)
	err := reg.Load(loadCtx)
	cancel()
	fallback := cfg.Fallback != nil
	unreadable, someUnreadable := errors.AsType[*UnreadableError](err)
	switch {
	case someUnreadable && len(unreadable.SIDs) == unreadable.Total && !fallback:
		return nil, fmt.Errorf("no Twilio account can be served and TWILIO_AUTH_TOKEN is not set: %w", err)
	case someUnreadable:
		// One mis-keyed row must not stop every server: serve the others,
		// refuse its deliveries, and say so loudly (and in
		// inbox_twilio_accounts_unreadable).
		reg.LogLoadError(ctx, err)
	case err != nil && !fallback:
		return nil, fmt.Errorf("TWILIO_AUTH_TOKEN is not set and the Twilio accounts cannot be read: %w", err)
	case err != nil:
		cfg.Logger.ErrorContext(ctx, "Twilio accounts not loaded; verifying with TWILIO_AUTH_TOKEN until they are", "err", err)
	case reg.Len() == 0 && !fallback:
		return nil, errors.New("TWILIO_AUTH_TOKEN is not set and twilio_accounts has no account (inbox accounts add): the service will not accept webhooks it cannot verify")
	}
	return reg, nil
}
