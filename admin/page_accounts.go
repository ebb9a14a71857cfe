package admin

import "net/http"

// accountsPage answers GET /accounts: each Twilio account, its state, its
// last delivery and its reconciliation.
func (c *console) accountsPage(w http.ResponseWriter, r *http.Request) error {
	accounts, err := c.cfg.Accounts.Overview(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "accounts", "accounts", "Accounts", accounts)
	return nil
}
