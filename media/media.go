// Package media keeps every medium an inbound message carries (docs/media.md):
// the job the message's statement enqueued (job.Media, made by the trigger
// of sql/schema/00022_media.sql) fetches each medium once from Twilio's
// API with the account's credentials, only when its URL is a medium of
// that account on the API's host, streams its bytes into the store, and
// retries what failed until a bound, after which the medium is given up,
// visibly. With DeleteAtTwilio, a medium kept (its size and SHA-256
// recorded in the same transaction as its bytes) is then deleted at
// Twilio, never before.
package media

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"inbox/account"
	"inbox/internal/clip"
	"inbox/job"
	"inbox/metrics"
	"inbox/queue"
	"inbox/store"
	"inbox/twilioapi"
)

// Queue is the media's queue; Workers how many fetches a process runs at
// once (each streams, holding one piece of MediumChunkSize).
const (
	Queue   = "media"
	Workers = 4
)

// DefaultMaxBytes bounds a medium: WhatsApp's documents reach 16 MB.
const DefaultMaxBytes = 20 << 20

// DefaultFetchTimeout bounds fetching one message's media (up to ten, of
// up to 16 MB each, at a slow link); a fetch cut off by a crash waits as
// long before it is taken up again, and the first request of its link
// fetches it meanwhile.
const DefaultFetchTimeout = 5 * time.Minute

// GiveUpAfter is how many failed fetches give a medium up. The job's
// retries wait River's backoff (about attempt⁴ seconds), so ten failures
// span about seven hours; a 404 in the first three, which a medium not yet
// ready at Twilio answers, is tried again within seconds.
const GiveUpAfter = 10

// Store is what keeping media needs of the store.
type Store interface {
	MediaToKeep(ctx context.Context, messageID int64) ([]store.MediumToKeep, error)
	KeepMedium(ctx context.Context, id int64, fetch func(w io.Writer) (store.KeptMedium, error)) error
	MediumFailed(ctx context.Context, id int64, reason string, giveUpAfter int32) (string, error)
	MediumRefused(ctx context.Context, id int64, reason string) error
	MediumBytes(ctx context.Context, id int64, w io.Writer) (int64, error)
	MediumDeletedAtTwilio(ctx context.Context, id int64) error
}

// Config is what New needs.
type Config struct {
	Store Store
	// API fetches from TWILIO_API_URL: only media on its host are fetched.
	API *twilioapi.Client
	// Credentials returns an account's (account.CredentialsOf).
	Credentials func(ctx context.Context, accountSID string) (twilioapi.Credentials, error)
	// MaxBytes bounds a medium (MEDIA_MAX_BYTES); 0: DefaultMaxBytes.
	MaxBytes int64
	// FetchTimeout bounds one run of a message's media job
	// (MEDIA_FETCH_TIMEOUT); 0: DefaultFetchTimeout. River takes up the run
	// of a process that died only once it has passed.
	FetchTimeout time.Duration
	// DeleteAtTwilio (MEDIA_DELETE_AT_TWILIO): once a medium is kept, and
	// its bytes read back from the store match the size and SHA-256
	// recorded, delete it at Twilio.
	DeleteAtTwilio bool
	Logger         *slog.Logger
	Metrics        *metrics.Metrics
}

// Keeper runs the media jobs.
type Keeper struct{ cfg Config }

// New returns the keeper of cfg.
func New(cfg Config) *Keeper {
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultMaxBytes)
	cfg.FetchTimeout = cmp.Or(cfg.FetchTimeout, DefaultFetchTimeout)
	return &Keeper{cfg: cfg}
}

// Register registers the media jobs' worker with ws, each run bounded by
// FetchTimeout.
func (k *Keeper) Register(ws *queue.Workers) {
	queue.Handle(ws, k.keep, queue.WithTimeout(k.cfg.FetchTimeout))
}

// keep keeps every medium of the job's message still owed. It fails (and
// is retried) while one is owed after a failure; a 404 of a medium's
// first tries snoozes it for seconds instead.
func (k *Keeper) keep(ctx context.Context, j *queue.Job[job.Media]) error {
	ms, err := k.cfg.Store.MediaToKeep(ctx, j.Args.MessageID)
	if err != nil {
		return err
	}
	var owed []error
	var soon time.Duration // a snooze that a medium not yet ready asks for
	for _, m := range ms {
		if m.State == store.MediumKept && k.cfg.DeleteAtTwilio && !m.DeletedAtTwilio {
			// Kept by an earlier run that stopped before the delete.
			if err := k.deleteAtTwilio(ctx, m); err != nil {
				return err
			}
			continue
		}
		if m.State != store.MediumFetching {
			continue
		}
		err := k.keepOne(ctx, m)
		if err == nil || errors.Is(err, store.ErrNotOwed) {
			continue
		}
		if ctx.Err() != nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, errNotDeleted) {
			return err // the attempt failed, not the medium: retried whole
		}
		limit := int32(GiveUpAfter)
		if errors.Is(err, twilioapi.ErrMediumTooLarge) {
			limit = 1 // it will be as large next time
		}
		state, ferr := k.cfg.Store.MediumFailed(ctx, m.ID, clip.To(err.Error(), 500), limit)
		k.cfg.Metrics.MediumFailed(failure(err), state == store.MediumFailed)
		switch {
		case ferr != nil && !errors.Is(ferr, store.ErrNotOwed):
			return ferr
		case state == store.MediumFailed:
			k.cfg.Logger.ErrorContext(ctx, "medium given up", "sid", m.MessageSID, "position", m.Position, "attempts", m.Attempts+1, "err", err)
		case state == store.MediumFetching:
			k.cfg.Logger.WarnContext(ctx, "medium not fetched; trying again", "sid", m.MessageSID, "position", m.Position, "attempts", m.Attempts+1, "err", err)
			owed = append(owed, err)
			if me, ok := errors.AsType[*twilioapi.MediumError](err); ok && me.Status == http.StatusNotFound && me.AtAPI && m.Attempts < 3 {
				soon = max(soon, time.Duration(m.Attempts+1)*2*time.Second)
			}
		}
	}
	switch {
	case len(owed) == 0:
		return nil
	case soon > 0 && len(owed) == 1:
		return queue.Snooze(soon)
	}
	return fmt.Errorf("%d media of message %d still owed: %w", len(owed), j.Args.MessageID, errors.Join(owed...))
}

// keepOne fetches one medium into the store, or refuses it for good when
// its URL is not a medium of its account on the API's host.
func (k *Keeper) keepOne(ctx context.Context, m store.MediumToKeep) error {
	medium, err := k.cfg.API.ParseMedium(m.URL, m.AccountSID)
	if err != nil {
		k.cfg.Logger.WarnContext(ctx, "medium refused: never fetched", "sid", m.MessageSID, "position", m.Position, "reason", err)
		k.cfg.Metrics.MediumRefused()
		return k.cfg.Store.MediumRefused(ctx, m.ID, clip.To(err.Error(), 500))
	}
	cred, err := k.cfg.Credentials(ctx, m.AccountSID)
	if err != nil {
		return err
	}
	start := time.Now()
	var kept store.KeptMedium
	err = k.cfg.Store.KeepMedium(ctx, m.ID, func(w io.Writer) (store.KeptMedium, error) {
		f, err := k.cfg.API.FetchMedium(ctx, cred, medium, w, k.cfg.MaxBytes)
		kept = store.KeptMedium{ContentType: f.ContentType, Size: f.Size, SHA256: f.SHA256}
		return kept, err
	})
	if err != nil {
		return err
	}
	k.cfg.Metrics.MediumKept(kept.Size)
	k.cfg.Logger.InfoContext(ctx, "medium kept", "sid", m.MessageSID, "position", m.Position, "media_sid", medium.SID,
		"content_type", kept.ContentType, "bytes", kept.Size, "took", time.Since(start).Round(time.Millisecond).String())
	if k.cfg.DeleteAtTwilio {
		m.State, m.Size, m.SHA256 = store.MediumKept, kept.Size, kept.SHA256[:]
		if err := k.deleteAtTwilio(ctx, m); err != nil {
			return fmt.Errorf("%w: %w", errNotDeleted, err)
		}
	}
	return nil
}

// errNotDeleted: a medium kept but not deleted at Twilio yet; its job
// tries again.
var errNotDeleted = errors.New("kept, not yet deleted at Twilio")

// deleteAtTwilio deletes the kept medium m at Twilio, once its bytes read
// back from the store have the size and SHA-256 recorded when they were
// fetched, and records the deletion.
func (k *Keeper) deleteAtTwilio(ctx context.Context, m store.MediumToKeep) error {
	h := sha256.New()
	n, err := k.cfg.Store.MediumBytes(ctx, m.ID, h)
	if err != nil {
		return err
	}
	if n != m.Size || !bytes.Equal(h.Sum(nil), m.SHA256) {
		return fmt.Errorf("medium %d of %s: %d bytes read back, %d recorded, or another SHA-256: not deleted at Twilio", m.ID, m.MessageSID, n, m.Size)
	}
	medium, err := k.cfg.API.ParseMedium(m.URL, m.AccountSID)
	if err != nil {
		return err // kept, so it parsed when fetched
	}
	cred, err := k.cfg.Credentials(ctx, m.AccountSID)
	if err != nil {
		return err
	}
	if err := k.cfg.API.DeleteMedium(ctx, cred, medium); err != nil {
		return err
	}
	if err := k.cfg.Store.MediumDeletedAtTwilio(ctx, m.ID); err != nil {
		return err
	}
	k.cfg.Metrics.MediumDeletedAtTwilio()
	k.cfg.Logger.InfoContext(ctx, "medium deleted at Twilio, kept here", "sid", m.MessageSID, "position", m.Position, "media_sid", medium.SID)
	return nil
}

// failure is the reason label of a failed fetch.
func failure(err error) string {
	if errors.Is(err, twilioapi.ErrMediumTooLarge) {
		return metrics.MediaTooLarge
	}
	if errors.Is(err, account.ErrNoCredentials) {
		return metrics.MediaNoCredentials
	}
	me, ok := errors.AsType[*twilioapi.MediumError](err)
	switch {
	case !ok || !me.AtAPI:
		return metrics.MediaOther
	case me.Status == http.StatusNotFound:
		return metrics.MediaNotReady
	case me.Status == http.StatusTooManyRequests:
		return metrics.MediaThrottled
	case me.Status == http.StatusUnauthorized || me.Status == http.StatusForbidden:
		return metrics.MediaUnauthorized
	case me.Status >= 500:
		return metrics.MediaTwilioError
	}
	return metrics.MediaOther
}
