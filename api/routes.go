package api

import (
	"net/http"

	"github.com/gorilla/mux"
)

// addRoutes lists every route the service answers.
func addRoutes(cfg Config) *mux.Router {
	r := mux.NewRouter()
	r.Handle("/healthz", handleHealthz()).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", handleReadyz(cfg.Logger, cfg.DB)).Methods(http.MethodGet, http.MethodHead)
	return r
}
