package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/account"
	"inbox/keyring"
	"inbox/simulate"
	"inbox/store"
)

// runSimulate plays Twilio against a running service: it sends signed
// inbound messages, each delivered several times at once, then reports what
// the service answered and how many rows it stored for those sids.
func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	b := newBinder("simulate", getenv, stdout, stderr)
	var (
		cfg                     commonConfig
		target, public, kind    string
		token                   string
		n, repeats, concurrency int
		statuses                bool
		receive, forwardSecret  string
		overrides               string
		receiveWait             time.Duration
		accounts                int
		allowPlaintext          bool
		encryptionKey           string
	)
	cfg.bind(b)
	b.String(&target, "url", "SIMULATE_URL", "http://127.0.0.1:8080", "where the service listens")
	b.String(&public, "public-base-url", "PUBLIC_BASE_URL", "", "the URL signatures cover, as the service is configured (default -url)")
	b.String(&overrides, "overrides", "", "",
		"Twilio's connection overrides, as in the webhook URL's fragment (e.g. rc=3&rp=5xx): retry as Twilio would")
	b.Int(&n, "n", "", 10, "how many distinct messages")
	b.Int(&repeats, "repeats", "", 3, "how many times each message is delivered, at once")
	b.Int(&concurrency, "concurrency", "", 8, "how many deliveries in flight at once")
	b.String(&kind, "kind", "", "mixed", "sms, mms, whatsapp or mixed")
	b.fs.BoolVar(&statuses, "status", false, "send delivery status callbacks for outbound messages instead: realistic sequences, every callback -repeats times, all shuffled")
	b.Secret(&token, "TWILIO_AUTH_TOKEN", "the token the service verifies with; simulate signs with it")
	b.String(&receive, "receive", "", "",
		"also play the team's app on this address (the service's FORWARD_URL): verify every forward's signature with FORWARD_SECRET and check each message arrives")
	b.Duration(&receiveWait, "receive-wait", "", 30*time.Second, "with -receive: how long to wait for the forwards")
	b.Secret(&forwardSecret, "FORWARD_SECRET", "with -receive: the service's forward secret, to verify what arrives")
	b.Int(&accounts, "accounts", "", 0,
		"sign for this many Twilio accounts, added to twilio_accounts for the run (sealed with ENCRYPTION_KEY) and removed after; 0: TWILIO_AUTH_TOKEN's")
	b.fs.BoolVar(&allowPlaintext, "allow-plaintext-tokens", false, "with -accounts: store their tokens unencrypted when ENCRYPTION_KEY is not set")
	b.Secret(&encryptionKey, "ENCRYPTION_KEY", "with -accounts: the key the added accounts' tokens are sealed with")
	if err := b.Parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 0 {
		return fmt.Errorf("simulate: unexpected arguments %q", b.fs.Args())
	}
	if token == "" && accounts == 0 {
		return errors.New("TWILIO_AUTH_TOKEN is not set: simulate signs with the service's token (or give -accounts)")
	}
	var kinds []simulate.Kind
	if kind != "mixed" {
		k, err := simulate.ParseKind(kind)
		if err != nil {
			return err
		}
		kinds = []simulate.Kind{k}
	}
	_, poolCfg, err := cfg.setup(stderr)
	if err != nil {
		return err
	}

	opts := simulate.Options{
		BaseURL: target, PublicBaseURL: public, Token: token,
		Messages: n, Repeats: repeats, Concurrency: concurrency, Kinds: kinds, Overrides: overrides,
	}
	if accounts > 0 {
		keys, err := keyring.Parse(encryptionKey)
		if err != nil {
			return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
		}
		added, remove, err := addSimulatedAccounts(ctx, poolCfg, &account.Manager{Keys: keys, AllowPlaintext: allowPlaintext}, accounts)
		if err != nil {
			return fmt.Errorf("simulate -accounts: %w", err)
		}
		defer remove()
		opts.Accounts = added
		fmt.Fprintf(stdout, "signing for %d accounts, added to twilio_accounts for this run\n", accounts)
	}
	var rcv *simulate.Receiver
	if receive != "" {
		if rcv, err = simulate.NewReceiver(receive, forwardSecret); err != nil {
			return fmt.Errorf("simulate -receive (FORWARD_SECRET must be the service's): %w", err)
		}
		defer rcv.Close()
	}
	if statuses {
		return simulateStatuses(ctx, opts, poolCfg, stdout, rcv, receiveWait)
	}
	res, err := simulate.Run(ctx, opts)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	deliveries := n * repeats
	fmt.Fprintf(stdout, "sent %d deliveries of %d messages (%d each, %d at once) to %s in %s\n",
		deliveries, n, repeats, concurrency, target, res.Elapsed.Round(time.Millisecond))
	printAnswers(stdout, res)

	rows, err := countRows(ctx, poolCfg, res.SIDs)
	if err != nil {
		fmt.Fprintf(stdout, "rows stored: unknown (%v)\n", err)
		return err
	}
	verdict := "exactly once each"
	if rows != int64(n) {
		verdict = fmt.Sprintf("want %d", n)
	}
	fmt.Fprintf(stdout, "rows stored for those %d sids: %d (%s)\n", n, rows, verdict)
	if res.Statuses[200] != deliveries || rows != int64(n) {
		return fmt.Errorf("simulate: %d of %d deliveries answered 200, %d rows for %d messages", res.Statuses[200], deliveries, rows, n)
	}
	if rcv != nil {
		return reportForwards(stdout, rcv, res.SIDs, "messages", receiveWait)
	}
	return nil
}

// addSimulatedAccounts adds n accounts with random sids and tokens, and
// returns them and what removes them again.
func addSimulatedAccounts(ctx context.Context, poolCfg *pgxpool.Config, m *account.Manager, n int) ([]simulate.Account, func(), error) {
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the database: %w", err)
	}
	m.Store = store.New(pool)
	var added []simulate.Account
	remove := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, a := range added {
			m.Remove(ctx, a.SID)
		}
		pool.Close()
	}
	for range n {
		var b [32]byte
		rand.Read(b[:])
		a := simulate.Account{SID: "AC" + hex.EncodeToString(b[:16]), Token: hex.EncodeToString(b[16:])}
		if err := m.Add(ctx, a.SID, a.Token, "simulate"); err != nil {
			remove()
			return nil, nil, err
		}
		added = append(added, a)
	}
	return added, remove, nil
}

func countRows(ctx context.Context, cfg *pgxpool.Config, sids []string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("connect to the database (set DATABASE_URL to the service's): %w", err)
	}
	defer pool.Close()
	n, err := store.New(pool).CountMessagesBySIDs(ctx, sids)
	if err != nil {
		return 0, fmt.Errorf("%w (set DATABASE_URL to the service's database)", err)
	}
	return n, nil
}

func printAnswers(stdout io.Writer, res simulate.Result) {
	codes := make([]int, 0, len(res.Statuses))
	for c := range res.Statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(stdout, "  answered %d: %d\n", c, res.Statuses[c])
	}
	if res.Failures > 0 {
		fmt.Fprintf(stdout, "  no answer: %d (first: %v)\n", res.Failures, res.Errors[0])
	}
	if res.Retries > 0 {
		fmt.Fprintf(stdout, "  sent again under the connection overrides: %d (the answers above are each delivery's last)\n", res.Retries)
	}
}

// simulateStatuses plays shuffled, repeated status callbacks and checks
// that every message ends in the status its sequence ends in.
//
// With a receiver, it also checks that each message's final status was
// forwarded: the final status is the highest, so one callback of it moved
// the message and enqueued its forward.
func simulateStatuses(ctx context.Context, opts simulate.Options, poolCfg *pgxpool.Config, stdout io.Writer, rcv *simulate.Receiver, wait time.Duration) error {
	res, final, err := simulate.RunStatuses(ctx, opts)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	sent := 0
	for _, n := range res.Statuses {
		sent += n
	}
	fmt.Fprintf(stdout, "sent %d status callbacks for %d outbound messages (each %d times, shuffled, %d at once) in %s\n",
		sent+res.Failures, opts.Messages, opts.Repeats, opts.Concurrency, res.Elapsed.Round(time.Millisecond))
	printAnswers(stdout, res)

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("connect to the database (set DATABASE_URL to the service's): %w", err)
	}
	defer pool.Close()
	st := store.New(pool)
	wrong := 0
	for sid, want := range final {
		m, err := st.GetMessageBySID(ctx, sid)
		if err != nil || m.Status != want {
			wrong++
			if wrong <= 3 {
				fmt.Fprintf(stdout, "  %s: status %q (%v), want %q\n", sid, m.Status, err, want)
			}
		}
	}
	fmt.Fprintf(stdout, "messages in their final status: %d of %d\n", len(final)-wrong, len(final))
	if wrong > 0 || res.Failures > 0 || res.Statuses[200] != sent {
		return fmt.Errorf("simulate: %d messages not in their final status; answers %v", wrong, res.Statuses)
	}
	if rcv != nil {
		ids := make([]string, 0, len(final))
		for sid, status := range final {
			ids = append(ids, sid+"."+status)
		}
		return reportForwards(stdout, rcv, ids, "final statuses", wait)
	}
	return nil
}

// reportForwards waits for the service to forward every message to the
// receiver and says how that went.
func reportForwards(stdout io.Writer, rcv *simulate.Receiver, sids []string, what string, wait time.Duration) error {
	waitErr := rcv.Wait(sids, time.Now().Add(wait))
	forwarded, again := rcv.Forwarded(sids)
	verdict := "each once"
	if forwarded != len(sids) {
		verdict = fmt.Sprintf("%d never within %s", len(sids)-forwarded, wait)
	}
	fmt.Fprintf(stdout, "forwarded: %d %s, %s (%d redeliveries, dropped by webhook-id)\n", forwarded, what, verdict, again)
	if bad, first := rcv.BadSignatures(); bad > 0 {
		fmt.Fprintf(stdout, "  signatures that failed: %d (first: %v)\n", bad, first)
		return fmt.Errorf("simulate: %d forwards failed signature verification", bad)
	}
	if waitErr != nil {
		return fmt.Errorf("simulate: %w", waitErr)
	}
	return nil
}
