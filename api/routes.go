package api

import (
	"net/http"

	"github.com/gorilla/mux"
)

// The paths the service answers.
const (
	PathMessages = "/twilio/messages"
	PathStatus   = "/twilio/status"
	PathEvents   = "/twilio/events" // the Event Streams sink
	PathHealthz  = "/healthz"
	PathReadyz   = "/readyz"
	// PathMedia is where media's download links point (media.PathPrefix).
	PathMedia = "/media/"
)

// Paths returns every path the service answers, which PUBLIC_BASE_URL must
// not end in: the request's path is appended to it.
func Paths() []string { return []string{PathMessages, PathStatus, PathEvents, PathHealthz, PathReadyz} }

// addRoutes lists every route the service answers.
func addRoutes(cfg Config) *mux.Router {
	forms := &formReader{publicBaseURL: cfg.PublicBaseURL, validator: cfg.Validator, accounts: cfg.Accounts, maxBody: cfg.MaxBodyBytes}
	r := mux.NewRouter()
	sink := &sinkUse{store: cfg.Store}
	r.Handle(PathMessages, withDeadline(cfg.RequestTimeout, handleInboundMessage(forms, cfg.Store, sink, cfg.Duplicates))).Methods(http.MethodPost)
	r.Handle(PathStatus, withDeadline(cfg.RequestTimeout, handleStatusCallback(forms, cfg.Store))).Methods(http.MethodPost)
	events := &eventsSink{forms: forms, store: cfg.Store, duplicates: cfg.Duplicates, maxBody: cfg.MaxEventsBodyBytes,
		metrics: cfg.Metrics, basicAuth: basicAuthHash(cfg.EventsBasicAuth), use: sink}
	// Twilio waits five seconds for a sink's answer: its database work
	// ends before, whatever REQUEST_TIMEOUT says.
	r.Handle(PathEvents, withDeadline(min(cfg.RequestTimeout, maxEventsWork), events.handleEvents())).Methods(http.MethodPost)
	if cfg.Media != nil {
		r.PathPrefix(PathMedia).Handler(cfg.Media).Methods(http.MethodGet, http.MethodHead)
	}
	r.Handle(PathHealthz, handleHealthz()).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathReadyz, handleReadyz(&readiness{store: cfg.Store, need: cfg.SchemaVersion})).Methods(http.MethodGet, http.MethodHead)
	r.Use(withRoute)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed(r)
	return r
}
