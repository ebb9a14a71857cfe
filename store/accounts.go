package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
)

// ErrNoAccount is returned for an account sid that is not in
// twilio_accounts; it wraps ErrNotFound.
var ErrNoAccount = fmt.Errorf("no such Twilio account: %w", ErrNotFound)

// Account is a row of twilio_accounts: its tokens as stored, sealed by
// package keyring.
type Account struct {
	SID            string
	PrimaryToken   []byte
	SecondaryToken []byte // nil: none
	Label          string
	Disabled       bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func toAccount(a db.TwilioAccount) Account {
	return Account{SID: a.AccountSID, PrimaryToken: a.PrimaryToken, SecondaryToken: a.SecondaryToken,
		Label: a.Label, Disabled: a.Disabled, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

// accountPage is how many accounts one query of AllAccounts reads.
const accountPage = 1000

// AllAccounts returns every account, in sid order, a page at a time.
func (s *Store) AllAccounts(ctx context.Context) ([]Account, error) {
	var all []Account
	after := ""
	for {
		page, err := s.q.ListTwilioAccounts(ctx, db.ListTwilioAccountsParams{After: after, MaxRows: accountPage})
		if err != nil {
			return nil, fail("list twilio accounts", err, ErrNoAccount)
		}
		for _, a := range page {
			all = append(all, toAccount(a))
		}
		if len(page) < accountPage {
			return all, nil
		}
		after = page[len(page)-1].AccountSID
	}
}

// Account returns the account sid, or ErrNoAccount.
func (s *Store) Account(ctx context.Context, sid string) (Account, error) {
	a, err := s.q.GetTwilioAccount(ctx, sid)
	if err != nil {
		return Account{}, fail("get account "+sid, err, ErrNoAccount)
	}
	return toAccount(a), nil
}

// changed reads one of the account writes, which return a row when they
// changed one: ErrNoAccount for none, when the write needs an account.
func changed(what, sid string, err error) error {
	if err != nil {
		return fail(what+" "+sid, err, ErrNoAccount)
	}
	return nil
}

// AddAccount stores a new account with its sealed primary token; false when
// the sid is already there.
func (s *Store) AddAccount(ctx context.Context, sid string, primary []byte, label string) (bool, error) {
	_, err := s.q.InsertTwilioAccount(ctx, db.InsertTwilioAccountParams{AccountSID: sid, PrimaryToken: primary, Label: label})
	if err := changed("add account", sid, err); errors.Is(err, ErrNoAccount) {
		return false, nil // no row: it was there already
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// SetAccountSecondary sets the sealed secondary token (nil clears it), or
// returns ErrNoAccount.
func (s *Store) SetAccountSecondary(ctx context.Context, sid string, secondary []byte) error {
	_, err := s.q.SetTwilioAccountSecondary(ctx, db.SetTwilioAccountSecondaryParams{AccountSID: sid, SecondaryToken: secondary})
	return changed("set secondary token of", sid, err)
}

// PromoteAccountSecondary makes primary (the secondary token, sealed again
// for the primary slot) the primary and clears the secondary; ErrNoAccount
// when the account has no secondary (or does not exist).
func (s *Store) PromoteAccountSecondary(ctx context.Context, sid string, primary []byte) error {
	_, err := s.q.PromoteTwilioAccountSecondary(ctx, db.PromoteTwilioAccountSecondaryParams{AccountSID: sid, PrimaryToken: primary})
	return changed("promote secondary token of", sid, err)
}

// ResealAccount replaces an account's sealed tokens if they are still old
// (as read); false when they changed meanwhile.
func (s *Store) ResealAccount(ctx context.Context, old Account, primary, secondary []byte) (bool, error) {
	_, err := s.q.ResealTwilioAccount(ctx, db.ResealTwilioAccountParams{
		AccountSID: old.SID, PrimaryToken: primary, SecondaryToken: secondary,
		OldPrimaryToken: old.PrimaryToken, OldSecondaryToken: old.SecondaryToken,
	})
	if err := changed("reseal", old.SID, err); errors.Is(err, ErrNoAccount) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// SetAccountDisabled disables or enables an account, or returns
// ErrNoAccount.
func (s *Store) SetAccountDisabled(ctx context.Context, sid string, disabled bool) error {
	_, err := s.q.SetTwilioAccountDisabled(ctx, db.SetTwilioAccountDisabledParams{AccountSID: sid, Disabled: disabled})
	return changed("set disabled of", sid, err)
}

// RemoveAccount deletes an account, or returns ErrNoAccount.
func (s *Store) RemoveAccount(ctx context.Context, sid string) error {
	_, err := s.q.DeleteTwilioAccount(ctx, sid)
	return changed("remove account", sid, err)
}

// AccountListener is a connection of its own that receives the
// notification every change to twilio_accounts sends when it commits.
type AccountListener struct {
	conn *pgx.Conn
}

// ListenForAccountChanges opens a connection configured as the pool's and
// subscribes it to account changes. Close it when done.
func (s *Store) ListenForAccountChanges(ctx context.Context) (*AccountListener, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, fail("connect to listen for account changes", err, ErrNotFound)
	}
	if err := db.New(conn).ListenForAccountChanges(ctx); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fail("listen for account changes", err, ErrNotFound)
	}
	return &AccountListener{conn: conn}, nil
}

// Next waits for the next change and returns the sid of the account it
// changed. An error ends the listener: ctx's, wrapped, when ctx ended
// (pgx then closes the connection), else the connection's.
func (l *AccountListener) Next(ctx context.Context) (string, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("wait for an account change: %w", ctx.Err())
		}
		return "", fail("wait for an account change", err, ErrNotFound)
	}
	return n.Payload, nil
}

// Close closes the listener's connection.
func (l *AccountListener) Close(ctx context.Context) { l.conn.Close(ctx) }

// LastDeliveries returns, by account sid, when each of sids (at most 1000)
// last had a message delivered by webhook; an account with none is absent.
func (s *Store) LastDeliveries(ctx context.Context, sids []string) (map[string]time.Time, error) {
	rows, err := s.q.LastMessageForAccounts(ctx, sids)
	if err != nil {
		return nil, fail("read each account's last delivery", err, ErrNotFound)
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		out[r.AccountSID] = r.ReceivedAt
	}
	return out, nil
}
