package api

import (
	"net/http"

	"github.com/gorilla/mux"
)

// addRoutes lists every route the service answers.
func addRoutes(cfg Config) *mux.Router {
	r := mux.NewRouter()
	r.Handle("/twilio/messages", handleInboundMessage(cfg)).Methods(http.MethodPost)
	r.Handle("/twilio/status", handleStatusCallback(cfg)).Methods(http.MethodPost)
	r.Handle("/healthz", handleHealthz()).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", handleReadyz(cfg.Store)).Methods(http.MethodGet, http.MethodHead)
	r.Use(withRoute)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed(r)
	return r
}
