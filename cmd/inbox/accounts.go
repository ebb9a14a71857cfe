package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/term"

	"inbox/account"
	"inbox/keyring"
	"inbox/store"
)

const accountsUsage = `Usage: inbox accounts VERB [ACCOUNT_SID] [flags]

  add AC…            add an account; its auth token is read from standard input (or -token-file)
  set-secondary AC…  set a second token (read the same way), accepted beside the primary while rotating
  rotate AC…         promote the secondary token to primary; the old primary stops verifying
  disable AC…        refuse the account's deliveries (403), keeping its tokens
  enable AC…         accept them again
  remove AC…         delete the account and its tokens
  list               show sids, labels, whether a secondary is set: never a token
  reseal             seal every token again with the first ENCRYPTION_KEY (after adding a new key first)

Tokens are never taken from a flag or an argument: they would show in ps and in
shell history. With ENCRYPTION_KEY set they are stored encrypted (AES-256-GCM);
without it, add and set-secondary refuse unless -allow-plaintext-tokens is given.
Running servers see a change within moments, without a restart.

  printf %s "$TOKEN" | inbox accounts add AC0123… -label acme
`

// runAccounts manages the Twilio accounts whose webhooks `serve` accepts.
func runAccounts(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		io.WriteString(stderr, accountsUsage)
		return errors.New("accounts: no verb given")
	}
	verb, args := args[0], args[1:]
	needsSID := verb != "list" && verb != "reseal"
	var sid string
	if needsSID {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return fmt.Errorf("accounts %s: the account sid (AC…) comes first", verb)
		}
		sid, args = args[0], args[1:]
	}
	b := newBinder("accounts "+verb, getenv, stderr)
	var (
		cfg            commonConfig
		encryptionKey  string
		label          string
		tokenFile      string
		allowPlaintext bool
	)
	cfg.bind(b)
	b.Secret(&encryptionKey, "ENCRYPTION_KEY")
	if verb == "add" {
		b.String(&label, "label", "", "", "a name for the account, shown by list")
	}
	readsToken := verb == "add" || verb == "set-secondary"
	if readsToken {
		b.String(&tokenFile, "token-file", "", "", "read the auth token from this file instead of standard input")
		b.fs.BoolVar(&allowPlaintext, "allow-plaintext-tokens", false, "store the token unencrypted when ENCRYPTION_KEY is not set")
	}
	b.fs.Usage = func() { io.WriteString(stderr, accountsUsage); b.fs.PrintDefaults() }
	if err := b.Parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 0 {
		if readsToken {
			return fmt.Errorf("accounts %s: unexpected arguments: a token is read from standard input or -token-file, never from an argument, where ps and shell history would show it", verb)
		}
		return fmt.Errorf("accounts %s: unexpected arguments %d", verb, b.fs.NArg())
	}
	keys, err := keyring.Parse(encryptionKey)
	if err != nil {
		return fmt.Errorf("invalid ENCRYPTION_KEY: %w", err)
	}
	var token string
	if readsToken {
		if !keys.Encrypts() && !allowPlaintext {
			return account.ErrPlaintextRefused
		}
		if token, err = readToken(stdin, stderr, tokenFile, sid); err != nil {
			return err
		}
	}
	_, poolCfg, err := cfg.setup(stderr)
	if err != nil {
		return err
	}
	poolCfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("create database pool: %w", err)
	}
	defer pool.Close()
	m := &account.Manager{Store: store.New(pool), Keys: keys, AllowPlaintext: allowPlaintext}

	switch verb {
	case "add":
		err = m.Add(ctx, sid, token, label)
	case "set-secondary":
		err = m.SetSecondary(ctx, sid, token)
	case "rotate":
		err = m.Rotate(ctx, sid)
	case "disable":
		err = m.SetDisabled(ctx, sid, true)
	case "enable":
		err = m.SetDisabled(ctx, sid, false)
	case "remove":
		err = m.Remove(ctx, sid)
	case "list":
		return listAccounts(ctx, m, stdout)
	case "reseal":
		n, err := m.Reseal(ctx)
		if err != nil {
			return fmt.Errorf("accounts reseal: %w (%d resealed before)", err, n)
		}
		fmt.Fprintf(stdout, "resealed %d accounts with the first key\n", n)
		return nil
	default:
		io.WriteString(stderr, accountsUsage)
		return fmt.Errorf("accounts: unknown verb %q", verb)
	}
	if err != nil {
		return fmt.Errorf("accounts %s: %w", verb, err)
	}
	stored := "encrypted"
	if !keys.Encrypts() {
		stored = "in the clear (-allow-plaintext-tokens)"
	}
	switch verb {
	case "add":
		fmt.Fprintf(stdout, "added %s, token stored %s\n", sid, stored)
	case "set-secondary":
		fmt.Fprintf(stdout, "set the secondary token of %s, stored %s: both tokens verify until rotate\n", sid, stored)
	case "rotate":
		fmt.Fprintf(stdout, "rotated %s: the former secondary is now the only token\n", sid)
	default:
		fmt.Fprintf(stdout, "%s: %sd\n", sid, strings.TrimSuffix(verb, "e"))
	}
	return nil
}

// readToken reads one auth token from file, or from stdin: without echo,
// after a prompt, when stdin is a terminal.
func readToken(stdin io.Reader, stderr io.Writer, file, sid string) (string, error) {
	var raw []byte
	var err error
	switch f, isFile := stdin.(*os.File); {
	case file != "":
		raw, err = os.ReadFile(file)
	case stdin == nil:
		return "", errors.New("no token: pipe it to standard input or give -token-file")
	case isFile && term.IsTerminal(int(f.Fd())):
		fmt.Fprintf(stderr, "auth token of %s (not shown): ", sid)
		raw, err = term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
	default:
		raw, err = io.ReadAll(bufio.NewReader(io.LimitReader(stdin, 4096)))
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

func listAccounts(ctx context.Context, m *account.Manager, stdout io.Writer) error {
	all, err := m.List(ctx)
	if err != nil {
		return fmt.Errorf("accounts list: %w", err)
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
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.SID, a.Label, secondary, state, stored, a.UpdatedAt.UTC().Format("2006-01-02 15:04:05Z"))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d accounts\n", len(all))
	return nil
}
