package process

import (
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"
)

// NewRiverUI returns River's web UI over the job table in pool, to be
// served under /riverui/ (admin.Config.RiverUI). It is built here, where
// River lives, so the admin edge takes it as an http.Handler and knows
// nothing of River. It has its own insert-only River client (one that runs
// no jobs), so it works in a process with processing off, or with its
// workers elsewhere. Call its Start before serving.
func NewRiverUI(pool *pgxpool.Pool, logger *slog.Logger) (*riverui.Handler, error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("river ui: create client: %w", err)
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, fmt.Errorf("river ui: %w", err)
	}
	return h, nil
}
