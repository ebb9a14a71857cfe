package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
)

// addRoutes lists every route of the admin listener: the API's and the
// others' here, the console's in console.go.
func addRoutes(cfg Config, ss *sessions) *mux.Router {
	r := mux.NewRouter()
	r.Handle("/metrics", cfg.Metrics.Handler()).Methods(http.MethodGet)

	r.Handle("/api/messages", handleListMessages(cfg.Store, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/messages/{sid}", handleGetMessage(cfg.Store, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/messages/{sid}/forward", handleForwardMessage(cfg.Store, cfg.ForwardAttempts, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/accounts", handleListAccounts(cfg)).Methods(http.MethodGet)
	if op := cfg.Forwarding; op != nil {
		r.Handle("/api/forwarding", handleForwarding(op, cfg.Logger)).Methods(http.MethodGet)
		r.Handle("/api/forwarding/pause", handlePause(op, cfg.Logger)).Methods(http.MethodPost)
		r.Handle("/api/forwarding/resume", handleResume(op, cfg.Logger)).Methods(http.MethodPost)
		r.Handle("/api/forwarding/rate", handleRate(op, cfg.Logger)).Methods(http.MethodPut)
		r.Handle("/api/forwarding/retry-failed", handleRetryFailed(op, cfg.Logger)).Methods(http.MethodPost)
		r.Handle("/api/forwarding/retries/{id}", handleRetryRun(op, cfg.Logger)).Methods(http.MethodGet)
	}

	if cfg.RiverUI != nil {
		r.Handle("/riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
		r.PathPrefix("/riverui/").Handler(cfg.RiverUI)
	}

	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)

	newConsole(cfg, ss).addRoutes(r)

	r.NotFoundHandler = handleProblem(http.StatusNotFound, "no such route")
	r.MethodNotAllowedHandler = handleProblem(http.StatusMethodNotAllowed, "method not allowed on this route")
	return r
}
