package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"golang.org/x/term"

	"inbox/account"
	"inbox/internal/clip"
	"inbox/keyring"
	"inbox/store"
)

const accountsUsage = `Usage: inbox accounts VERB [ACCOUNT_SID] [flags]

Verbs:
%s
Tokens are never taken from a flag or an argument: they would show in ps and in
shell history. With ENCRYPTION_KEY set they are stored encrypted (AES-256-GCM);
without it, add and set-secondary refuse unless -allow-plaintext-tokens is given.
Running servers see a change within moments, without a restart.

  printf %%s "$TOKEN" | inbox accounts add AC0123… -label acme

Run inbox accounts VERB -h for a verb's flags.
`

// accountsVerb is one verb of `inbox accounts`.
type accountsVerb struct {
	name string
	// sid: the verb takes an account sid first; token: it reads a token.
	sid, token bool
	help       string
	// done is what the verb prints once it succeeded, of the account and
	// of how its token is stored.
	done func(sid, stored string) string
	run  func(ctx context.Context, m *account.Manager, a accountsArgs, stdout io.Writer) error
}

// accountsArgs is what a verb is given.
type accountsArgs struct {
	sid, token, label string
}

// accountVerbs are the verbs of `inbox accounts`, in the order -h lists
// them.
func accountVerbs() []accountsVerb {
	return []accountsVerb{
		{name: "add", sid: true, token: true, help: "add an account; its auth token is read from standard input (or -token-file)",
			done: func(sid, stored string) string { return "added " + sid + ", token stored " + stored + "\n" },
			run: func(ctx context.Context, m *account.Manager, a accountsArgs, _ io.Writer) error {
				return m.Add(ctx, a.sid, a.token, a.label)
			}},
		{name: "set-secondary", sid: true, token: true, help: "set a second token (read the same way), accepted beside the primary while rotating",
			done: func(sid, stored string) string {
				return "set the secondary token of " + sid + ", stored " + stored + ": both tokens verify until rotate\n"
			},
			run: func(ctx context.Context, m *account.Manager, a accountsArgs, _ io.Writer) error {
				return m.SetSecondary(ctx, a.sid, a.token)
			}},
		{name: "rotate", sid: true, help: "promote the secondary token to primary; the old primary stops verifying",
			done: func(sid, _ string) string { return "rotated " + sid + ": the former secondary is now the only token\n" },
			run: func(ctx context.Context, m *account.Manager, a accountsArgs, _ io.Writer) error {
				return m.Rotate(ctx, a.sid)
			}},
		{name: "disable", sid: true, help: "refuse the account's deliveries (403), keeping its tokens", done: changed("disabled"),
			run: func(ctx context.Context, m *account.Manager, a accountsArgs, _ io.Writer) error {
				return m.SetDisabled(ctx, a.sid, true)
			}},
		{name: "enable", sid: true, help: "accept them again", done: changed("enabled"),
			run: func(ctx context.Context, m *account.Manager, a accountsArgs, _ io.Writer) error {
				return m.SetDisabled(ctx, a.sid, false)
			}},
		{name: "remove", sid: true, help: "delete the account and its tokens", done: changed("removed"),
			run: func(ctx context.Context, m *account.Manager, a accountsArgs, _ io.Writer) error {
				return m.Remove(ctx, a.sid)
			}},
		{name: "list", help: "show sids, labels, whether a secondary is set: never a token",
			run: func(ctx context.Context, m *account.Manager, _ accountsArgs, stdout io.Writer) error {
				return listAccounts(ctx, m, stdout)
			}},
		{name: "reseal", help: "seal every token again with the first ENCRYPTION_KEY (after adding a new key first)",
			run: func(ctx context.Context, m *account.Manager, _ accountsArgs, stdout io.Writer) error {
				n, err := m.Reseal(ctx)
				if err != nil {
					return fmt.Errorf("%w (%d resealed before)", err, n)
				}
				fmt.Fprintf(stdout, "resealed %d accounts with the first key\n", n)
				return nil
			}},
	}
}

// changed is the done line of a verb that changes an account's state.
func changed(what string) func(sid, _ string) string {
	return func(sid, _ string) string { return sid + ": " + what + "\n" }
}

func accountsHelp() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, v := range accountVerbs() {
		args := ""
		if v.sid {
			args = " AC…"
		}
		fmt.Fprintf(w, "  %s%s\t%s\n", v.name, args, v.help)
	}
	w.Flush()
	return fmt.Sprintf(accountsUsage, b.String())
}

func verbNames() string {
	verbs := accountVerbs()
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	return strings.Join(names, ", ")
}

// runAccounts manages the Twilio accounts whose webhooks `serve` accepts.
func runAccounts(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		io.WriteString(stderr, accountsHelp())
		return errors.New("accounts: no verb given; verbs: " + verbNames())
	}
	if isHelp(args[0]) {
		io.WriteString(stdout, accountsHelp())
		return nil
	}
	verbs := accountVerbs()
	i := slices.IndexFunc(verbs, func(v accountsVerb) bool { return v.name == args[0] })
	if i < 0 {
		return fmt.Errorf("accounts: unknown verb %q; verbs: %s", clip.Clip(args[0]), verbNames())
	}
	verb, args := verbs[i], args[1:]
	var a accountsArgs
	if verb.sid && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		a.sid, args = args[0], args[1:]
	}
	cfg, err := parseAccountsFlags(verb, args, getenv, stdout, stderr, &a)
	if err != nil {
		return err
	}
	if verb.sid && a.sid == "" {
		return fmt.Errorf("accounts %s: the account sid (AC…) comes first: inbox accounts %s AC…", verb.name, verb.name)
	}
	keys, err := keyring.Parse(cfg.encryptionKey)
	if err != nil {
		return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	if verb.token {
		if !keys.Encrypts() && !cfg.allowPlaintext {
			return account.ErrPlaintextRefused
		}
		if a.token, err = readToken(stdin, stderr, cfg.tokenFile, a.sid); err != nil {
			return err
		}
	}
	return withAccountsManager(ctx, cfg, keys, stderr, func(m *account.Manager) error {
		if err := verb.run(ctx, m, a, stdout); err != nil {
			return fmt.Errorf("accounts %s: %w", verb.name, err)
		}
		if verb.done != nil {
			io.WriteString(stdout, verb.done(a.sid, storedAs(keys)))
		}
		return nil
	})
}

// accountsConfig is the flags and settings of one `inbox accounts` verb.
type accountsConfig struct {
	commonConfig
	encryptionKey  string
	tokenFile      string
	allowPlaintext bool
	force          bool
}

// parseAccountsFlags binds the flags verb takes and parses args: -h prints
// the verb's own help and returns flag.ErrHelp, which run treats as success.
func parseAccountsFlags(verb accountsVerb, args []string, getenv func(string) string, stdout, stderr io.Writer, a *accountsArgs) (*accountsConfig, error) {
	b := newBinder("accounts "+verb.name, getenv, stdout, stderr)
	var cfg accountsConfig
	cfg.bind(b, verb, a)
	if err := b.Parse(args); err != nil {
		return nil, err
	}
	if b.fs.NArg() != 0 {
		if verb.token {
			return nil, fmt.Errorf("accounts %s: unexpected arguments: a token is read from standard input or -token-file, never from an argument, where ps and shell history would show it", verb.name)
		}
		return nil, fmt.Errorf("accounts %s: unexpected arguments %q", verb.name, b.fs.Args())
	}
	return &cfg, nil
}

// bind registers the flags verb takes.
func (cfg *accountsConfig) bind(b *binder, verb accountsVerb, a *accountsArgs) {
	cfg.commonConfig.bind(b)
	b.Secret(&cfg.encryptionKey, "ENCRYPTION_KEY", "keys that seal and open the tokens: 32 bytes as base64 or hex, comma-separated, the first sealing")
	if verb.name == "add" {
		b.String(&a.label, "label", "", "", "a name for the account, shown by list (printable text, at most 200 characters)")
	}
	if verb.token {
		b.String(&cfg.tokenFile, "token-file", "", "", "read the auth token from this file (at most 4 KiB) instead of standard input")
		b.fs.BoolVar(&cfg.allowPlaintext, "allow-plaintext-tokens", false, "store the token unencrypted when ENCRYPTION_KEY is not set")
		b.fs.BoolVar(&cfg.force, "force", false,
			"store the token although ENCRYPTION_KEY does not open the tokens already stored (servers holding the table's key will refuse this account)")
	}
	sid := ""
	if verb.sid {
		sid = " AC…"
	}
	b.Usage = fmt.Sprintf("Usage: inbox accounts %s%s [flags]\n\n  %s\n", verb.name, sid, verb.help)
}

// withAccountsManager connects to the database and runs fn with a Manager
// over it.
func withAccountsManager(ctx context.Context, cfg *accountsConfig, keys *keyring.Keyring, stderr io.Writer, fn func(*account.Manager) error) error {
	_, pool, err := cfg.open(ctx, stderr, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(&account.Manager{Store: store.New(pool), Keys: keys, AllowPlaintext: cfg.allowPlaintext, Force: cfg.force})
}

func storedAs(keys *keyring.Keyring) string {
	if keys.Encrypts() {
		return "encrypted"
	}
	return "in the clear (-allow-plaintext-tokens)"
}

// maxTokenInput bounds what is read for a token, from a file or standard
// input: a token is 32 characters, and a mistaken path (/dev/zero, a disk
// image) must not be read whole.
const maxTokenInput = 4 << 10

// readToken reads one auth token from file, or from stdin: without echo,
// after a prompt, when stdin is a terminal. At most maxTokenInput bytes are
// read either way.
func readToken(stdin io.Reader, stderr io.Writer, file, sid string) (string, error) {
	var raw []byte
	var err error
	switch f, isFile := stdin.(*os.File); {
	case file != "":
		raw, err = readFileAtMost(file, maxTokenInput)
	case stdin == nil:
		return "", errors.New("no token: pipe it to standard input or give -token-file")
	case isFile && term.IsTerminal(int(f.Fd())):
		fmt.Fprintf(stderr, "auth token of %s (not shown): ", sid)
		raw, err = term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
	default:
		raw, err = readAtMost(stdin, maxTokenInput, "standard input")
	}
	if err != nil {
		return "", fmt.Errorf("read the token: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if err := account.CheckToken(token); err != nil {
		return "", err
	}
	return token, nil
}

func readFileAtMost(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, limit, path)
}

// readAtMost reads r to its end, refusing one longer than limit bytes.
func readAtMost(r io.Reader, limit int64, what string) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s holds more than %d bytes: that is not an auth token", what, limit)
	}
	return raw, nil
}

func listAccounts(ctx context.Context, m *account.Manager, stdout io.Writer) error {
	all, err := m.List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ACCOUNT SID\tLABEL\tSECONDARY\tSTATE\tSTORED\tUPDATED")
	for _, a := range all {
		state, stored, secondary := "enabled", "encrypted", "-"
		if a.Disabled {
			state = "disabled"
		}
		if !a.Encrypted {
			stored = "plaintext"
		}
		if a.HasSecondary {
			secondary = "set"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.SID, printable(a.Label), secondary, state, stored, a.UpdatedAt.UTC().Format("2006-01-02 15:04:05Z"))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d accounts\n", len(all))
	return nil
}

// printable returns a label as it may be printed to a terminal: as it is
// when every character is printable, else quoted with escapes, so that a
// label stored before labels were checked cannot move the cursor, clear the
// screen or hide itself, and at most account.MaxLabel characters of it.
func printable(s string) string {
	if r := []rune(s); len(r) > account.MaxLabel {
		s = string(r[:account.MaxLabel]) + "…"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
