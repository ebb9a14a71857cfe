package admin

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"inbox/routing"
	"inbox/store"
)

// Destinations defines and controls the apps messages go to
// (routing.Manager).
type Destinations interface {
	List(ctx context.Context) ([]routing.Summary, error)
	Get(ctx context.Context, name string) (routing.Summary, error)
	Add(ctx context.Context, d routing.Definition) error
	Set(ctx context.Context, name string, c routing.Change) error
	Pause(ctx context.Context, name, note string) (bool, error)
	Resume(ctx context.Context, name string) (bool, error)
	Remove(ctx context.Context, name string, force bool) (int64, error)
	Backfill(ctx context.Context, name string, since time.Duration) (store.Backfill, bool, error)
	Backfills(ctx context.Context, name string, n int32) ([]store.Backfill, error)
	Recent(ctx context.Context, name string, d time.Duration) (map[string]int64, error)
}

// rulesJSON are a destination's match rules; an empty list matches
// anything.
type rulesJSON struct {
	Accounts          []string `json:"accounts"`
	To                []string `json:"to"`
	MessagingServices []string `json:"messaging_services"`
	Events            []string `json:"events"`
}

// destinationJSON is a destination as the API shows it: never its secret,
// its URL with any password replaced.
type destinationJSON struct {
	Name          string     `json:"name"`
	Kind          string     `json:"kind"`
	URL           string     `json:"url"`
	Subject       string     `json:"subject,omitempty"`
	Exchange      string     `json:"exchange,omitempty"`
	RoutingKey    string     `json:"routing_key,omitempty"`
	Rules         rulesJSON  `json:"rules"`
	RatePerSecond *float64   `json:"rate_per_second"`
	Paused        bool       `json:"paused"`
	PausedReason  string     `json:"paused_reason,omitempty"`
	PausedDetail  string     `json:"paused_detail,omitempty"`
	PausedAt      *time.Time `json:"paused_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	// Waiting deliveries (messages) and the lag of the longest-waiting.
	Waiting    int64   `json:"waiting"`
	LagSeconds float64 `json:"lag_seconds"`
}

func toDestinationJSON(d routing.Summary) destinationJSON {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return destinationJSON{Name: d.Name, Kind: d.Kind, URL: d.URL, Subject: d.Subject, Exchange: d.Exchange, RoutingKey: d.RoutingKey,
		Rules: rulesJSON{Accounts: orEmpty(d.Rules.Accounts), To: orEmpty(d.Rules.ToNumbers),
			MessagingServices: orEmpty(d.Rules.Services), Events: orEmpty(d.Rules.Events)},
		RatePerSecond: d.Rate, Paused: d.PausedReason != "", PausedReason: d.PausedReason, PausedDetail: d.PausedDetail,
		PausedAt: d.PausedAt, CreatedAt: d.CreatedAt, Waiting: d.Waiting, LagSeconds: d.Lag.Seconds()}
}

// handleListDestinations answers GET /api/destinations.
func handleListDestinations(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		all, err := ds.List(r.Context())
		if err != nil {
			return err
		}
		out := make([]destinationJSON, len(all))
		for i, d := range all {
			out[i] = toDestinationJSON(d)
		}
		writeJSON(w, http.StatusOK, struct {
			Destinations []destinationJSON `json:"destinations"`
		}{out})
		return nil
	})
}

// handleGetDestination answers GET /api/destinations/{name}.
func handleGetDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		return answerDestination(w, r, ds, http.StatusOK, "")
	})
}

// answerDestination answers with the destination the route names, and
// with secret once when it was just made.
func answerDestination(w http.ResponseWriter, r *http.Request, ds Destinations, status int, secret string) error {
	d, err := ds.Get(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	writeJSON(w, status, struct {
		destinationJSON
		Secret string `json:"secret,omitempty"`
	}{toDestinationJSON(d), secret})
	return nil
}

// handleAddDestination answers POST /api/destinations: {"name", "url",
// "secret" (whsec_…; left out, one is made and answered this once),
// "accounts", "to", "messaging_services", "events", "rate_per_second"},
// and for a broker "subject" and "creds" (nats://), "exchange" and
// "routing_key" (amqp://), "no_check". 201 with the destination; 409 when
// the name is taken; 422 when the broker cannot be published to.
func handleAddDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Name       string `json:"name"`
			URL        string `json:"url"`
			Secret     string `json:"secret"`
			Subject    string `json:"subject"`
			Creds      string `json:"creds"`
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
			NoCheck    bool   `json:"no_check"`
			rulesJSON
			RatePerSecond float64 `json:"rate_per_second"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		made := ""
		if body.Secret == "" {
			body.Secret = routing.GenerateSecret()
			made = body.Secret
		}
		err := ds.Add(r.Context(), routing.Definition{Name: body.Name, URL: body.URL, Secret: body.Secret, Rate: body.RatePerSecond,
			Target:  routing.Target{Subject: body.Subject, Creds: []byte(body.Creds), Exchange: body.Exchange, RoutingKey: body.RoutingKey},
			NoCheck: body.NoCheck,
			Rules:   routing.Rules{Accounts: body.Accounts, ToNumbers: body.To, Services: body.MessagingServices, Events: body.Events}})
		if err != nil {
			return err
		}
		return answerDestination(w, mux.SetURLVars(r, map[string]string{"name": body.Name}), ds, http.StatusCreated, made)
	})
}

// handleSetDestination answers PATCH /api/destinations/{name}: any of
// "url", "accounts", "to", "messaging_services", "events" (a list given
// replaces that rule; [] matches anything), "rate_per_second" (0:
// unlimited), a broker's "subject", "exchange", "routing_key".
func handleSetDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			URL               *string   `json:"url"`
			Accounts          *[]string `json:"accounts"`
			To                *[]string `json:"to"`
			MessagingServices *[]string `json:"messaging_services"`
			Events            *[]string `json:"events"`
			RatePerSecond     *float64  `json:"rate_per_second"`
			Subject           *string   `json:"subject"`
			Exchange          *string   `json:"exchange"`
			RoutingKey        *string   `json:"routing_key"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		given := func(p *[]string) []string {
			if p == nil {
				return nil
			}
			return append([]string{}, *p...)
		}
		c := routing.Change{URL: body.URL, Accounts: given(body.Accounts), ToNumbers: given(body.To),
			Services: given(body.MessagingServices), Events: given(body.Events), Rate: body.RatePerSecond,
			Subject: body.Subject, Exchange: body.Exchange, RoutingKey: body.RoutingKey}
		if err := ds.Set(r.Context(), mux.Vars(r)["name"], c); err != nil {
			return err
		}
		return answerDestination(w, r, ds, http.StatusOK, "")
	})
}

// handleRemoveDestination answers DELETE /api/destinations/{name}: 200
// with how many waiting delivery jobs were cancelled; 409 while deliveries
// wait, unless ?force=true.
func handleRemoveDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		force := r.URL.Query().Get("force")
		if force != "" && force != "true" && force != "false" {
			return badParam("force", "force is true or false")
		}
		cancelled, err := ds.Remove(r.Context(), mux.Vars(r)["name"], force == "true")
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Removed   string `json:"removed"`
			Cancelled int64  `json:"cancelled"`
		}{mux.Vars(r)["name"], cancelled})
		return nil
	})
}

// handlePauseDestination answers POST /api/destinations/{name}/pause,
// {"note": "why"} optional, and handleResumeDestination .../resume: 200
// with the destination and whether this call changed it.
func handlePauseDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Note string `json:"note"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		changed, err := ds.Pause(r.Context(), mux.Vars(r)["name"], body.Note)
		return answerChanged(w, r, ds, changed, err)
	})
}

func handleResumeDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		changed, err := ds.Resume(r.Context(), mux.Vars(r)["name"])
		return answerChanged(w, r, ds, changed, err)
	})
}

func answerChanged(w http.ResponseWriter, r *http.Request, ds Destinations, changed bool, err error) error {
	if err != nil {
		return err
	}
	d, err := ds.Get(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Changed bool `json:"changed"`
		destinationJSON
	}{changed, toDestinationJSON(d)})
	return nil
}

// backfillJSON is a backfill run.
type backfillJSON struct {
	ID          int64      `json:"id"`
	Destination string     `json:"destination"`
	Since       time.Time  `json:"since"`
	RequestedAt time.Time  `json:"requested_at"`
	Read        int64      `json:"read"`
	Queued      int64      `json:"queued"`
	FinishedAt  *time.Time `json:"finished_at"`
	Error       string     `json:"error,omitempty"`
}

func toBackfillJSON(b store.Backfill) backfillJSON {
	return backfillJSON{ID: b.ID, Destination: b.Destination, Since: b.Since, RequestedAt: b.RequestedAt, Read: b.Read, Queued: b.Queued,
		FinishedAt: b.FinishedAt, Error: b.Error}
}

// handleBackfillDestination answers POST /api/destinations/{name}/backfill,
// {"since": "24h"}: a background job hands the destination the stored
// messages its rules match from that long ago on, each once. 202 with the
// run; 200 with the one under way, when one is, and nothing new starts.
func handleBackfillDestination(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Since string `json:"since"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		since, err := time.ParseDuration(body.Since)
		if err != nil {
			return &apiError{status: http.StatusBadRequest, param: "since", detail: `since must be a duration such as "24h"`}
		}
		run, created, err := ds.Backfill(r.Context(), mux.Vars(r)["name"], since)
		if err != nil {
			return err
		}
		writeStarted(w, created, toBackfillJSON(run))
		return nil
	})
}

// handleListBackfills answers GET /api/destinations/{name}/backfills: its
// latest 20 backfills, newest first, with their progress.
func handleListBackfills(ds Destinations, logger *slog.Logger) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		runs, err := ds.Backfills(r.Context(), mux.Vars(r)["name"], 20)
		if err != nil {
			return err
		}
		out := struct {
			Backfills []backfillJSON `json:"backfills"`
		}{Backfills: make([]backfillJSON, len(runs))}
		for i, b := range runs {
			out.Backfills[i] = toBackfillJSON(b)
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}
