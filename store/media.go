package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"inbox/db"
)

// The states of a medium (the media table).
const (
	MediumFetching = "fetching"
	MediumKept     = "kept"
	MediumFailed   = "failed"
	MediumRefused  = "refused"
)

// MediumChunkSize is the most of a medium's bytes one row of media_chunks
// holds: what a fetch buffers before writing, and a read at most.
const MediumChunkSize = 256 << 10

// MediumToKeep is a medium of a message, with what fetching it needs.
type MediumToKeep struct {
	ID         int64
	Position   int16
	URL        string
	State      string
	Attempts   int32
	AccountSID string
	MessageSID string
	// Kept media's: deleted at Twilio already, and the size and SHA-256
	// recorded.
	DeletedAtTwilio bool
	Size            int64
	SHA256          []byte
}

// MediaToKeep returns the media of the message id (media.id), in
// MediaUrlN order.
func (s *Store) MediaToKeep(ctx context.Context, messageID int64) ([]MediumToKeep, error) {
	rows, err := s.q.MediaOfMessage(ctx, messageID)
	if err != nil {
		return nil, fail(fmt.Sprintf("list the media of message %d", messageID), err, ErrNotFound)
	}
	ms := make([]MediumToKeep, len(rows))
	for i, r := range rows {
		ms[i] = MediumToKeep{ID: r.ID, Position: r.Position, URL: r.Url, State: r.State, Attempts: r.Attempts, AccountSID: r.AccountSID,
			MessageSID: r.MessageSID, DeletedAtTwilio: r.DeletedAtTwilio, Size: r.Size, SHA256: r.Sha256}
	}
	return ms, nil
}

// KeptMedium is what a fetch wrote: its type, size and SHA-256.
type KeptMedium struct {
	ContentType string
	Size        int64
	SHA256      [32]byte
}

// ErrNotOwed: the medium is not owed any more (kept by another run of its
// job, refused or given up): nothing was written.
var ErrNotOwed = errors.New("the medium is not owed")

// KeepMedium stores the medium id's bytes, which fetch writes to the
// writer it is given, in pieces of MediumChunkSize, and marks it kept
// with what fetch returns, all in one transaction that holds the medium's
// row: a second run of its job waits, then gets ErrNotOwed; a crash keeps
// nothing, and the medium is still owed. Only one piece is held in memory.
// The size fetch reports must be what it wrote.
func (s *Store) KeepMedium(ctx context.Context, id int64, fetch func(w io.Writer) (KeptMedium, error)) error {
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		state, err := q.LockMedium(ctx, id)
		if err != nil {
			return fail(fmt.Sprintf("lock medium %d", id), err, ErrNotFound)
		}
		if state != MediumFetching {
			return fmt.Errorf("medium %d is %s: %w", id, state, ErrNotOwed)
		}
		if err := q.DeleteMediumChunks(ctx, id); err != nil {
			return fail(fmt.Sprintf("clear medium %d", id), err, ErrNotFound)
		}
		w := &chunkWriter{ctx: ctx, q: q, id: id, buf: make([]byte, 0, MediumChunkSize)}
		kept, err := fetch(w)
		if err != nil {
			return err
		}
		if err := w.flush(); err != nil {
			return err
		}
		if kept.Size != w.written {
			return fmt.Errorf("medium %d: %d bytes said, %d written", id, kept.Size, w.written)
		}
		if err := q.MarkMediumKept(ctx, db.MarkMediumKeptParams{ID: id, ContentType: kept.ContentType, Size: kept.Size, Sha256: kept.SHA256[:]}); err != nil {
			return fail(fmt.Sprintf("mark medium %d kept", id), err, ErrNotFound)
		}
		return nil
	})
}

// chunkWriter writes a medium's bytes as rows of media_chunks.
type chunkWriter struct {
	ctx     context.Context
	q       *db.Queries
	id      int64
	n       int32
	buf     []byte
	written int64
	err     error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := len(p)
	for len(p) > 0 {
		k := min(len(p), MediumChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == MediumChunkSize {
			if err := w.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// flush writes the piece buffered, if any.
func (w *chunkWriter) flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	if err := w.q.InsertMediumChunk(w.ctx, db.InsertMediumChunkParams{MediaID: w.id, N: w.n, Data: w.buf}); err != nil {
		w.err = fail(fmt.Sprintf("store piece %d of medium %d", w.n, w.id), err, ErrNotFound)
		return w.err
	}
	w.written += int64(len(w.buf))
	w.n++
	w.buf = w.buf[:0]
	return nil
}

// MediumFailed counts a failed fetch of the medium id with its reason;
// the giveUpAfter-th gives it up (state failed). It returns the state
// after.
func (s *Store) MediumFailed(ctx context.Context, id int64, reason string, giveUpAfter int32) (string, error) {
	r, err := s.q.MarkMediumFailed(ctx, db.MarkMediumFailedParams{ID: id, Reason: reason, GiveUpAfter: giveUpAfter})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("medium %d: %w", id, ErrNotOwed)
	}
	if err != nil {
		return "", fail(fmt.Sprintf("record a failed fetch of medium %d", id), err, ErrNotFound)
	}
	return r.State, nil
}

// MediumRefused marks the medium id never to be fetched, for reason.
func (s *Store) MediumRefused(ctx context.Context, id int64, reason string) error {
	if err := s.q.MarkMediumRefused(ctx, db.MarkMediumRefusedParams{ID: id, Reason: reason}); err != nil {
		return fail(fmt.Sprintf("mark medium %d refused", id), err, ErrNotFound)
	}
	return nil
}

// MediumDeletedAtTwilio records that the kept medium id was deleted at
// Twilio.
func (s *Store) MediumDeletedAtTwilio(ctx context.Context, id int64) error {
	if err := s.q.MarkMediumDeletedAtTwilio(ctx, id); err != nil {
		return fail(fmt.Sprintf("record medium %d deleted at Twilio", id), err, ErrNotFound)
	}
	return nil
}

// MediumBytes writes the kept medium id's bytes to w, a piece at a time.
func (s *Store) MediumBytes(ctx context.Context, id int64, w io.Writer) (int64, error) {
	var total int64
	for from := int32(0); ; {
		rows, err := s.q.MediumChunks(ctx, db.MediumChunksParams{MediaID: id, FromN: from, MaxChunks: 4})
		if err != nil {
			return total, fail(fmt.Sprintf("read medium %d", id), err, ErrNotFound)
		}
		for _, r := range rows {
			n, err := w.Write(r.Data)
			total += int64(n)
			if err != nil {
				return total, err
			}
			from = r.N + 1
		}
		if len(rows) < 4 {
			return total, nil
		}
	}
}

// MediaLinkKey returns the key download links are signed with.
func (s *Store) MediaLinkKey(ctx context.Context) ([]byte, error) {
	k, err := s.q.GetMediaLinkKey(ctx)
	if err != nil {
		return nil, fail("read the media link key", err, ErrSchemaBehind)
	}
	return k, nil
}

// MediumToServe is a medium as serving it needs it.
type MediumToServe struct {
	MediumToKeep
	ContentType string
	Size        int64
	SHA256      []byte
	KeptAt      time.Time
}

// MediumToServe returns the medium id; ErrNotFound when there is none.
func (s *Store) MediumToServe(ctx context.Context, id int64) (MediumToServe, error) {
	r, err := s.q.GetMediumToServe(ctx, id)
	if err != nil {
		return MediumToServe{}, fail(fmt.Sprintf("read medium %d", id), err, ErrNotFound)
	}
	m := MediumToServe{MediumToKeep: MediumToKeep{ID: r.ID, Position: r.Position, URL: r.Url, State: r.State, Attempts: r.Attempts,
		AccountSID: r.AccountSID, MessageSID: r.MessageSID}, ContentType: r.ContentType, Size: r.Size, SHA256: r.Sha256}
	if r.KeptAt != nil {
		m.KeptAt = *r.KeptAt
	}
	return m, nil
}

// MediaOfSIDs returns, by message sid, the ids of its media that are or
// will be kept, by position (-1 where a medium will not be: refused or
// given up).
func (s *Store) MediaOfSIDs(ctx context.Context, sids []string) (map[string]map[int16]int64, error) {
	rows, err := s.q.MediaOfSIDs(ctx, sids)
	if err != nil {
		return nil, fail("list the media of messages", err, ErrNotFound)
	}
	out := map[string]map[int16]int64{}
	for _, r := range rows {
		if out[r.MessageSID] == nil {
			out[r.MessageSID] = map[int16]int64{}
		}
		out[r.MessageSID][r.Position] = r.ID
	}
	return out, nil
}

// MediumReader reads the kept medium id, of size bytes, a piece at a
// time as it is read, seeking to any offset: what serving a range needs,
// with one piece in memory.
func (s *Store) MediumReader(ctx context.Context, id, size int64) io.ReadSeeker {
	return &mediumReader{ctx: ctx, s: s, id: id, size: size, piece: -1}
}

type mediumReader struct {
	ctx   context.Context
	s     *Store
	id    int64
	size  int64
	off   int64
	piece int32 // the piece held in data; -1: none
	data  []byte
}

func (r *mediumReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	want := int32(r.off / MediumChunkSize)
	if want != r.piece {
		rows, err := r.s.q.MediumChunks(r.ctx, db.MediumChunksParams{MediaID: r.id, FromN: want, MaxChunks: 1})
		if err != nil {
			return 0, fail(fmt.Sprintf("read piece %d of medium %d", want, r.id), err, ErrNotFound)
		}
		if len(rows) != 1 || rows[0].N != want {
			return 0, fmt.Errorf("medium %d lacks piece %d", r.id, want)
		}
		r.piece, r.data = want, rows[0].Data
	}
	n := copy(p, r.data[r.off-int64(r.piece)*MediumChunkSize:])
	r.off += int64(n)
	return n, nil
}

func (r *mediumReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: before the start")
	}
	r.off = offset
	return offset, nil
}

// MediaWaiting returns how many media are owed (at most 100 000) and
// when the oldest of them was owed from.
func (s *Store) MediaWaiting(ctx context.Context) (int64, time.Time, error) {
	r, err := s.q.MediaWaiting(ctx)
	if err != nil {
		return 0, time.Time{}, fail("count the media owed", err, ErrSchemaBehind)
	}
	return r.Waiting, r.Oldest, nil
}

// Medium is a medium as a message's story shows it.
type Medium struct {
	ID              int64      `json:"-"`
	Position        int16      `json:"position"`
	URL             string     `json:"url"`
	AnnouncedType   string     `json:"announced_type"`
	State           string     `json:"state"`
	Reason          string     `json:"reason,omitempty"`
	Attempts        int32      `json:"attempts"`
	ContentType     string     `json:"content_type,omitempty"`
	Size            int64      `json:"size,omitempty"`
	KeptAt          *time.Time `json:"kept_at,omitempty"`
	DeletedAtTwilio *time.Time `json:"deleted_at_twilio,omitempty"`
}

// MediaOf returns the media of the message sid, by position.
func (s *Store) MediaOf(ctx context.Context, sid string) ([]Medium, error) {
	rows, err := s.q.MediaOfSID(ctx, sid)
	if err != nil {
		return nil, fail("list the media of "+sid, err, ErrNotFound)
	}
	ms := make([]Medium, len(rows))
	for i, r := range rows {
		ms[i] = Medium{ID: r.ID, Position: r.Position, URL: r.Url, AnnouncedType: r.AnnouncedType, State: r.State, Reason: r.Reason,
			Attempts: r.Attempts, ContentType: r.ContentType, Size: r.Size, KeptAt: r.KeptAt, DeletedAtTwilio: r.DeletedAtTwilio}
	}
	return ms, nil
}
