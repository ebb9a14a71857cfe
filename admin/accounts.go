package admin

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"inbox/store"
)

// accountJSON is an account as the API shows it: never a token.
type accountJSON struct {
	AccountSID string `json:"account_sid"`
	Label      string `json:"label"`
	// InTable is false for TWILIO_AUTH_TOKEN's account (TWILIO_ACCOUNT_SID),
	// which is swept but not in twilio_accounts.
	InTable   bool           `json:"in_table"`
	Disabled  bool           `json:"disabled"`
	Reconcile *reconcileJSON `json:"reconcile"`
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

// handleListAccounts answers GET /api/accounts: each Twilio account, and
// how far reconciliation has swept it (null before its first sweep).
func handleListAccounts(st *store.Store, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		accounts, err := st.AllAccounts(r.Context())
		if err != nil {
			return err
		}
		sweeps, err := st.Sweeps(r.Context())
		if err != nil {
			return err
		}
		bySID := map[string]*accountJSON{}
		out := make([]*accountJSON, 0, len(accounts))
		for _, a := range accounts {
			j := &accountJSON{AccountSID: a.SID, Label: a.Label, InTable: true, Disabled: a.Disabled}
			bySID[a.SID] = j
			out = append(out, j)
		}
		for _, s := range sweeps {
			j, ok := bySID[s.AccountSID]
			if !ok {
				j = &accountJSON{AccountSID: s.AccountSID}
				out = append(out, j)
			}
			j.Reconcile = &reconcileJSON{Watermark: s.Watermark, UnderWay: s.To != nil, Listed: s.Listed, Found: s.Found,
				LastSweepAt: s.LastSweepAt, LastSuccessAt: s.LastSuccessAt, LastError: s.LastError}
		}
		slices.SortFunc(out, func(a, b *accountJSON) int { return strings.Compare(a.AccountSID, b.AccountSID) })
		writeJSON(w, http.StatusOK, struct {
			Accounts []*accountJSON `json:"accounts"`
		}{out})
		return nil
	})
}
