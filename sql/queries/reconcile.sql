-- name: GetReconcileSweep :one
-- An account's sweep state: how far back everything is listed, and the
-- sweep under way, if any.
SELECT account_sid, watermark, sweep_from, sweep_to, next_page_uri, listed, found,
       last_sweep_at, last_success_at, last_error
FROM reconcile_sweeps
WHERE account_sid = @account_sid::text;

-- name: ListReconcileSweeps :many
-- Every account's sweep state, for the admin API.
SELECT account_sid, watermark, sweep_from, sweep_to, next_page_uri, listed, found,
       last_sweep_at, last_success_at, last_error
FROM reconcile_sweeps
ORDER BY account_sid
LIMIT @max_rows::integer;

-- name: StartReconcileSweep :exec
-- A new sweep of [sweep_from, sweep_to], from its first page.
INSERT INTO reconcile_sweeps (account_sid, sweep_from, sweep_to, next_page_uri, listed, found, last_sweep_at)
VALUES (@account_sid::text, @sweep_from::timestamptz, @sweep_to::timestamptz, @next_page_uri::text, 0, 0, now())
ON CONFLICT (account_sid) DO UPDATE
SET sweep_from = EXCLUDED.sweep_from, sweep_to = EXCLUDED.sweep_to, next_page_uri = EXCLUDED.next_page_uri,
    listed = 0, found = 0, last_sweep_at = now();

-- name: MissingMessages :many
-- Which of a listed page's sids no row has: one round trip per page, each
-- sid looked up through the unique index. In the same statement, when
-- persist is set, the sweep's progress: it resumes at this page
-- (resume_uri), with what it had listed and found before it. A sweep that
-- stops after this page's inserts committed lists it once more; one that
-- stops before, too; never a third time.
WITH progress AS (
    UPDATE reconcile_sweeps
    SET next_page_uri = @resume_uri::text, listed = @listed::bigint, found = @found::bigint, last_sweep_at = now()
    WHERE account_sid = @account_sid::text AND @persist::boolean
)
SELECT s.sid::text AS sid
FROM unnest(@sids::text[]) AS s(sid)
WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.metadata->>'message_sid' = s.sid)
LIMIT @max_rows::integer;

-- name: FinishReconcileSweep :exec
-- The sweep listed its whole window: everything sent before its end is
-- stored, so the watermark moves there, and the next sweep starts anew.
UPDATE reconcile_sweeps
SET watermark = sweep_to, sweep_from = NULL, sweep_to = NULL, next_page_uri = NULL,
    listed = @listed::bigint, found = @found::bigint,
    last_sweep_at = now(), last_success_at = now(), last_error = NULL
WHERE account_sid = @account_sid::text;

-- name: FailReconcileSweep :exec
-- The sweep stopped short: it keeps where it resumes, and says why.
UPDATE reconcile_sweeps
SET last_error = @last_error::text, last_sweep_at = now()
WHERE account_sid = @account_sid::text;

-- name: ListUnfinishedOutbound :many
-- An account's outbound messages whose status can still move and has not
-- moved (no callback) since moved_before, oldest check first, through
-- messages_unfinished_outbound_idx: those whose callbacks may be lost.
SELECT (m.metadata->>'message_sid')::text AS sid, m.status
FROM messages m
WHERE m.account_sid = @account_sid::text
  AND m.direction = 'outbound'
  AND m.status IN ('accepted', 'scheduled', 'queued', 'sending', 'sent', 'partially_delivered')
  AND m.received_at < @moved_before::timestamptz
  AND (m.status_checked_at IS NULL OR m.status_checked_at < @moved_before::timestamptz)
  AND NOT EXISTS (
      SELECT 1 FROM message_status_events e
      WHERE e.message_sid = m.metadata->>'message_sid' AND e.received_at >= @moved_before::timestamptz
  )
ORDER BY m.status_checked_at NULLS FIRST, m.received_at
LIMIT @max_rows::integer;

-- name: MarkStatusChecked :exec
-- When a sweep last asked Twilio for these outbound messages' status.
UPDATE messages
SET status_checked_at = now()
WHERE metadata->>'message_sid' = ANY(@sids::text[]) AND direction = 'outbound';

-- name: TryLockSweep :one
-- One sweep per account at a time, across every process: a session
-- advisory lock, which PostgreSQL releases when the session ends, so a
-- process that dies mid-sweep holds it no longer than its connection.
SELECT pg_try_advisory_lock(hashtextextended('inbox_reconcile:' || @account_sid::text, 0)) AS locked;

-- name: UnlockSweep :exec
SELECT pg_advisory_unlock(hashtextextended('inbox_reconcile:' || @account_sid::text, 0));

-- name: ListMessagesAwaitingMedia :many
-- The account's inbound messages that say they carry media but hold none
-- (an event stored them first), oldest first, through
-- messages_media_awaited_idx: what a sweep completes from Twilio's API.
SELECT (metadata->>'message_sid')::text AS sid
FROM messages
WHERE account_sid = @account_sid::text AND num_media > 0 AND media = '[]'::jsonb
ORDER BY received_at
LIMIT @max_rows::integer;
