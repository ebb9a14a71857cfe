// Package api is the service's HTTP edge: the Twilio webhook and the health
// endpoints. It depends on the data layer (package store), never the reverse;
// cmd/inbox builds a Server from configuration and runs it.
package api

import (
	"context"
	"log/slog"
	"net/http"
)

// Pinger reports whether the database answers; /readyz calls it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is everything NewServer needs.
type Config struct {
	// Logger receives one line per request and the reason for every refusal.
	Logger *slog.Logger
	// DB answers readiness checks.
	DB Pinger
}

// NewServer returns the service's whole HTTP handler: the routes in routes.go
// wrapped in request logging.
func NewServer(cfg Config) http.Handler {
	return addRoutes(cfg)
}
