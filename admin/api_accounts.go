package admin

import (
	"log/slog"
	"net/http"
	"time"
)

// accountJSON is an account as the API shows it: never a token.
type accountJSON struct {
	AccountSID     string         `json:"account_sid"`
	Label          string         `json:"label"`
	InTable        bool           `json:"in_table"`
	Disabled       bool           `json:"disabled"`
	State          string         `json:"state"`
	LastDeliveryAt *time.Time     `json:"last_delivery_at"`
	Reconcile      *reconcileJSON `json:"reconcile"`
}

// reconcileJSON is an account's reconciliation state.
type reconcileJSON struct {
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
func handleListAccounts(accounts Accounts, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		states, err := accounts.Overview(r.Context())
		if err != nil {
			return err
		}
		out := make([]accountJSON, len(states))
		for i, s := range states {
			out[i] = accountJSON{AccountSID: s.SID, Label: s.Label, InTable: s.InTable, Disabled: s.Disabled, State: s.State,
				LastDeliveryAt: s.LastDeliveryAt}
			if sw := s.Sweep; sw != nil {
				out[i].Reconcile = &reconcileJSON{Watermark: sw.Watermark, UnderWay: sw.UnderWay, Listed: sw.Listed, Found: sw.Found,
					LastSweepAt: sw.LastSweepAt, LastSuccessAt: sw.LastSuccessAt, LastError: sw.LastError}
			}
		}
		writeJSON(w, http.StatusOK, struct {
			Accounts []accountJSON `json:"accounts"`
		}{out})
		return nil
	})
}
