package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"inbox/control"
	"inbox/destination"
	"inbox/internal/clip"
	"inbox/store"
	"inbox/story"
)

// forwardingView is what the Forwarding page shows.
type forwardingView struct {
	State   control.State
	Retries []store.RetryRun
	// Q is the filter of the failing messages and of Retry all failed.
	Q       map[string]string
	Error   string
	Failing []story.Row
	// MoreFailing is whether more failing messages match than are shown.
	MoreFailing bool
}

// failingShown is how many failing messages the Forwarding page lists.
const failingShown = 20

// forwardingPage answers GET /forwarding: the controls, the queue, the
// failed forwards that match the page's filter, and the bulk retries.
func (c *console) forwardingPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	st, err := c.cfg.Controls.State(ctx)
	if err != nil {
		return err
	}
	v := forwardingView{State: st}
	if v.Retries, err = c.cfg.Controls.RetryRuns(ctx, 5); err != nil {
		return err
	}
	q, err := consoleQuery(r)
	if err != nil {
		return err
	}
	delete(q, "cursor")
	delete(q, "q")
	v.Q = q
	status := http.StatusOK
	f, err := parseFilter(q, retryParams)
	if ae, ok := errors.AsType[*apiError](err); ok {
		v.Error, status = ae.detail, http.StatusBadRequest
	} else if err != nil {
		return err
	} else {
		f.Limit = failingShown + 1
		for _, s := range f.Forward {
			if s != destination.ForwardFailed && s != destination.ForwardCancelled {
				v.Error, status = "The failed forwards are the failed and the cancelled ones: forward must be failed or cancelled here.", http.StatusBadRequest
			}
		}
		if len(f.Forward) == 0 {
			f.Forward = []string{destination.ForwardFailed, destination.ForwardCancelled}
		}
		if v.Failing, err = c.cfg.Stories.List(ctx, f); err != nil {
			return err
		}
		if len(v.Failing) > failingShown {
			v.Failing, v.MoreFailing = v.Failing[:failingShown], true
		}
	}
	c.render(w, r, status, "forwarding", "forwarding", "Forwarding", v)
	return nil
}

// pause answers POST /forwarding/pause.
func (c *console) pause(w http.ResponseWriter, r *http.Request) error {
	changed, err := c.cfg.Controls.Pause(r.Context(), store.PausedByOperator, strings.TrimSpace(r.PostForm.Get("detail")))
	if err != nil {
		return err
	}
	return back(w, r, "/forwarding", doneIf(changed, "paused", "unchanged"))
}

// resume answers POST /forwarding/resume.
func (c *console) resume(w http.ResponseWriter, r *http.Request) error {
	changed, err := c.cfg.Controls.Resume(r.Context())
	if err != nil {
		return err
	}
	return back(w, r, "/forwarding", doneIf(changed, "resumed", "unchanged"))
}

// setRate answers POST /forwarding/rate: a rate, or empty for unlimited.
func (c *console) setRate(w http.ResponseWriter, r *http.Request) error {
	raw := strings.TrimSpace(r.PostForm.Get("per_second"))
	if raw == "" {
		if err := c.cfg.Controls.SetRate(r.Context(), nil); err != nil {
			return err
		}
		return back(w, r, "/forwarding", "unlimited")
	}
	rate, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, detail: fmt.Sprintf("the rate must be a number of forwards a second, or empty for unlimited; got %q", clip.Clip(raw))}
	}
	if err := c.cfg.Controls.SetRate(r.Context(), &rate); err != nil {
		return err
	}
	return back(w, r, "/forwarding", "rate")
}

// retryFailed answers POST /forwarding/retry-failed, Retry all failed:
// the filter comes as the form's hidden fields, the ones the page was
// shown with.
func (c *console) retryFailed(w http.ResponseWriter, r *http.Request) error {
	q := map[string]string{}
	for k, vs := range r.PostForm {
		if k == csrfField || len(vs) == 0 || strings.TrimSpace(vs[0]) == "" {
			continue
		}
		if len(vs) > 1 {
			return badParam(k, "parameter "+strconv.Quote(clip.Clip(k))+" is repeated")
		}
		q[k] = strings.TrimSpace(vs[0])
	}
	f, err := parseFilter(q, retryParams)
	if err != nil {
		return err
	}
	run, created, err := c.cfg.Controls.RetryFailed(r.Context(), f)
	if err != nil {
		return err
	}
	return back(w, r, "/forwarding/retries/"+strconv.FormatInt(run.ID, 10), doneIf(created, "retrying", "running"))
}

// retryPage answers GET /forwarding/retries/{id}: a bulk retry's
// progress, refreshing itself until it is done.
func (c *console) retryPage(w http.ResponseWriter, r *http.Request) error {
	run, err := retryRun(r, c.cfg.Controls)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "retry", "forwarding", "Bulk retry "+strconv.FormatInt(run.ID, 10), struct{ Run store.RetryRun }{run})
	return nil
}
