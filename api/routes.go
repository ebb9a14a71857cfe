package api

import (
	"net/http"

	"github.com/gorilla/mux"
)

// The paths the service answers.
const (
	PathMessages = "/twilio/messages"
	PathStatus   = "/twilio/status"
	PathHealthz  = "/healthz"
	PathReadyz   = "/readyz"
)

// Paths returns every path the service answers, which PUBLIC_BASE_URL must
// not end in: the request's path is appended to it.
func Paths() []string { return []string{PathMessages, PathStatus, PathHealthz, PathReadyz} }

// addRoutes lists every route the service answers.
func addRoutes(cfg Config) *mux.Router {
	r := mux.NewRouter()
	r.Handle(PathMessages, handleInboundMessage(cfg)).Methods(http.MethodPost)
	r.Handle(PathStatus, handleStatusCallback(cfg)).Methods(http.MethodPost)
	r.Handle(PathHealthz, handleHealthz()).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathReadyz, handleReadyz(&readiness{store: cfg.Store, need: cfg.SchemaVersion})).Methods(http.MethodGet, http.MethodHead)
	r.Use(withRoute)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed(r)
	return r
}
