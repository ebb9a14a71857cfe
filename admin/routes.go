package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
)

// addRoutes lists every route of the admin listener.
func addRoutes(cfg Config) *mux.Router {
	r := mux.NewRouter()
	r.Handle("/metrics", cfg.Metrics.Handler()).Methods(http.MethodGet)

	r.Handle("/api/messages", handleListMessages(cfg.Store, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/messages/{sid}", handleGetMessage(cfg.Store, cfg.Logger)).Methods(http.MethodGet)
	r.Handle("/api/messages/{sid}/forward", handleForwardMessage(cfg.Store, cfg.ForwardAttempts, cfg.Logger)).Methods(http.MethodPost)
	r.Handle("/api/accounts", handleListAccounts(cfg.Store, cfg.Logger)).Methods(http.MethodGet)

	if cfg.RiverUI != nil {
		r.Handle("/riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
		r.PathPrefix("/riverui/").Handler(cfg.RiverUI)
	}

	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)

	r.NotFoundHandler = handleProblem(http.StatusNotFound, "no such route")
	r.MethodNotAllowedHandler = handleProblem(http.StatusMethodNotAllowed, "method not allowed on this route")
	return r
}
