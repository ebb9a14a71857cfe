package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"inbox/destination/kinds"
	"inbox/internal/clip"
	"inbox/keyring"
	"inbox/queue"
	"inbox/routing"
	"inbox/store"
)

const destinationsUsage = `Usage: inbox destinations VERB [NAME] [flags]

Verbs:
  add NAME -url URL [rules]   define an app to deliver to; its secret (whsec_…) is read from standard input, or -generate-secret prints a new one once
  add NAME -url nats://HOST:4222 -subject SUBJECT [-creds FILE] [rules]
                              publish to a JetStream subject instead (a stream must capture it)
  add NAME -url amqp://USER:PASS@HOST:5672/VHOST -exchange EXCHANGE [-routing-key KEY] [rules]
                              publish to a RabbitMQ exchange instead (a queue must be bound to it);
                              a broker is checked first (connect, stream or exchange), unless -no-check
  list                        show every destination: never a secret, URLs with credentials redacted
  set NAME [-url URL] [-rate N] [rules]
                              change a destination; a rule flag given replaces that rule (-to '' clears it)
  pause NAME [-note TEXT]     hold its deliveries (kept, delivered once resumed)
  resume NAME                 deliver again
  remove NAME [-force]        delete it; refused while its deliveries wait, unless -force cancels them
  backfill NAME -since DURATION
                              hand it the stored messages its rules match from the last DURATION (e.g. 24h),
                              each once, by a background job that serve or work runs

Rules (each repeatable and comma-separated; a rule not given matches anything):
  -account AC…  -to +15551234567|whatsapp:+…|SHORTCODE  -messaging-service MG…  -events inbound,status

  printf %s "$SECRET" | inbox destinations add orders -url https://orders.example/hooks/twilio -to +15551234567
`

// destinationsFlags is what the verbs of `inbox destinations` take.
type destinationsFlags struct {
	commonConfig
	encryptionKey  string
	url            string
	note           string
	rate           string
	generate       bool
	force          bool
	allowPlaintext bool
	accounts       listFlag
	to             listFlag
	services       listFlag
	events         listFlag
	since          time.Duration
	attempts       int
	subject        string
	credsFile      string
	exchange       string
	routingKey     string
	noCheck        bool
	// given names the flags given, to tell "-routing-key ''" from none.
	given map[string]bool
}

// listFlag is a repeatable flag of comma-separated values; set tells a
// flag given empty (clear the rule) from one not given.
type listFlag struct {
	values []string
	set    bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	l.set = true
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			l.values = append(l.values, part)
		}
	}
	return nil
}

// given is the rule as Manager.Set takes it: nil when the flag was not
// given, so the rule stays.
func (l *listFlag) given() []string {
	if !l.set {
		return nil
	}
	return append([]string{}, l.values...)
}

// destinationVerbs are the verbs that take a NAME, and the flags each binds
// beyond the common ones.
var destinationVerbs = []string{"add", "list", "set", "pause", "resume", "remove", "backfill"}

func (f *destinationsFlags) bind(b *binder, verb string) {
	f.commonConfig.bind(b)
	b.Secret(&f.encryptionKey, "ENCRYPTION_KEY", "keys that seal and open destinations' secrets and URLs: 32 bytes as base64 or hex, comma-separated, the first sealing")
	if verb == "add" || verb == "set" {
		b.fs.StringVar(&f.url, "url", "", "the app's URL (http or https; credentials in it are sealed and shown redacted)")
		b.fs.StringVar(&f.rate, "rate", "", "deliveries a second at most, across every worker (0 on set: unlimited)")
		b.fs.Var(&f.accounts, "account", "deliver only messages of these Twilio accounts (AC…)")
		b.fs.Var(&f.to, "to", "deliver only messages to these numbers, as Twilio writes To (+1555…, whatsapp:+1555…, a short code)")
		b.fs.Var(&f.services, "messaging-service", "deliver only messages of these Messaging Services (MG…)")
		b.fs.Var(&f.events, "events", "deliver only these events: inbound, status")
		b.fs.BoolVar(&f.allowPlaintext, "allow-plaintext-secrets", false, "store the secret and URL unencrypted when ENCRYPTION_KEY is not set")
		b.fs.StringVar(&f.subject, "subject", "", "nats:// destinations: the JetStream subject each message is published to")
		b.fs.StringVar(&f.exchange, "exchange", "", "amqp:// destinations: the exchange each message is published to")
		b.fs.StringVar(&f.routingKey, "routing-key", "", "amqp:// destinations: the routing key")
	}
	if verb == "add" {
		b.fs.StringVar(&f.credsFile, "creds", "", "nats:// destinations: a NATS credentials file (its content is sealed as the secret is)")
		b.fs.BoolVar(&f.noCheck, "no-check", false, "add a broker destination without connecting to it first (a broker that is not up yet)")
		b.fs.BoolVar(&f.generate, "generate-secret", false, "make a new secret and print it once, instead of reading one from standard input")
	}
	if verb == "remove" {
		b.fs.BoolVar(&f.force, "force", false, "cancel the deliveries that wait for it, and remove it")
	}
	if verb == "backfill" {
		b.fs.DurationVar(&f.since, "since", 0, "how far back: the messages received in the last DURATION (e.g. 24h, at most a year)")
		b.Int(&f.attempts, "forward-max-attempts", "FORWARD_MAX_ATTEMPTS", 25, "attempts of each delivery it queues")
	}
	if verb == "pause" {
		b.fs.StringVar(&f.note, "note", "", "why, shown beside the pause (at most 500 bytes)")
	}
	b.Usage = destinationsUsage
}

// runDestinations manages the apps stored messages are delivered to.
func runDestinations(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		io.WriteString(stderr, destinationsUsage)
		return errors.New("destinations: no verb given; verbs: " + strings.Join(destinationVerbs, ", "))
	}
	if isHelp(args[0]) {
		io.WriteString(stdout, destinationsUsage)
		return nil
	}
	verb, args := args[0], args[1:]
	if !slices.Contains(destinationVerbs, verb) {
		return fmt.Errorf("destinations: unknown verb %q; verbs: %s", clip.Clip(verb), strings.Join(destinationVerbs, ", "))
	}
	name := ""
	if verb != "list" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return fmt.Errorf("destinations %s: the destination's name comes first: inbox destinations %s NAME", verb, verb)
		}
		name, args = args[0], args[1:]
	}
	b := newBinder("destinations "+verb, getenv, stdout, stderr)
	var f destinationsFlags
	f.bind(b, verb)
	if err := b.Parse(args); err != nil {
		return err
	}
	f.given = map[string]bool{}
	b.fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	if b.fs.NArg() != 0 {
		// Not echoed: a secret passed by mistake would land in logs.
		return fmt.Errorf("destinations %s: %d unexpected arguments after the flags (a secret is read from standard input, never from an argument, where ps and shell history would show it)", verb, b.fs.NArg())
	}
	keys, err := keyring.Parse(f.encryptionKey)
	if err != nil {
		return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	_, pool, err := f.open(ctx, stderr, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	// A queue that runs nothing: remove counts and cancels what waits.
	q, err := queue.New(pool, queue.Config{Logger: slog.New(slog.DiscardHandler), Store: st})
	if err != nil {
		return err
	}
	m := &routing.Manager{Store: st, Deliveries: q, Keys: keys, AllowPlaintext: f.allowPlaintext, Check: kinds.Check}
	if err := f.run(ctx, m, verb, name, stdin, stdout); err != nil {
		return fmt.Errorf("destinations %s: %w", verb, err)
	}
	return nil
}

// run carries out verb on the destination name.
func (f *destinationsFlags) run(ctx context.Context, m *routing.Manager, verb, name string, stdin io.Reader, stdout io.Writer) error {
	switch verb {
	case "add":
		return f.add(ctx, m, name, stdin, stdout)
	case "list":
		return listDestinations(ctx, m, stdout)
	case "set":
		return f.set(ctx, m, name, stdout)
	case "pause":
		changed, err := m.Pause(ctx, name, f.note)
		return report(stdout, err, name, changed, "paused", "was paused already")
	case "resume":
		changed, err := m.Resume(ctx, name)
		return report(stdout, err, name, changed, "resumed", "was not paused")
	case "backfill":
		return f.backfill(ctx, m, name, stdout)
	default: // remove
		cancelled, err := m.Remove(ctx, name, f.force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: removed; %d waiting delivery jobs cancelled\n", name, cancelled)
		return nil
	}
}

// backfill starts a backfill of name, or says which one is under way.
func (f *destinationsFlags) backfill(ctx context.Context, m *routing.Manager, name string, stdout io.Writer) error {
	if f.since == 0 {
		return errors.New("-since is required: how far back, e.g. -since 24h")
	}
	if f.attempts < 1 || f.attempts > math.MaxInt16 {
		return fmt.Errorf("invalid FORWARD_MAX_ATTEMPTS %d: want 1 to %d", f.attempts, math.MaxInt16)
	}
	m.Attempts = int16(f.attempts)
	run, created, err := m.Backfill(ctx, name, f.since)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "%s: backfill %d queued: the messages it matches received since %s, each once; serve or work runs it (GET /api/destinations/%s/backfills shows its progress)\n",
			name, run.ID, run.Since.UTC().Format(time.RFC3339), name)
	} else {
		fmt.Fprintf(stdout, "%s: backfill %d is under way already (since %s; %d messages read, %d queued so far); nothing new started\n",
			name, run.ID, run.Since.UTC().Format(time.RFC3339), run.Read, run.Queued)
	}
	return nil
}

func report(stdout io.Writer, err error, name string, changed bool, did, already string) error {
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(stdout, "%s: %s\n", name, did)
	} else {
		fmt.Fprintf(stdout, "%s: %s\n", name, already)
	}
	return nil
}

// parseRate reads -rate: "" is not given (nil); a number must be positive,
// or 0 where allowZero (set: unlimited).
func parseRate(s string, allowZero bool) (*float64, error) {
	if s == "" {
		return nil, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || (r == 0 && !allowZero) {
		return nil, fmt.Errorf("-rate: %q is not a positive number of deliveries a second", clip.Clip(s))
	}
	if r != 0 {
		if err := routing.CheckRate(r); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

func (f *destinationsFlags) add(ctx context.Context, m *routing.Manager, name string, stdin io.Reader, stdout io.Writer) error {
	if f.url == "" {
		return errors.New("-url is required: the app's http(s) URL, or a broker's nats:// or amqp:// URL")
	}
	rate, err := parseRate(f.rate, false)
	if err != nil {
		return err
	}
	if err := routing.CheckName(name); err != nil {
		return err
	}
	secret := ""
	if f.generate {
		secret = routing.GenerateSecret()
	} else if secret, err = readSecret(stdin); err != nil {
		return err
	}
	var creds []byte
	if f.credsFile != "" {
		if creds, err = readFileAtMost(f.credsFile, routing.MaxCreds); err != nil {
			return fmt.Errorf("-creds: %w", err)
		}
	}
	d := routing.Definition{Name: name, URL: f.url, Secret: secret, NoCheck: f.noCheck,
		Target: routing.Target{Subject: f.subject, Creds: creds, Exchange: f.exchange, RoutingKey: f.routingKey},
		Rules:  routing.Rules{Accounts: f.accounts.values, ToNumbers: f.to.values, Services: f.services.values, Events: f.events.values}}
	if rate != nil {
		d.Rate = *rate
	}
	if err := m.Add(ctx, d); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s\n", name)
	if f.generate {
		fmt.Fprintf(stdout, "its secret, shown this once (give it to the app, which verifies each delivery with it):\n%s\n", secret)
	}
	return nil
}

func (f *destinationsFlags) set(ctx context.Context, m *routing.Manager, name string, stdout io.Writer) error {
	rate, err := parseRate(f.rate, true)
	if err != nil {
		return err
	}
	c := routing.Change{Accounts: f.accounts.given(), ToNumbers: f.to.given(), Services: f.services.given(), Events: f.events.given(), Rate: rate}
	if f.url != "" {
		c.URL = &f.url
	}
	given := func(flag string, v *string) *string {
		if f.given[flag] {
			return v
		}
		return nil
	}
	c.Subject, c.Exchange, c.RoutingKey = given("subject", &f.subject), given("exchange", &f.exchange), given("routing-key", &f.routingKey)
	if err := m.Set(ctx, name, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: changed\n", name)
	return nil
}

// maxSecretInput bounds what is read for a secret: one is under 100 bytes,
// and a mistaken redirect must not be read whole.
const maxSecretInput = 4 << 10

// readSecret reads a destination's secret from standard input.
func readSecret(stdin io.Reader) (string, error) {
	if stdin == nil {
		return "", errors.New("no secret: pipe it to standard input, or pass -generate-secret")
	}
	raw, err := readAtMost(stdin, maxSecretInput, "standard input")
	if err != nil {
		return "", fmt.Errorf("read the secret: %w", err)
	}
	secret := strings.TrimSpace(string(raw))
	if secret == "" {
		return "", errors.New("no secret on standard input: pipe one (whsec_…), or pass -generate-secret")
	}
	return secret, routing.CheckSecret(secret)
}

func listDestinations(ctx context.Context, m *routing.Manager, stdout io.Writer) error {
	all, err := m.List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tWHERE\tACCOUNTS\tTO\tMESSAGING SERVICES\tEVENTS\tRATE\tSTATE\tWAITING\tLAG")
	for _, d := range all {
		rate, state := "unlimited", "running"
		if d.Rate != nil {
			rate = strconv.FormatFloat(*d.Rate, 'f', -1, 64) + "/s"
		}
		if d.PausedReason != "" {
			state = "paused (" + d.PausedReason + ")"
		}
		r := d.Rules
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Name, d.Where(), anyOf(r.Accounts), anyOf(r.ToNumbers), anyOf(r.Services),
			anyOf(r.Events), rate, state, d.Waiting, d.Lag.Round(time.Second))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d destinations\n", len(all))
	return nil
}

// anyOf shows a rule: its values, or "any" when it is empty.
func anyOf(rule []string) string {
	if len(rule) == 0 {
		return "any"
	}
	return strings.Join(rule, ",")
}
