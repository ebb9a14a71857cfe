-- name: AddTallies :exec
-- Adds a process's counts of the last seconds to each minute's; the
-- arrays hold each (minute, series, label) once.
INSERT INTO tallies (minute, series, label, n)
SELECT (@minutes::timestamptz[])[i], (@series::text[])[i], (@labels::text[])[i], (@ns::bigint[])[i]
FROM generate_subscripts(@minutes::timestamptz[], 1) AS i
ON CONFLICT (minute, series, label) DO UPDATE SET n = tallies.n + excluded.n;

-- name: TalliesSince :many
-- Each series' and label's counts since @since, summed per @bucket (which
-- divides an hour or a day): the overview's charts. At most 10 080 minutes
-- of a dozen series.
SELECT date_bin(@bucket::interval, minute, timestamptz '2000-01-01 00:00:00+00')::timestamptz AS at,
       series, label, sum(n)::bigint AS n
FROM tallies
WHERE minute >= @since::timestamptz
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
LIMIT 200000;

-- name: LastTallied :one
-- The last minute, within @since, in which any of @series was counted with
-- a label among @labels: when Twilio last reached the service.
SELECT coalesce(max(minute), timestamptz 'epoch')::timestamptz AS minute
FROM tallies
WHERE minute >= @since::timestamptz AND series = ANY (@series::text[]) AND label = ANY (@labels::text[]);

-- name: DeleteTalliesBefore :execrows
DELETE FROM tallies WHERE minute < @before::timestamptz;

-- name: AddDuplicateDeliveries :exec
-- Adds duplicate deliveries dropped to their messages' counts; a sid no
-- longer stored (retention) is skipped. The arrays hold each (sid,
-- source) once.
INSERT INTO duplicate_deliveries (message_id, source, n, last_at)
SELECT m.id, (@sources::text[])[i], (@ns::bigint[])[i], now()
FROM generate_subscripts(@sids::text[], 1) AS i
JOIN messages m ON m.metadata->>'message_sid' = (@sids::text[])[i]
ON CONFLICT (message_id, source) DO UPDATE
SET n = duplicate_deliveries.n + excluded.n, last_at = excluded.last_at;

-- name: DuplicateDeliveries :many
-- The duplicate deliveries dropped for a message, by source.
SELECT source, n, last_at FROM duplicate_deliveries WHERE message_id = @message_id ORDER BY source LIMIT 10;
