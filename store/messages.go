package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"inbox/db"
	"inbox/destination"
	"inbox/job"
	"inbox/message"
)

// InsertInboundMessage stores m unless a message with the same sid
// (m.Metadata.MessageSID) is already stored. inserted is true, with the new
// row's id, only for the one call that stored it; every other call for that
// sid, concurrent or later, gets inserted == false and a nil error. The
// database decides through its unique index: there is no lookup first.
//
// With JobAttempts, the statement inserts the message's job when, and only
// when, it stores the message. With Writers, concurrent calls are committed
// together (see Options); each still learns its own outcome, and a call
// whose ctx ends while its group is in flight returns ctx's error although
// the group may still commit its row. Errors wrap ErrInvalid (the database
// refused m; storing it again fails again), ErrSchemaBehind or
// ErrUnavailable (the outcome is unknown; a retry is safe).
func (s *Store) InsertInboundMessage(ctx context.Context, m message.Inbound) (id int64, inserted bool, err error) {
	var r insertResult
	if s.group != nil {
		r = s.group.insert(ctx, m)
	} else { // a batch of one
		var rs []insertResult
		if rs, r.err = sendInserts(ctx, s.conn, s.jobAttempts, []message.Inbound{m}); r.err == nil {
			r = rs[0]
		}
	}
	if s.refused != nil {
		s.refused.observe(r.err)
	}
	if r.err != nil {
		return 0, false, fmt.Errorf("insert inbound message %s: %w", m.Metadata.MessageSID, r.err)
	}
	return r.id, r.inserted, nil
}

// insertParams is the one place a message.Inbound becomes the parameters of
// InsertInboundMessage, the one statement that stores an inbound message:
// a field of Inbound not written here would be stored as zero, and
// TestEveryInboundFieldIsStored fails.
func insertParams(m message.Inbound, a jobAttempts) db.InsertInboundMessageParams {
	return db.InsertInboundMessageParams{
		AccountSID:          m.AccountSID,
		MessagingServiceSID: m.MessagingServiceSID,
		FromAddress:         m.From,
		ToAddress:           m.To,
		Body:                m.Body,
		NumMedia:            m.NumMedia,
		NumSegments:         m.NumSegments,
		Media:               m.Media,
		Metadata:            m.Metadata,
		JobKind:             job.KindMessage,
		MaxAttempts:         a.forward,
		RouteAttempts:       a.route,
	}
}

type insertResult struct {
	id       int64
	inserted bool
	err      error
}

// sendInserts sends ms as one pgx batch (one implicit transaction) of
// InsertInboundMessage and returns each insert's outcome, in ms's order,
// once the commit's is known, or the error that failed the batch: then none
// of it committed. When jobAttempts is not 0, what the batch stored gets its
// processing job in the same transaction: a message alone, a job of its own
// (job.Message, in its insert); several, one job for every new one of them
// (job.Messages, by InsertBatchJob at the batch's end).
//
// The batch goes in sid order (stable, so two of one sid keep theirs):
// batches in flight that share sids (a group commit's, a sweep's, Twilio's
// retries of the same messages at once) then lock their index entries in
// the same order. In any other order they can each wait on the other, and
// PostgreSQL breaks that deadlock only after a second, failing one.
func sendInserts(ctx context.Context, conn db.DBTX, a jobAttempts, ms []message.Inbound) ([]insertResult, error) {
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(ms[a].Metadata.MessageSID, ms[b].Metadata.MessageSID) })
	results := make([]insertResult, len(ms))
	read := func(i int, id int64, err error) {
		switch r := &results[order[i]]; {
		case err == nil:
			*r = insertResult{id: id, inserted: true}
		case errors.Is(err, pgx.ErrNoRows): // a duplicate
		default:
			*r = insertResult{err: err}
		}
	}
	params := make([]db.InsertInboundMessageParams, len(ms))
	for i, o := range order {
		params[i] = insertParams(ms[o], a)
	}
	q := db.New(conn)
	if len(ms) > 1 && (a.forward > 0 || a.route > 0) {
		// One job for the batch (and one per destination it reaches),
		// after its inserts: River's insert, fetch and completion of a job,
		// each writing every index of river_job, cost the database more
		// than the messages did.
		sids := make([]string, len(ms))
		for i := range params {
			params[i].MaxAttempts, params[i].RouteAttempts = 0, 0
			sids[i] = params[i].Metadata.MessageSID
		}
		after := &sentAfter{DBTX: conn}
		q = db.New(after)
		// Queued, not sent: they go out behind the inserts below.
		if a.forward > 0 {
			_ = q.InsertBatchJob(ctx, db.InsertBatchJobParams{
				JobKind: job.KindMessage, BatchKind: job.KindMessages, MaxAttempts: a.forward, SIDs: sids,
			})
		}
		if a.route > 0 {
			_ = q.InsertBatchRoutes(ctx, db.InsertBatchRoutesParams{
				JobKind: job.KindMessage, BatchKind: job.KindMessages, MaxAttempts: a.route, SIDs: sids,
			})
		}
	}
	br := q.InsertInboundMessage(ctx, params)
	br.QueryRow(read)
	if err := br.Close(); err != nil { // the commit's outcome, read after every row's
		return nil, batchError(err, len(ms))
	}
	for _, r := range results {
		if r.err != nil {
			return nil, batchError(r.err, len(ms))
		}
	}
	return results, nil
}

// batchError says how many messages a failure took with it; the caller
// names the sid.
func batchError(err error, n int) error {
	if n == 1 {
		return fail("store", err, ErrNotFound)
	}
	return fail(fmt.Sprintf("group commit of %d messages", n), err, ErrNotFound)
}

// toMessage is a messages row as the service sees it.
func toMessage(m db.Message) message.Message {
	return message.Message{
		ID: m.ID, Direction: m.Direction, AccountSID: m.AccountSID, MessagingServiceSID: m.MessagingServiceSID,
		From: m.FromAddress, To: m.ToAddress, Body: m.Body, NumMedia: m.NumMedia, NumSegments: m.NumSegments,
		Media: m.Media, Status: m.Status, ErrorCode: m.ErrorCode, ReceivedAt: m.ReceivedAt, Metadata: m.Metadata,
	}
}

func toMessages(rows []db.Message) []message.Message {
	out := make([]message.Message, len(rows))
	for i, r := range rows {
		out[i] = toMessage(r)
	}
	return out
}

// GetMessageBySID returns the message with Twilio sid sid, or ErrNotFound.
func (s *Store) GetMessageBySID(ctx context.Context, sid string) (message.Message, error) {
	m, err := s.q.GetMessageBySID(ctx, sid)
	if err != nil {
		return message.Message{}, fail("get message "+sid, err, ErrNotFound)
	}
	return toMessage(m), nil
}

// CountMessagesBySIDs returns how many stored messages have one of sids.
func (s *Store) CountMessagesBySIDs(ctx context.Context, sids []string) (int64, error) {
	n, err := s.q.CountMessagesBySIDs(ctx, sids)
	if err != nil {
		return 0, fail("count messages", err, ErrNotFound)
	}
	return n, nil
}

// MessageReceivedPayloads returns the forward of each of sids (at most
// 1000) that is stored, by sid: one read for a batch job's messages.
func (s *Store) MessageReceivedPayloads(ctx context.Context, sids []string) (map[string][]byte, error) {
	rows, err := s.q.GetMessageReceivedPayloads(ctx, sids)
	if err != nil {
		return nil, fail(fmt.Sprintf("payloads of %d messages", len(sids)), err, ErrNotFound)
	}
	out := make(map[string][]byte, len(rows))
	for _, r := range rows {
		out[r.SID] = []byte(r.Payload)
	}
	return out, nil
}

// MessageReceivedPayload returns the JSON forwarded for the newly stored
// message sid (docs/processing.md, "The forward"), with id as its id, or
// ErrNotFound.
func (s *Store) MessageReceivedPayload(ctx context.Context, id, sid string) ([]byte, error) {
	p, err := s.q.GetMessageReceivedPayload(ctx, db.GetMessageReceivedPayloadParams{ID: id, SID: sid})
	if err != nil {
		return nil, fail("payload of message "+sid, err, ErrNotFound)
	}
	return []byte(p), nil
}

// fewForward reports whether every one of the forward states is one few
// messages are in (an unsettled delivery's, in deliveries_unsettled_idx),
// so a list is best started from the deliveries.
func fewForward(forward []string) bool {
	for _, f := range forward {
		switch f {
		case destination.ForwardPending, destination.ForwardRetrying, destination.ForwardFailed, destination.ForwardCancelled:
		default:
			return false
		}
	}
	return len(forward) > 0
}

// pageStart is the keyset cursor f's page starts after: its After, or
// past every row, moved back to Until when that is earlier.
func pageStart(f message.Filter) message.Cursor {
	before := message.Cursor{ReceivedAt: endOfTime, ID: math.MaxInt64}
	if f.After != nil {
		before = *f.After
	}
	if !f.Until.IsZero() && f.Until.Before(before.ReceivedAt) {
		// (received_at, id) < (until, MinInt64) is received_at < until.
		before = message.Cursor{ReceivedAt: f.Until, ID: math.MinInt64}
	}
	return before
}

// endOfTime is later than any received_at: the first page's cursor, so that
// the cursor is always an index condition.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// ListMessages returns a page of messages newest first (by received_at,
// then id), which stays consistent while messages arrive: a page starts
// strictly after the cursor, so paging on skips no row that existed when
// paging began and repeats none. A filter on the forward states few
// messages are in starts from their deliveries; otherwise one on From, To,
// Number or AccountSID uses the index that leads with it.
func (s *Store) ListMessages(ctx context.Context, f message.Filter) ([]message.Message, error) {
	before := pageStart(f)
	var (
		forward []string
		dest    *string
	)
	if len(f.Forward) > 0 {
		forward, dest = f.Forward, optionalString(f.Destination)
	}
	dir, status, source, account := optionalString(f.Direction), optionalString(f.Status), optionalString(f.Source), optionalString(f.AccountSID)
	var (
		ms  []db.Message
		err error
	)
	switch {
	case fewForward(forward):
		ms, err = s.q.ListMessagesByForward(ctx, db.ListMessagesByForwardParams{
			Forward: forward, Destination: dest, JobKind: job.KindMessage, BatchKind: job.KindMessages,
			BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			Number: optionalString(f.Number), FromAddress: optionalString(ifEmpty(f.Number, f.From)), ToAddress: optionalString(ifEmpty(f.Number, f.To)),
			AccountSID: account, Direction: dir, Status: status, Source: source, MaxRows: f.Limit,
		})
	case f.Number != "":
		ms, err = s.q.ListMessagesNumber(ctx, db.ListMessagesNumberParams{
			Number: f.Number, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			AccountSID: account, Direction: dir, Status: status, Source: source, Forward: forward, Destination: dest, MaxRows: f.Limit,
		})
	case f.From != "":
		ms, err = s.q.ListMessagesFrom(ctx, db.ListMessagesFromParams{
			FromAddress: f.From, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			ToAddress: optionalString(f.To), AccountSID: account,
			Direction: dir, Status: status, Source: source, Forward: forward, Destination: dest, MaxRows: f.Limit,
		})
	case f.To != "":
		ms, err = s.q.ListMessagesTo(ctx, db.ListMessagesToParams{
			ToAddress: f.To, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			AccountSID: account, Direction: dir, Status: status, Source: source, Forward: forward, Destination: dest, MaxRows: f.Limit,
		})
	case f.AccountSID != "":
		ms, err = s.q.ListMessagesForAccount(ctx, db.ListMessagesForAccountParams{
			AccountSID: f.AccountSID, BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			Direction: dir, Status: status, Source: source, Forward: forward, Destination: dest, MaxRows: f.Limit,
		})
	default:
		ms, err = s.q.ListMessages(ctx, db.ListMessagesParams{
			BeforeAt: before.ReceivedAt, BeforeID: before.ID, Since: f.Since,
			Direction: dir, Status: status, Source: source, Forward: forward, Destination: dest, MaxRows: f.Limit,
		})
	}
	if err != nil {
		return nil, fail("list messages", err, ErrNotFound)
	}
	return toMessages(ms), nil
}

// ifEmpty returns s when other is empty, else "".
func ifEmpty(other, s string) string {
	if other != "" {
		return ""
	}
	return s
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Store) deleteMessagesBefore(ctx context.Context, cutoff time.Time, maxRows int32) (int64, error) {
	n, err := s.q.DeleteMessagesBefore(ctx, db.DeleteMessagesBeforeParams{Before: cutoff, MaxRows: maxRows})
	if err != nil {
		return 0, fail("delete messages before "+cutoff.Format(time.RFC3339), err, ErrNotFound)
	}
	return n, nil
}

// sentAfter is conn, but the statements given to its Exec are queued and
// sent after those of the next batch, in its round trip and so in its
// implicit transaction: sqlc gives each query a batch of its own, and the
// batch's job must commit with its inserts and see them. Exec reports no
// outcome; the batch's Close does, as it does the commit's.
type sentAfter struct {
	db.DBTX
	queued []queuedStatement
}

type queuedStatement struct {
	sql  string
	args []any
}

func (a *sentAfter) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	a.queued = append(a.queued, queuedStatement{sql, args})
	return pgconn.CommandTag{}, nil
}

func (a *sentAfter) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range a.queued {
		b.Queue(q.sql, q.args...)
	}
	a.queued = nil
	return a.DBTX.SendBatch(ctx, b)
}

// Enrichment is what one way in carried of a message that another stored
// first: params the row lacks (kept as the row has them otherwise), and
// media for a row with none.
type Enrichment struct {
	SID    string
	Params message.Params
	Media  []message.Media
	// OnlySource, when set, enriches only a row that source stored.
	OnlySource string
}

// EnrichMessage adds e to its stored message (EnrichMessage in
// sql/queries/messages.sql): changed is false when there was nothing new,
// or no such row. It never creates a row and never forwards anything.
func (s *Store) EnrichMessage(ctx context.Context, e Enrichment) (changed bool, err error) {
	extra, err := json.Marshal(e.Params)
	if err != nil {
		return false, fmt.Errorf("enrich %s: %w", e.SID, err)
	}
	if e.Media == nil {
		e.Media = []message.Media{}
	}
	media, err := json.Marshal(e.Media)
	if err != nil {
		return false, fmt.Errorf("enrich %s: %w", e.SID, err)
	}
	var only *string
	if e.OnlySource != "" {
		only = &e.OnlySource
	}
	n, err := s.q.EnrichMessage(ctx, db.EnrichMessageParams{Extra: extra, Media: media, SID: e.SID, OnlySource: only})
	if err != nil {
		return false, fail("enrich message "+e.SID, err, nil)
	}
	return n > 0, nil
}

// MarkEventStreamsSeen records that an Event Streams batch arrived now.
func (s *Store) MarkEventStreamsSeen(ctx context.Context) error {
	if err := s.q.MarkEventStreamsSeen(ctx); err != nil {
		return fail("mark event streams seen", err, nil)
	}
	return nil
}

// EventStreamsSeenSince reports whether an Event Streams batch arrived
// since t, in any process.
func (s *Store) EventStreamsSeenSince(ctx context.Context, t time.Time) (bool, error) {
	seen, err := s.q.EventStreamsSeenSince(ctx, t)
	if err != nil {
		return false, fail("read event streams seen", err, nil)
	}
	return seen, nil
}
