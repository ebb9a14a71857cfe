package admin

import (
	"io/fs"
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
)

// addRoutes lists every route of the admin listener: the API's, the
// console's, and the others'.
func addRoutes(cfg Config, ss *sessions, g *guesses) *mux.Router {
	r := mux.NewRouter()
	r.Handle("/metrics", cfg.Metrics).Methods(http.MethodGet)
	addAPIRoutes(r, cfg)

	if cfg.RiverUI != nil {
		r.Handle("/riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
		r.PathPrefix("/riverui/").Handler(cfg.RiverUI)
	}

	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)

	addConsoleRoutes(r, cfg, ss, g)
	r.NotFoundHandler = handleProblem(http.StatusNotFound, "no such route")
	r.MethodNotAllowedHandler = handleProblem(http.StatusMethodNotAllowed, "method not allowed on this route")
	return r
}

// addAPIRoutes adds the JSON API's routes (api_*.go).
func addAPIRoutes(r *mux.Router, cfg Config) {
	r.Handle("/api/messages", handleListMessages(cfg.Stories, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/messages/{sid}", handleGetMessage(cfg.Stories, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/messages/{sid}/forward", handleForwardMessage(cfg.Controls, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/accounts", handleListAccounts(cfg.Accounts, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/destinations", handleListDestinations(cfg.Destinations, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/destinations", handleAddDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/destinations/{name}", handleGetDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/destinations/{name}", handleSetDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodPatch)
	r.Handle("/api/destinations/{name}", handleRemoveDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodDelete)
	r.Handle("/api/destinations/{name}/pause", handlePauseDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/destinations/{name}/resume", handleResumeDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/destinations/{name}/backfill", handleBackfillDestination(cfg.Destinations, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/destinations/{name}/backfills", handleListBackfills(cfg.Destinations, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/forwarding", handleForwarding(cfg.Controls, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/forwarding/pause", handlePause(cfg.Controls, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/forwarding/resume", handleResume(cfg.Controls, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/forwarding/rate", handleRate(cfg.Controls, cfg.Logger)).Methods(http.MethodPut)
	r.Handle("/api/forwarding/retry-failed", handleRetryFailed(cfg.Controls, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/forwarding/retries/{id}", handleRetryRun(cfg.Controls, cfg.Logger)).Methods(http.MethodGet)
}

// addConsoleRoutes adds the console's pages (page_*.go): a page per file,
// behind its session.
func addConsoleRoutes(r *mux.Router, cfg Config, ss *sessions, g *guesses) {
	c := newConsole(cfg, ss, g)
	// Every page view makes the browser ask for an icon: none, quietly,
	// rather than a refusal logged each time.
	r.Handle("/favicon.ico", withCache(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))).Methods(http.MethodGet)
	static, _ := fs.Sub(staticFiles, "static")
	r.PathPrefix("/static/").Handler(withCache(http.StripPrefix("/static/", http.FileServerFS(static)))).Methods(http.MethodGet)
	s := r.NewRoute().Subrouter()
	s.Use(ss.withSession, withPageHeaders)
	s.Handle("/", c.page(c.overviewPage)).Methods(http.MethodGet)
	s.Handle("/login", c.page(c.loginPage)).Methods(http.MethodGet)
	s.Handle("/login", c.form(c.login)).Methods(http.MethodPost)
	s.Handle("/logout", c.form(c.logout)).Methods(http.MethodPost)
	s.Handle("/messages", c.page(c.messagesPage)).Methods(http.MethodGet)
	s.Handle("/messages/{sid}", c.page(c.messagePage)).Methods(http.MethodGet)
	s.Handle("/messages/{sid}/forward", c.form(c.forwardAgain)).Methods(http.MethodPost)
	s.Handle("/messages/{sid}/media/{position}", c.page(c.mediumPage)).Methods(http.MethodGet, http.MethodHead)
	s.Handle("/accounts", c.page(c.accountsPage)).Methods(http.MethodGet)
	s.Handle("/destinations", c.page(c.destinationsPage)).Methods(http.MethodGet)
	s.Handle("/destinations/{name}", c.page(c.destinationPage)).Methods(http.MethodGet)
	s.Handle("/destinations/{name}/pause", c.form(c.pauseDestination)).Methods(http.MethodPost)
	s.Handle("/destinations/{name}/resume", c.form(c.resumeDestination)).Methods(http.MethodPost)
	s.Handle("/forwarding", c.page(c.forwardingPage)).Methods(http.MethodGet)
	s.Handle("/forwarding/pause", c.form(c.pause)).Methods(http.MethodPost)
	s.Handle("/forwarding/resume", c.form(c.resume)).Methods(http.MethodPost)
	s.Handle("/forwarding/rate", c.form(c.setRate)).Methods(http.MethodPost)
	s.Handle("/forwarding/retry-failed", c.form(c.retryFailed)).Methods(http.MethodPost)
	s.Handle("/forwarding/retries/{id}", c.page(c.retryPage)).Methods(http.MethodGet)
}
