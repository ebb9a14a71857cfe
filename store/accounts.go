package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"inbox/db"
)

// ErrNoAccount is returned for an account sid that is not in twilio_accounts.
var ErrNoAccount = errors.New("no such Twilio account")

// AccountsChannel is the PostgreSQL notification channel every change to
// twilio_accounts notifies, with the account sid as its payload, when the
// change commits.
const AccountsChannel = "inbox_twilio_accounts"

// accountPage is how many accounts one query of AllAccounts reads.
const accountPage = 1000

// AllAccounts returns every account, in sid order, a page at a time.
func (s *Store) AllAccounts(ctx context.Context) ([]db.TwilioAccount, error) {
	var all []db.TwilioAccount
	after := ""
	for {
		page, err := s.q.ListTwilioAccounts(ctx, db.ListTwilioAccountsParams{After: after, MaxRows: accountPage})
		if err != nil {
			return nil, fmt.Errorf("list twilio accounts: %w", err)
		}
		all = append(all, page...)
		if len(page) < accountPage {
			return all, nil
		}
		after = page[len(page)-1].AccountSID
	}
}

// Account returns the account sid, or ErrNoAccount.
func (s *Store) Account(ctx context.Context, sid string) (db.TwilioAccount, error) {
	a, err := s.q.GetTwilioAccount(ctx, sid)
	switch {
	case err == nil:
		return a, nil
	case errors.Is(err, pgx.ErrNoRows):
		return db.TwilioAccount{}, fmt.Errorf("get account %s: %w", sid, ErrNoAccount)
	default:
		return db.TwilioAccount{}, fmt.Errorf("get account %s: %w", sid, err)
	}
}

// changed reads one of the account writes, which return a row when they
// changed one: false for no row.
func changed(what, sid string, ok bool, err error) (bool, error) {
	switch {
	case err == nil:
		return ok, nil
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	default:
		return false, fmt.Errorf("%s %s: %w", what, sid, err)
	}
}

// AddAccount stores a new account with its sealed primary token; false when
// the sid is already there.
func (s *Store) AddAccount(ctx context.Context, sid string, primary []byte, label string) (bool, error) {
	ok, err := s.q.InsertTwilioAccount(ctx, db.InsertTwilioAccountParams{AccountSID: sid, PrimaryToken: primary, Label: label})
	return changed("add account", sid, ok, err)
}

// SetAccountSecondary sets the sealed secondary token (nil clears it);
// false when there is no such account.
func (s *Store) SetAccountSecondary(ctx context.Context, sid string, secondary []byte) (bool, error) {
	ok, err := s.q.SetTwilioAccountSecondary(ctx, db.SetTwilioAccountSecondaryParams{AccountSID: sid, SecondaryToken: secondary})
	return changed("set secondary token of", sid, ok, err)
}

// PromoteAccountSecondary makes primary (the secondary token, sealed again
// for the primary slot) the primary and clears the secondary; false when
// the account has no secondary (or does not exist).
func (s *Store) PromoteAccountSecondary(ctx context.Context, sid string, primary []byte) (bool, error) {
	ok, err := s.q.PromoteTwilioAccountSecondary(ctx, db.PromoteTwilioAccountSecondaryParams{AccountSID: sid, PrimaryToken: primary})
	return changed("promote secondary token of", sid, ok, err)
}

// ResealAccount replaces an account's sealed tokens if they are still old
// (as read); false when they changed meanwhile.
func (s *Store) ResealAccount(ctx context.Context, old db.TwilioAccount, primary, secondary []byte) (bool, error) {
	ok, err := s.q.ResealTwilioAccount(ctx, db.ResealTwilioAccountParams{
		AccountSID: old.AccountSID, PrimaryToken: primary, SecondaryToken: secondary,
		OldPrimaryToken: old.PrimaryToken, OldSecondaryToken: old.SecondaryToken,
	})
	return changed("reseal", old.AccountSID, ok, err)
}

// SetAccountDisabled disables or enables an account; false when there is
// no such account.
func (s *Store) SetAccountDisabled(ctx context.Context, sid string, disabled bool) (bool, error) {
	ok, err := s.q.SetTwilioAccountDisabled(ctx, db.SetTwilioAccountDisabledParams{AccountSID: sid, Disabled: disabled})
	return changed("set disabled of", sid, ok, err)
}

// RemoveAccount deletes an account; false when there is none.
func (s *Store) RemoveAccount(ctx context.Context, sid string) (bool, error) {
	ok, err := s.q.DeleteTwilioAccount(ctx, sid)
	return changed("remove account", sid, ok, err)
}
