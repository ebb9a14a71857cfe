package account

import (
	"context"
	"slices"
	"strings"
	"time"
)

// The states of an account, as an operator reads them.
const (
	StateEnabled    = "enabled"
	StateDisabled   = "disabled"
	StateUnreadable = "unreadable"
)

// State is an account as the console and the API show it: never a token.
type State struct {
	SID   string
	Label string
	// InTable is false for TWILIO_AUTH_TOKEN's account (TWILIO_ACCOUNT_SID),
	// which is swept but not in twilio_accounts.
	InTable  bool
	Disabled bool
	// State is StateEnabled, StateDisabled, or StateUnreadable: its token
	// does not open with this process's ENCRYPTION_KEY, so its deliveries
	// are refused.
	State string
	// LastDeliveryAt is when a webhook last delivered one of its messages.
	LastDeliveryAt *time.Time
	// Sweep is how far reconciliation has swept it; nil before its first
	// sweep.
	Sweep *Sweep
}

// Sweep is an account's reconciliation state.
type Sweep struct {
	// Watermark: every message sent before it has been listed.
	Watermark     *time.Time
	UnderWay      bool
	Listed, Found int64
	LastSweepAt   *time.Time
	LastSuccessAt *time.Time
	LastError     string
}

// Overview returns every account the table or a sweep knows, in sid
// order: its state, its last delivery, and how far reconciliation has
// swept it.
func (m *Manager) Overview(ctx context.Context) ([]State, error) {
	accounts, err := m.Store.AllAccounts(ctx)
	if err != nil {
		return nil, err
	}
	sweeps, err := m.Store.Sweeps(ctx)
	if err != nil {
		return nil, err
	}
	bySID := map[string]*State{}
	out := make([]*State, 0, len(accounts))
	for _, a := range accounts {
		s := &State{SID: a.SID, Label: a.Label, InTable: true, Disabled: a.Disabled, State: StateEnabled}
		if _, _, err := open(m.Keys, a); a.Disabled {
			s.State = StateDisabled
		} else if err != nil {
			s.State = StateUnreadable
		}
		bySID[a.SID] = s
		out = append(out, s)
	}
	for _, sw := range sweeps {
		s, ok := bySID[sw.AccountSID]
		if !ok {
			s = &State{SID: sw.AccountSID, State: StateEnabled}
			bySID[sw.AccountSID] = s
			out = append(out, s)
		}
		s.Sweep = &Sweep{Watermark: sw.Watermark, UnderWay: sw.To != nil, Listed: sw.Listed, Found: sw.Found,
			LastSweepAt: sw.LastSweepAt, LastSuccessAt: sw.LastSuccessAt, LastError: sw.LastError}
	}
	sids := make([]string, len(out))
	for i, s := range out {
		sids[i] = s.SID
	}
	last, err := m.Store.LastDeliveries(ctx, sids)
	if err != nil {
		return nil, err
	}
	states := make([]State, len(out))
	for i, s := range out {
		if t, ok := last[s.SID]; ok {
			s.LastDeliveryAt = &t
		}
		states[i] = *s
	}
	slices.SortFunc(states, func(a, b State) int { return strings.Compare(a.SID, b.SID) })
	return states, nil
}
