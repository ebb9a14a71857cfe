package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/term"

	"inbox/account"
	"inbox/internal/clip"
	"inbox/keyring"
	"inbox/metrics"
	"inbox/reconcile"
	"inbox/store"
	"inbox/twilio"
	"inbox/twilioapi"
)

// reconcileConfig is what a sweep of Twilio's API needs: `serve` and
// `work` run them periodically, `inbox reconcile` once.
type reconcileConfig struct {
	apiURL      string
	accountSID  string // TWILIO_ACCOUNT_SID: TWILIO_AUTH_TOKEN's account
	authToken   string
	interval    time.Duration // 0: off
	overlap     time.Duration
	lookback    time.Duration
	statusAfter time.Duration
}

// defaultReconcileInterval: a lost minute of webhooks is found within a
// minute or two.
const defaultReconcileInterval = time.Minute

// bind registers the settings; periodic binds the interval too (not for
// `inbox reconcile`, which sweeps once).
func (c *reconcileConfig) bind(b *binder, periodic bool) {
	b.String(&c.apiURL, "twilio-api-url", "TWILIO_API_URL", twilioapi.DefaultBaseURL, "Twilio's REST API, which reconciliation lists messages on")
	b.String(&c.accountSID, "twilio-account-sid", "TWILIO_ACCOUNT_SID", "",
		"the account TWILIO_AUTH_TOKEN belongs to, so reconciliation can sweep it (accounts in twilio_accounts are swept anyway)")
	// A one-off sweep (inbox reconcile) starts at -since: the periodic
	// sweeps' window settings mean nothing to it.
	if periodic {
		b.DurationOrOff(&c.interval, "reconcile-interval", "RECONCILE_INTERVAL", defaultReconcileInterval,
			"how often each account is swept on Twilio's API for messages no webhook delivered; off: never")
		b.Duration(&c.overlap, "reconcile-overlap", "RECONCILE_OVERLAP", reconcile.DefaultOverlap, "how far before an account's watermark a sweep starts again")
		b.Duration(&c.lookback, "reconcile-lookback", "RECONCILE_LOOKBACK", reconcile.DefaultLookback, "how far back an account's first sweep looks")
	}
	b.Duration(&c.statusAfter, "reconcile-status-after", "RECONCILE_STATUS_AFTER", reconcile.DefaultStatusAfter,
		"how long an outbound message's status must not have moved before a sweep asks Twilio for it")
}

// validate refuses a lookback that retention would undercut: a message
// older than the retention, deleted, would be found and stored again.
func (c *reconcileConfig) validate(retention time.Duration) error {
	if c.accountSID != "" && !twilio.IsAccountSID(c.accountSID) {
		return fmt.Errorf("invalid TWILIO_ACCOUNT_SID %q: want AC and 32 lower-case hex digits", clip.Clip(c.accountSID))
	}
	if retention > 0 && c.interval > 0 && c.lookback+c.overlap >= retention {
		return fmt.Errorf("RECONCILE_LOOKBACK %s and RECONCILE_OVERLAP %s reach past RETENTION %s: a deleted message would be found and stored again",
			c.lookback, c.overlap, retention)
	}
	return nil
}

// sweeper builds the Sweeper: found messages are stored through st (with
// its jobs, when processing is on), as webhooks' are.
func (c *reconcileConfig) sweeper(st *store.Store, keys *keyring.Keyring, logger *slog.Logger, m *metrics.Metrics) (*reconcile.Sweeper, error) {
	api, err := twilioapi.New(c.apiURL, twilioapi.Options{Observe: m.TwilioAPI})
	if err != nil {
		return nil, err
	}
	fallback := twilioapi.Credentials{AccountSID: c.accountSID, Token: c.authToken}
	return reconcile.New(reconcile.Config{
		Store: st, API: api, Logger: logger, Metrics: m,
		Accounts: func(ctx context.Context) ([]twilioapi.Credentials, error) {
			return account.Credentials(ctx, st, keys, fallback)
		},
		Overlap: c.overlap, Lookback: c.lookback, StatusAfter: c.statusAfter,
	}), nil
}

// reconcileCommand is `inbox reconcile`'s configuration.
type reconcileCommand struct {
	commonConfig
	reconcile     reconcileConfig
	processing    processingConfig
	encryptionKey string
	since         string
	account       string
}

func (c *reconcileCommand) bind(b *binder) {
	c.commonConfig.bind(b)
	c.reconcile.bind(b, false)
	// Only what decides the jobs a found message gets: the sweep forwards
	// nothing itself.
	c.processing.bindJobs(b)
	b.Secret(&c.reconcile.authToken, "TWILIO_AUTH_TOKEN", "the auth token of TWILIO_ACCOUNT_SID's account")
	b.Secret(&c.encryptionKey, "ENCRYPTION_KEY", "keys that open twilio_accounts' tokens: 32 bytes as base64 or hex, comma-separated")
	b.String(&c.since, "since", "", "", "sweep messages sent since this: a duration back from now (72h) or an RFC 3339 time (required)")
	b.String(&c.account, "account", "", "", "sweep only this account (AC…); default: every account")
	b.Usage = "Usage: inbox reconcile -since 72h|2026-11-30T00:00:00Z [-account AC…] [flags]\n\n" +
		"  list messages on Twilio's API and store, with their jobs, those no webhook delivered:\n" +
		"  a backfill after an outage, or of history when the service is first installed.\n" +
		"  Run it with serve's settings, so found messages are forwarded as serve's are.\n"
}

// parseSince reads -since: a duration back from now, or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("reconcile: -since is required: a duration (72h) or an RFC 3339 time (2026-11-30T00:00:00Z)")
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil && t.Before(now) {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid -since %q: want a positive duration (72h) or an RFC 3339 time in the past", clip.Clip(v))
}

// runReconcile sweeps accounts once, since -since, printing progress on a
// terminal and a summary line per account; it fails when any account
// could not be swept whole.
func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	b := newBinder("reconcile", getenv, stdout, stderr)
	var cfg reconcileCommand
	cfg.bind(b)
	if err := b.Parse(args); err != nil {
		return err
	}
	since, err := parseSince(cfg.since, time.Now())
	if err != nil {
		return err
	}
	if err := cfg.processing.validateAttempts(); err != nil {
		return err
	}
	keys, err := keyring.Parse(cfg.encryptionKey)
	if err != nil {
		return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	logger, pool, err := cfg.open(ctx, stderr, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	sw, err := cfg.reconcile.sweeper(store.NewWith(pool, store.Options{JobAttempts: cfg.processing.attempts(), RouteAttempts: int16(cfg.processing.maxAttempts)}), keys, logger, nil)
	if err != nil {
		return err
	}
	creds, err := cfg.accounts(ctx, pool, keys)
	if err != nil {
		return err
	}
	var failed []error
	for _, cred := range creds {
		if err := sweepOnce(ctx, sw, cred, since, stdout); err != nil {
			failed = append(failed, fmt.Errorf("account %s: %w", cred.AccountSID, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("reconcile: %d of %d accounts could not be swept: %w", len(failed), len(creds), errors.Join(failed...))
	}
	return nil
}

// accounts returns the credentials to sweep: -account's, or every one.
func (c *reconcileCommand) accounts(ctx context.Context, pool *pgxpool.Pool, keys *keyring.Keyring) ([]twilioapi.Credentials, error) {
	all, err := account.Credentials(ctx, store.New(pool), keys, twilioapi.Credentials{AccountSID: c.reconcile.accountSID, Token: c.reconcile.authToken})
	if err != nil {
		return nil, err
	}
	if c.account == "" {
		if len(all) == 0 {
			return nil, errors.New("reconcile: no account to sweep: add accounts (inbox accounts add), or set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN")
		}
		return all, nil
	}
	for _, cred := range all {
		if cred.AccountSID == c.account {
			return []twilioapi.Credentials{cred}, nil
		}
	}
	return nil, fmt.Errorf("reconcile: account %s has no token here (not in twilio_accounts, disabled, or unreadable with ENCRYPTION_KEY, and not TWILIO_ACCOUNT_SID)", clip.Clip(c.account))
}

// sweepOnce sweeps one account and says how it went.
func sweepOnce(ctx context.Context, sw *reconcile.Sweeper, cred twilioapi.Credentials, since time.Time, stdout io.Writer) error {
	f, isFile := stdout.(*os.File)
	terminal := isFile && term.IsTerminal(int(f.Fd()))
	line := func(r reconcile.Result) string {
		return fmt.Sprintf("%s: %d pages, %d listed, %d already stored, %d stored now, %d media lists fetched, %d invalid",
			cred.AccountSID, r.Pages, r.Listed, r.Stored, r.Found, r.MediaFetched, r.Invalid)
	}
	var progress func(reconcile.Result)
	if terminal {
		progress = func(r reconcile.Result) { fmt.Fprintf(stdout, "\r%s", line(r)) }
	}
	res, err := sw.SweepSince(ctx, cred, since, progress)
	if terminal {
		fmt.Fprint(stdout, "\r")
	}
	summary := line(res) + fmt.Sprintf("; %d statuses asked for, %d moved", res.Statuses, res.StatusMoved)
	if err != nil {
		fmt.Fprintf(stdout, "%s; stopped: %v\n", summary, err)
		return err
	}
	fmt.Fprintln(stdout, summary)
	return nil
}
