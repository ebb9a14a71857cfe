package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"inbox/account"
	"inbox/internal/clip"
	"inbox/keyring"
	"inbox/simulate"
	"inbox/store"
	"inbox/twilioapi"
)

// simulateConfig is the configuration of `inbox simulate`.
type simulateConfig struct {
	commonConfig
	opts                   simulate.Options
	kind                   string
	statuses, events       bool
	receive, forwardSecret string
	app                    string
	account                string
	receiveWait            time.Duration
	accounts               int
	allowPlaintext         bool
	encryptionKey          string
}

func (c *simulateConfig) bind(b *binder) {
	c.commonConfig.bind(b)
	o := &c.opts
	b.String(&o.BaseURL, "url", "SIMULATE_URL", "http://127.0.0.1:8080", "where the service listens")
	b.String(&o.PublicBaseURL, "public-base-url", "PUBLIC_BASE_URL", "", "the URL signatures cover, as the service is configured; unset: -url's")
	b.String(&o.MediaBase, "twilio-api-url", "TWILIO_API_URL", twilioapi.DefaultBaseURL,
		"the service's: the simulated MMS's media are there; -app plays Twilio's media host when it is not Twilio's (scripts/run's stand-in)")
	b.String(&o.Overrides, "overrides", "", "",
		"Twilio's connection overrides, as in the webhook URL's fragment (e.g. rc=3&rp=5xx): retry as Twilio would")
	b.Int(&o.Messages, "n", "", 10, "how many distinct messages")
	b.Int(&o.Repeats, "repeats", "", 3, "how many times each message is delivered, at once")
	b.Int(&o.Concurrency, "concurrency", "", 8, "how many deliveries in flight at once")
	b.String(&c.kind, "kind", "", "mixed", "sms, mms, whatsapp or mixed")
	b.fs.BoolVar(&c.events, "events", false, "deliver each message both by its webhook and in an Event Streams batch (/twilio/events), each -repeats times, all shuffled")
	b.fs.BoolVar(&c.statuses, "status", false, "send delivery status callbacks for outbound messages instead: realistic sequences, every callback -repeats times, all shuffled")
	b.Secret(&o.Token, "TWILIO_AUTH_TOKEN", "the token the service verifies with; simulate signs with it")
	b.String(&c.receive, "receive", "", "",
		"also play the team's app on this address (the service's FORWARD_URL): verify every forward's signature with FORWARD_SECRET and check each message arrives")
	b.String(&c.app, "app", "", "",
		"play only the team's app on this address until interrupted, verifying each forward with FORWARD_SECRET and printing a line for each: what scripts/run keeps running, so forwards and the console's Forward again always have an app to reach; -receive on the same address asks it what arrived")
	b.String(&c.account, "account", "", "",
		"sign as this Twilio account (AC…, one added with inbox accounts add), with its token as TWILIO_AUTH_TOKEN; default: the development account AC000…")
	b.Duration(&c.receiveWait, "receive-wait", "", 30*time.Second, "with -receive: how long to wait for the forwards")
	b.Secret(&c.forwardSecret, "FORWARD_SECRET", "with -receive: the service's forward secret, to verify what arrives")
	b.Int(&c.accounts, "accounts", "", 0,
		"sign for this many Twilio accounts, added to twilio_accounts for the run (sealed with ENCRYPTION_KEY) and removed after; 0: TWILIO_AUTH_TOKEN's")
	b.fs.BoolVar(&c.allowPlaintext, "allow-plaintext-tokens", false, "with -accounts: store their tokens unencrypted when ENCRYPTION_KEY is not set")
	b.Secret(&c.encryptionKey, "ENCRYPTION_KEY", "with -accounts: the key the added accounts' tokens are sealed with")
}

func (c *simulateConfig) validate() error {
	if c.app != "" {
		if c.forwardSecret == "" {
			return errors.New("-app: FORWARD_SECRET is not set: the app verifies every forward with the service's secret")
		}
		return nil
	}
	if c.opts.Token == "" && c.accounts == 0 {
		return errors.New("TWILIO_AUTH_TOKEN is not set: simulate signs with the service's token, or -account's (or give -accounts)")
	}
	if c.account != "" {
		if !validAccountSID(c.account) {
			return fmt.Errorf("-account %q: want AC and 32 hexadecimal digits, as inbox accounts list shows", clip.Clip(c.account))
		}
		if c.accounts > 0 {
			return errors.New("-account and -accounts: choose one")
		}
		c.opts.Accounts = []simulate.Account{{SID: c.account, Token: c.opts.Token}}
	}
	if c.events && c.statuses {
		return errors.New("-events and -status: choose one")
	}
	if c.kind != "mixed" {
		k, err := simulate.ParseKind(c.kind)
		if err != nil {
			return err
		}
		c.opts.Kinds = []simulate.Kind{k}
	}
	return nil
}

// runSimulate plays Twilio against a running service: it sends signed
// inbound messages (or status callbacks), each delivered several times at
// once, then reports what the service answered, what it stored for those
// sids and, with -receive, what it forwarded.
func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg simulateConfig
	if err := parseCommand("simulate", &cfg, args, getenv, stdout, stderr); err != nil {
		return err
	}
	if cfg.app != "" {
		mediaToken := ""
		if cfg.opts.MediaBase != twilioapi.DefaultBaseURL {
			mediaToken = cfg.opts.Token
		}
		return playApp(ctx, cfg.app, cfg.forwardSecret, mediaToken, stdout)
	}
	_, pool, err := cfg.open(ctx, stderr, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	if cfg.accounts > 0 {
		remove, err := cfg.addAccounts(ctx, st, stdout)
		if err != nil {
			return fmt.Errorf("simulate -accounts: %w", err)
		}
		defer remove()
	}
	rcv, closeRcv, err := cfg.arrivals(ctx)
	if err != nil {
		return err
	}
	defer closeRcv()
	if cfg.statuses {
		return simulateStatuses(ctx, cfg.opts, st, stdout, rcv, cfg.receiveWait)
	}
	run := simulate.Run
	if cfg.events {
		run = simulate.RunEvents
	}
	return simulateMessages(ctx, run, cfg.opts, st, stdout, rcv, cfg.receiveWait)
}

// addAccounts adds cfg.accounts accounts with random sids and tokens for
// the run, and returns what removes them again.
func (c *simulateConfig) addAccounts(ctx context.Context, st *store.Store, stdout io.Writer) (func(), error) {
	keys, err := keyring.Parse(c.encryptionKey)
	if err != nil {
		return nil, fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	m := &account.Manager{Store: st, Keys: keys, AllowPlaintext: c.allowPlaintext}
	remove := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, a := range c.opts.Accounts {
			m.Remove(ctx, a.SID)
		}
	}
	for range c.accounts {
		var b [32]byte
		rand.Read(b[:])
		a := simulate.Account{SID: "AC" + hex.EncodeToString(b[:16]), Token: hex.EncodeToString(b[16:])}
		if err := m.Add(ctx, a.SID, a.Token, "simulate"); err != nil {
			remove()
			return nil, err
		}
		c.opts.Accounts = append(c.opts.Accounts, a)
	}
	fmt.Fprintf(stdout, "signing for %d accounts, added to twilio_accounts for this run\n", c.accounts)
	return remove, nil
}

// simulateMessages plays inbound messages and checks each is stored once,
// and, with a receiver, forwarded.
func simulateMessages(ctx context.Context, run func(context.Context, simulate.Options) (simulate.Result, error), opts simulate.Options, st *store.Store,
	stdout io.Writer, rcv simulate.Arrivals, wait time.Duration) error {
	res, err := run(ctx, opts)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if len(res.Statuses) == 0 {
		// Nothing answered: say so (and where it looked) before anything
		// else fails for the same reason.
		return simulate.ReportMessages(stdout, opts, res, 0)
	}
	countCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := st.CountMessagesBySIDs(countCtx, res.SIDs)
	if err != nil {
		return fmt.Errorf("count the rows stored (set DATABASE_URL to the service's database): %w", err)
	}
	if err := simulate.ReportMessages(stdout, opts, res, rows); err != nil {
		return err
	}
	if rcv != nil {
		return simulate.ReportForwards(ctx, stdout, rcv, res.SIDs, "messages", wait)
	}
	return nil
}

// simulateStatuses plays shuffled, repeated status callbacks and checks
// that every message ends in the status its sequence ends in. With a
// receiver, it also checks that each message's final status was forwarded:
// the final status is the highest, so one callback of it moved the message
// and enqueued its forward.
func simulateStatuses(ctx context.Context, opts simulate.Options, st *store.Store, stdout io.Writer, rcv simulate.Arrivals, wait time.Duration) error {
	res, final, err := simulate.RunStatuses(ctx, opts)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stored := make(map[string]string, len(final))
	for sid := range final {
		if m, err := st.GetMessageBySID(readCtx, sid); err == nil {
			stored[sid] = m.Status
		}
	}
	if err := simulate.ReportStatuses(stdout, opts, res, final, stored); err != nil {
		return err
	}
	if rcv != nil {
		ids := make([]string, 0, len(final))
		for sid, status := range final {
			ids = append(ids, sid+"."+status)
		}
		return simulate.ReportForwards(ctx, stdout, rcv, ids, "final statuses", wait)
	}
	return nil
}

// validAccountSID reports whether s has the shape of an account sid.
func validAccountSID(s string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, "AC") {
		return false
	}
	_, err := hex.DecodeString(s[2:])
	return err == nil
}

// arrivals is where a run checks what was forwarded (-receive): a receiver
// of its own on the address, or, when the address is taken by the app
// scripts/run keeps running (simulate -app), that app's tally.
func (c *simulateConfig) arrivals(ctx context.Context) (simulate.Arrivals, func(), error) {
	if c.receive == "" {
		return nil, func() {}, nil
	}
	rcv, err := simulate.NewReceiver(c.receive, c.forwardSecret)
	if err == nil {
		return rcv, func() { rcv.Close() }, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, nil, fmt.Errorf("simulate -receive (FORWARD_SECRET must be the service's): %w", err)
	}
	remote, rerr := simulate.NewRemoteArrivals(ctx, c.receive)
	if rerr != nil {
		return nil, nil, fmt.Errorf("simulate -receive: %w", rerr)
	}
	return remote, func() {}, nil
}

// playApp plays the team's app on addr until ctx ends: every forward is
// verified with secret, answered, and printed; with mediaToken, it also
// plays Twilio's media host and reads each forwarded medium back.
func playApp(ctx context.Context, addr, secret, mediaToken string, stdout io.Writer) error {
	rcv, err := simulate.NewReceiver(addr, secret)
	if err != nil {
		return fmt.Errorf("simulate -app (FORWARD_SECRET must be the service's): %w", err)
	}
	rcv.LogTo(stdout)
	fmt.Fprintf(stdout, "app: the stand-in app listens on http://%s until interrupted; each forward is verified and printed\n", rcv.Addr())
	if mediaToken != "" {
		rcv.PlayMediaHost(mediaToken)
		fmt.Fprintf(stdout, "app: it also plays Twilio's media host for the simulated MMS (TWILIO_API_URL), and reads each forwarded medium from its download_url\n")
	}
	<-ctx.Done()
	return rcv.Close()
}
