package simulate

import (
	"context"
	"errors"
	"fmt"
	"inbox/internal/clip"
	"io"
	"maps"
	"slices"
	"syscall"
	"time"
)

// ReportMessages writes what a run of inbound deliveries got back and how
// many rows were stored for its sids, and says whether it passed: every
// delivery answered 200, and each message stored exactly once.
func ReportMessages(w io.Writer, opts Options, res Result, rows int64) error {
	deliveries := res.Failures
	for _, n := range res.Statuses {
		deliveries += n
	}
	each := fmt.Sprintf("%d each", opts.Repeats)
	if res.Batches > 0 {
		each = fmt.Sprintf("each by webhook %d times and in one of %d event batches, each %d times", opts.Repeats, res.Batches, opts.Repeats)
	}
	fmt.Fprintf(w, "sent %d deliveries of %d messages (%s, %d at once) to %s in %s\n",
		deliveries, opts.Messages, each, opts.Concurrency, opts.BaseURL, res.Elapsed.Round(time.Millisecond))
	printAnswers(w, opts, res)
	verdict := "exactly once each"
	if rows != int64(opts.Messages) {
		verdict = fmt.Sprintf("want %d", opts.Messages)
	}
	fmt.Fprintf(w, "rows stored for those %d sids: %d (%s)\n", opts.Messages, rows, verdict)
	if res.Statuses[200] != deliveries || rows != int64(opts.Messages) {
		return fmt.Errorf("simulate: %d of %d deliveries answered 200, %d rows for %d messages", res.Statuses[200], deliveries, rows, opts.Messages)
	}
	return nil
}

// ReportStatuses writes what a run of status callbacks got back and which
// messages did not end in their final status (stored, by sid, is what the
// database holds), and says whether it passed.
func ReportStatuses(w io.Writer, opts Options, res Result, final, stored map[string]string) error {
	sent := 0
	for _, n := range res.Statuses {
		sent += n
	}
	fmt.Fprintf(w, "sent %d status callbacks for %d outbound messages (each %d times, shuffled, %d at once) in %s\n",
		sent+res.Failures, opts.Messages, opts.Repeats, opts.Concurrency, res.Elapsed.Round(time.Millisecond))
	printAnswers(w, opts, res)
	wrong := 0
	for _, sid := range slices.Sorted(maps.Keys(final)) {
		if stored[sid] != final[sid] {
			wrong++
			if wrong <= 3 {
				fmt.Fprintf(w, "  %s: status %q, want %q\n", sid, stored[sid], final[sid])
			}
		}
	}
	fmt.Fprintf(w, "messages in their final status: %d of %d\n", len(final)-wrong, len(final))
	if wrong > 0 || res.Failures > 0 || res.Statuses[200] != sent {
		return fmt.Errorf("simulate: %d messages not in their final status; answers %v", wrong, res.Statuses)
	}
	return nil
}

// ReportForwards waits until every id (a sid, or sid.status) has arrived
// where a reports, then writes how that went and says whether it passed:
// each arrived within wait, with a valid signature.
func ReportForwards(ctx context.Context, w io.Writer, a Arrivals, ids []string, what string, wait time.Duration) error {
	t, waitErr := waitArrivals(ctx, a, ids, time.Now().Add(wait))
	verdict := "each once"
	if t.Forwarded != len(ids) {
		verdict = fmt.Sprintf("%d never within %s", len(ids)-t.Forwarded, wait)
	}
	fmt.Fprintf(w, "forwarded: %d %s, %s (%d redeliveries, dropped by webhook-id)\n", t.Forwarded, what, verdict, t.Redeliveries)
	if t.BadSignatures > 0 {
		fmt.Fprintf(w, "  signatures that failed: %d (first: %s)\n", t.BadSignatures, t.FirstBad)
		return fmt.Errorf("simulate: %d forwards failed signature verification", t.BadSignatures)
	}
	if waitErr != nil {
		return fmt.Errorf("simulate: %w", waitErr)
	}
	return nil
}

func printAnswers(w io.Writer, opts Options, res Result) {
	for _, c := range slices.Sorted(maps.Keys(res.Statuses)) {
		if reason := res.Reasons[c]; reason != "" {
			fmt.Fprintf(w, "  answered %d: %d (the first said: %s)\n", c, res.Statuses[c], clip.To(reason, 300))
		} else {
			fmt.Fprintf(w, "  answered %d: %d\n", c, res.Statuses[c])
		}
	}
	if res.Failures > 0 {
		fmt.Fprintf(w, "  no answer: %d (first: %v)\n", res.Failures, res.Errors[0])
		if errors.Is(res.Errors[0], syscall.ECONNREFUSED) {
			fmt.Fprintf(w, "  nothing listens at %s (-url, SIMULATE_URL): is the service running? (./scripts/run starts it)\n", opts.BaseURL)
		}
	}
	if res.Retries > 0 {
		fmt.Fprintf(w, "  sent again under the connection overrides: %d (the answers above are each delivery's last)\n", res.Retries)
	}
}
