package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The states of an account.
const (
	accountEnabled    = "enabled"
	accountDisabled   = "disabled"
	accountUnreadable = "unreadable"
)

// accountJSON is an account as the API and the console show it: never a
// token.
type accountJSON struct {
	AccountSID string `json:"account_sid"`
	Label      string `json:"label"`
	// InTable is false for TWILIO_AUTH_TOKEN's account (TWILIO_ACCOUNT_SID),
	// which is swept but not in twilio_accounts.
	InTable  bool `json:"in_table"`
	Disabled bool `json:"disabled"`
	// State is enabled, disabled, or unreadable: its token does not open
	// with this process's ENCRYPTION_KEY, so its deliveries are refused.
	State string `json:"state"`
	// LastDeliveryAt is when a webhook last delivered one of its messages.
	LastDeliveryAt *time.Time     `json:"last_delivery_at"`
	Reconcile      *reconcileJSON `json:"reconcile"`
}

// reconcileJSON is an account's reconciliation state.
type reconcileJSON struct {
	// Watermark: every message sent before it has been listed.
	Watermark     *time.Time `json:"watermark"`
	UnderWay      bool       `json:"under_way"`
	Listed        int64      `json:"listed"`
	Found         int64      `json:"found"`
	LastSweepAt   *time.Time `json:"last_sweep_at"`
	LastSuccessAt *time.Time `json:"last_success_at"`
	LastError     string     `json:"last_error,omitempty"`
}

// handleListAccounts answers GET /api/accounts: each Twilio account, its
// state, its last delivery, and how far reconciliation has swept it (null
// before its first sweep).
func handleListAccounts(cfg Config) http.Handler {
	return handle(cfg.Logger, func(w http.ResponseWriter, r *http.Request) error {
		out, err := listAccounts(r, cfg)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Accounts []*accountJSON `json:"accounts"`
		}{out})
		return nil
	})
}

// listAccounts gathers every account the table or a sweep knows, in sid
// order.
func listAccounts(r *http.Request, cfg Config) ([]*accountJSON, error) {
	ctx := r.Context()
	accounts, err := cfg.Store.AllAccounts(ctx)
	if err != nil {
		return nil, err
	}
	sweeps, err := cfg.Store.Sweeps(ctx)
	if err != nil {
		return nil, err
	}
	readable, err := readability(ctx, cfg.Readable)
	if err != nil {
		return nil, err
	}
	bySID := map[string]*accountJSON{}
	out := make([]*accountJSON, 0, len(accounts))
	for _, a := range accounts {
		j := &accountJSON{AccountSID: a.SID, Label: a.Label, InTable: true, Disabled: a.Disabled, State: accountEnabled}
		switch {
		case a.Disabled:
			j.State = accountDisabled
		case readable != nil && !readable[a.SID]:
			j.State = accountUnreadable
		}
		bySID[a.SID] = j
		out = append(out, j)
	}
	for _, s := range sweeps {
		j, ok := bySID[s.AccountSID]
		if !ok {
			j = &accountJSON{AccountSID: s.AccountSID, State: accountEnabled}
			bySID[s.AccountSID] = j
			out = append(out, j)
		}
		j.Reconcile = &reconcileJSON{Watermark: s.Watermark, UnderWay: s.To != nil, Listed: s.Listed, Found: s.Found,
			LastSweepAt: s.LastSweepAt, LastSuccessAt: s.LastSuccessAt, LastError: s.LastError}
	}
	sids := make([]string, len(out))
	for i, a := range out {
		sids[i] = a.AccountSID
	}
	last, err := cfg.Store.LastDeliveries(ctx, sids)
	if err != nil {
		return nil, err
	}
	for _, a := range out {
		if t, ok := last[a.AccountSID]; ok {
			a.LastDeliveryAt = &t
		}
	}
	slices.SortFunc(out, func(a, b *accountJSON) int { return strings.Compare(a.AccountSID, b.AccountSID) })
	return out, nil
}

// readability asks readable, when set, which accounts' tokens open.
func readability(ctx context.Context, readable func(context.Context) (map[string]bool, error)) (map[string]bool, error) {
	if readable == nil {
		return nil, nil
	}
	return readable(ctx)
}
