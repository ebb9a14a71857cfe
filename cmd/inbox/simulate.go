package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"inbox/simulate"
	"inbox/store"
)

// runSimulate plays Twilio against a running service: it sends signed
// inbound messages, each delivered several times at once, then reports what
// the service answered and how many rows it stored for those sids.
func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg commonConfig
	cfg.bind(fs, getenv)
	target := fs.String("url", envOr(getenv, "SIMULATE_URL", "http://127.0.0.1:8080"), "where the service listens (env SIMULATE_URL)")
	public := fs.String("public-base-url", getenv("PUBLIC_BASE_URL"), "the URL signatures cover, as the service is configured (env PUBLIC_BASE_URL; default -url)")
	n := fs.Int("n", 10, "how many distinct messages")
	repeats := fs.Int("repeats", 3, "how many times each message is delivered, at once")
	concurrency := fs.Int("concurrency", 8, "how many deliveries in flight at once")
	kind := fs.String("kind", "mixed", "sms, mms, whatsapp or mixed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("simulate: unexpected arguments %q", fs.Args())
	}
	token := getenv("TWILIO_AUTH_TOKEN")
	if token == "" {
		return errors.New("TWILIO_AUTH_TOKEN is not set: simulate signs with the service's token")
	}
	var kinds []simulate.Kind
	if *kind != "mixed" {
		k, err := simulate.ParseKind(*kind)
		if err != nil {
			return err
		}
		kinds = []simulate.Kind{k}
	}
	poolCfg, err := cfg.poolConfig()
	if err != nil {
		return err
	}

	res, err := simulate.Run(ctx, simulate.Options{
		BaseURL: *target, PublicBaseURL: *public, Token: token,
		Messages: *n, Repeats: *repeats, Concurrency: *concurrency, Kinds: kinds,
	})
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	deliveries := *n * *repeats
	fmt.Fprintf(stdout, "sent %d deliveries of %d messages (%d each, %d at once) to %s in %s\n",
		deliveries, *n, *repeats, *concurrency, *target, res.Elapsed.Round(time.Millisecond))
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

	rows, err := countRows(ctx, poolCfg, res.SIDs)
	if err != nil {
		fmt.Fprintf(stdout, "rows stored: unknown (%v)\n", err)
		return err
	}
	verdict := "exactly once each"
	if rows != int64(*n) {
		verdict = fmt.Sprintf("want %d", *n)
	}
	fmt.Fprintf(stdout, "rows stored for those %d sids: %d (%s)\n", *n, rows, verdict)
	if res.Statuses[200] != deliveries || rows != int64(*n) {
		return fmt.Errorf("simulate: %d of %d deliveries answered 200, %d rows for %d messages", res.Statuses[200], deliveries, rows, *n)
	}
	return nil
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
