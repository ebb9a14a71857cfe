// Package metrics is what the service tells Prometheus: one registry per
// process (never the global one), the inbox_ metrics the packages above it
// record, and collectors that read the pool and the job table at scrape
// time. It depends on nothing of the service's own but the names of
// package tally's series (which it tells what the console's overview
// charts), so every package can record into it.
//
// Every method of *Metrics does nothing on a nil receiver: a package built
// without metrics (a test, a tool) records nothing and needs no checks.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"inbox/tally"
)

// Label values. Each label takes a fixed, small set of values, so the
// number of series is bounded whatever the traffic.
const (
	KindMessage = "message"
	KindStatus  = "status"
	KindEvents  = "events" // an Event Streams batch

	ResultNew         = "new"
	ResultDuplicate   = "duplicate"
	ResultRefused     = "refused"
	ResultUnavailable = "unavailable"

	OutcomeSuccess   = "success"
	OutcomeRetry     = "retry"
	OutcomeCancelled = "cancelled"
	OutcomeDiscarded = "discarded"
)

// Metrics holds the service's own metrics and the registry they are in.
type Metrics struct {
	registry *prometheus.Registry

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	deliveries     *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	batchSize      prometheus.Histogram
	batchDuration  prometheus.Histogram
	batchesRetried prometheus.Counter
	attempts       *prometheus.CounterVec
	attemptSeconds *prometheus.HistogramVec
	lag            *prometheus.HistogramVec
	retentionRows  *prometheus.CounterVec
	accountLookups prometheus.Counter

	reconcileFound     *prometheus.CounterVec
	reconcileSweeps    *prometheus.CounterVec
	reconcileListed    prometheus.Counter
	reconcileInvalid   prometheus.Counter
	reconcileSucceeded *prometheus.GaugeVec
	twilioRequests     *prometheus.CounterVec
	twilioThrottled    prometheus.Counter

	forwardsHeld  *prometheus.CounterVec
	breakerTrips  prometheus.Counter
	retriesQueued prometheus.Counter

	events           *prometheus.CounterVec
	eventsUnverified *prometheus.CounterVec

	adminAuthRefused *prometheus.CounterVec

	mediaKept     prometheus.Counter
	mediaBytes    prometheus.Counter
	mediaFailures *prometheus.CounterVec
	mediaGivenUp  prometheus.Counter
	mediaRefused  prometheus.Counter
	mediaDeleted  prometheus.Counter

	// tally, when set, is told what the console's overview charts.
	tally Tally
}

// Tally is told the counts the console's overview charts, per minute, in
// PostgreSQL (tally.Tally): the same events these metrics count, kept
// where they survive restarts and sum across replicas.
type Tally interface {
	Add(series, label string, n int64)
}

// Option configures New.
type Option func(*Metrics)

// WithTally has every event the overview charts also told to t.
func WithTally(t Tally) Option { return func(m *Metrics) { m.tally = t } }

// count tells the tally, if any.
func (m *Metrics) count(series, label string, n int64) {
	if m.tally != nil {
		m.tally.Add(series, label, n)
	}
}

// The reasons of inbox_media_failures_total.
const (
	MediaNotReady      = "not_ready"      // 404 at Twilio's API
	MediaThrottled     = "throttled"      // 429
	MediaTwilioError   = "twilio_error"   // 5xx
	MediaUnauthorized  = "unauthorized"   // 401, 403
	MediaTooLarge      = "too_large"      // over MEDIA_MAX_BYTES
	MediaNoCredentials = "no_credentials" // no token of the account
	MediaOther         = "other"          // the network, the CDN, anything else
)

// The labels of inbox_events_total: an Event Streams event's kind, and
// what became of it beyond ResultNew and ResultDuplicate.
const (
	EventInbound   = "inbound" // com.twilio.messaging.inbound-message.received
	EventStatus    = "status"  // com.twilio.messaging.message.*
	EventOther     = "other"   // another product's, ignored
	EventIgnored   = "ignored"
	EventMalformed = "malformed"
)

// The reasons of inbox_forwards_held_total: a forward a worker took and
// put back, without spending an attempt.
const (
	HeldPaused = "paused"
	HeldRate   = "rate"
)

// The results of inbox_reconcile_sweeps_total.
const (
	SweepSucceeded = "success"
	SweepFailed    = "failed"
)

// New returns a registry with the Go runtime and process collectors and
// every inbox_ metric, the labelled ones at zero for each known label value
// so that a rate() over them starts from the first scrape.
func New(opts ...Option) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{registry: reg}
	for _, o := range opts {
		o(m)
	}

	m.ingest()
	m.processing()
	m.twilio()
	for _, c := range []prometheus.Collector{
		m.forwardsHeld, m.breakerTrips, m.retriesQueued, m.reconcileFound, m.reconcileSweeps, m.reconcileListed, m.reconcileInvalid, m.reconcileSucceeded, m.twilioRequests, m.twilioThrottled,
		m.accountLookups, m.httpRequests, m.httpDuration, m.deliveries, m.refusals, m.batchSize, m.batchDuration,
		m.batchesRetried, m.attempts, m.attemptSeconds, m.lag, m.retentionRows, m.events, m.eventsUnverified, m.adminAuthRefused,
		m.mediaKept, m.mediaBytes, m.mediaFailures, m.mediaGivenUp, m.mediaRefused, m.mediaDeleted,
	} {
		f(c)
	}
	m.zero()
	return m
}

// ingest makes the webhook's and the store's metrics.
func (m *Metrics) ingest() {
	m.httpRequests = counterVec("inbox_http_requests_total", "HTTP requests answered on the webhook listener, by route template and status code.", "route", "code")
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inbox_http_request_duration_seconds",
		Help:    "Time from a webhook request's arrival to its answer, by route template.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	m.deliveries = counterVec("inbox_deliveries_total", "Twilio deliveries by kind (message, status) and result: new (stored), duplicate (already stored), refused (4xx), unavailable (5xx; outcome unknown, a retry is safe).", "kind", "result")
	m.refusals = counterVec("inbox_refusals_total", "Deliveries refused with a 4xx, by reason.", "reason")
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "inbox_write_batch_size",
		Help:    "Deliveries committed together by one group-commit transaction.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	m.batchDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "inbox_write_batch_duration_seconds",
		Help:    "Time to send one group-commit batch and learn its commit's outcome.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	})
	m.batchesRetried = counter("inbox_write_batches_retried_total", "Group-commit batches that failed and were retried one delivery at a time.")
	m.events = counterVec("inbox_events_total", "Twilio Event Streams events, by kind (inbound, status, other) and result: new (stored), duplicate (already stored), ignored (another product's), malformed (skipped; logged).", "kind", "result")
	m.mediaKept = counter("inbox_media_kept_total", "Media fetched from Twilio and kept (docs/media.md).")
	m.mediaBytes = counter("inbox_media_bytes_total", "Bytes of media kept.")
	m.mediaFailures = counterVec("inbox_media_failures_total", "Failed fetches of media, by reason: not_ready (404), throttled (429), twilio_error (5xx), unauthorized (401, 403), too_large (over MEDIA_MAX_BYTES), no_credentials, other (the network, the CDN).", "reason")
	m.mediaGivenUp = counter("inbox_media_given_up_total", "Media given up after repeated failures (or at once when too large).")
	m.mediaRefused = counter("inbox_media_refused_total", "Media never fetched: their URL is not a medium of the message's account on TWILIO_API_URL's host.")
	m.mediaDeleted = counter("inbox_media_deleted_at_twilio_total", "Media deleted at Twilio once kept here (MEDIA_DELETE_AT_TWILIO).")
	m.adminAuthRefused = counterVec("inbox_admin_auth_refused_total", "Admin requests and console logins refused for their credentials, by reason: wrong_token, no_credentials, throttled (too many wrong tokens from the address, answered 429 before comparing).", "reason")
	m.eventsUnverified = counterVec("inbox_events_unverified_total", "Event Streams batches answered 503 so that Twilio retries them, because they did not verify for a reason an operator can fix, by reason: signature_mismatch, body_hash_absent, body_hash_mismatch, account_unknown, account_unreadable, basic_auth.", "reason")
}

// processing makes the workers' metrics: forwards, controls, retention.
func (m *Metrics) processing() {
	m.attempts = counterVec("inbox_processing_attempts_total", "Runs of processing jobs (the forward, by default), by destination (default: FORWARD_URL's; else its name), event (message, status) and outcome: success, retry (failed, will run again), cancelled (refused for good), discarded (failed its last attempt).", "destination", "event", "outcome")
	m.attemptSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inbox_processing_attempt_duration_seconds",
		Help:    "Time one run of a processing job took, by event.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"event"})
	m.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inbox_processing_lag_seconds",
		Help:    "Time from a job's commit (with its message or status) to the end of its successful run, by destination (default: FORWARD_URL's).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
	}, []string{"destination"})
	m.retentionRows = counterVec("inbox_retention_deleted_rows_total", "Rows deleted by retention, by table.", "table")
	m.forwardsHeld = counterVec("inbox_forwards_held_total", "Forwards a worker took and put back without an attempt, by reason: paused (forwarding is paused), rate (the delivery rate's next slot was too far off).", "reason")
	m.breakerTrips = counter("inbox_forwarding_breaker_trips_total", "Times this process paused forwarding after FORWARD_BREAK_AFTER consecutive failed attempts.")
	m.retriesQueued = counter("inbox_forward_retries_queued_total", "Failed or cancelled forwards given a new job by a bulk retry (Retry all failed).")
}

// twilio makes the metrics of the accounts and of Twilio's REST API.
func (m *Metrics) twilio() {
	m.accountLookups = counter("inbox_account_lookups_total", "Queries for an account sid not in memory (bounded by a budget a second, whatever arrives).")
	m.reconcileFound = counterVec("inbox_reconcile_found_total", "What a reconciliation sweep stored that no webhook had, by kind: message (an inbound message) or status (an outbound message's status change). Above zero means webhooks were lost.", "kind")
	m.reconcileSweeps = counterVec("inbox_reconcile_sweeps_total", "Reconciliation sweeps of an account, by result: success (its window listed whole), failed (stopped short; the next resumes).", "result")
	m.reconcileListed = counter("inbox_reconcile_listed_total", "Messages reconciliation listed on Twilio's API.")
	m.reconcileInvalid = counter("inbox_reconcile_invalid_total", "Listed messages reconciliation could not store as they were (a bad sid, an unknown direction, text PostgreSQL cannot store); each is logged.")
	m.reconcileSucceeded = gaugeVec("inbox_reconcile_last_success_timestamp_seconds", "When the last successful sweep of an account ended, Unix seconds (by this process).", "account_sid")
	m.twilioRequests = counterVec("inbox_twilio_api_requests_total", "Requests to Twilio's REST API, by answer: 2xx, 4xx, 429, 5xx, or error (no answer).", "code")
	m.twilioThrottled = counter("inbox_twilio_api_throttled_total", "Requests to Twilio's REST API answered 429 (error 20429): retried after backing off.")
}

// zero sets the labelled metrics at zero for each known label value.
func (m *Metrics) zero() {
	for _, kind := range []string{KindMessage, KindStatus} {
		for _, result := range []string{ResultNew, ResultDuplicate, ResultRefused, ResultUnavailable} {
			m.deliveries.WithLabelValues(kind, result)
		}
		for _, outcome := range []string{OutcomeSuccess, OutcomeRetry, OutcomeCancelled, OutcomeDiscarded} {
			m.attempts.WithLabelValues(DefaultDestination, kind, outcome)
		}
	}
	for _, table := range []string{"messages", "message_status_events", "river_job"} {
		m.retentionRows.WithLabelValues(table)
	}
	for _, kind := range []string{KindMessage, KindStatus} {
		m.reconcileFound.WithLabelValues(kind)
	}
	for _, result := range []string{SweepSucceeded, SweepFailed} {
		m.reconcileSweeps.WithLabelValues(result)
	}
	for _, code := range []string{"2xx", "4xx", "429", "5xx", "error"} {
		m.twilioRequests.WithLabelValues(code)
	}
	for _, reason := range []string{HeldPaused, HeldRate} {
		m.forwardsHeld.WithLabelValues(reason)
	}
	for _, result := range []string{ResultNew, ResultDuplicate, ResultRefused, ResultUnavailable} {
		m.deliveries.WithLabelValues(KindEvents, result)
	}
	for _, kind := range []string{EventInbound, EventStatus, EventOther} {
		for _, result := range []string{ResultNew, ResultDuplicate, EventIgnored, EventMalformed} {
			m.events.WithLabelValues(kind, result)
		}
	}
	for _, reason := range []string{"signature_mismatch", "body_hash_absent", "body_hash_mismatch", "account_unknown", "account_unreadable", "basic_auth"} {
		m.eventsUnverified.WithLabelValues(reason)
	}
	for _, reason := range []string{"wrong_token", "no_credentials", "throttled"} {
		m.adminAuthRefused.WithLabelValues(reason)
	}
	for _, reason := range []string{MediaNotReady, MediaThrottled, MediaTwilioError, MediaUnauthorized, MediaTooLarge, MediaNoCredentials, MediaOther} {
		m.mediaFailures.WithLabelValues(reason)
	}
}

// DefaultDestination is the destination label of FORWARD_URL's forwards.
const DefaultDestination = "default"

// BuildInfo exports inbox_build_info{version, revision, go_version} 1,
// so a dashboard can tell which build each process runs.
func (m *Metrics) BuildInfo(version, revision, goVersion string) {
	if m == nil {
		return
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "inbox_build_info",
		Help:        "The running build: always 1, labelled with its version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": goVersion},
	})
	g.Set(1)
	m.registry.MustRegister(g)
}

// Register adds collectors (the pool's, the job table's) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Gatherer is the registry, for tests that read it without HTTP.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.registry }

// HTTPRequest records one answered request. route is the route's template
// (never the raw path, which would make a series per sid or per probe).
func (m *Metrics) HTTPRequest(route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// Delivery records one Twilio delivery's result, and for a refusal its
// reason (one of the fixed codes of package api).
func (m *Metrics) Delivery(kind, result, reason string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(kind, result).Inc()
	if result == ResultRefused {
		m.refusals.WithLabelValues(reason).Inc()
		m.count(tally.Refused, reason, 1)
		return
	}
	switch {
	case kind == KindMessage && result == ResultNew:
		m.count(tally.Received, tally.FromWebhook, 1)
	case kind == KindMessage && result == ResultDuplicate:
		m.count(tally.Duplicate, tally.FromWebhook, 1)
	case kind == KindStatus && (result == ResultNew || result == ResultDuplicate):
		m.count(tally.Status, result, 1)
	}
}

// Event records one Event Streams event: its kind and result.
func (m *Metrics) Event(kind, result string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(kind, result).Inc()
	switch {
	case kind == EventInbound && result == ResultNew:
		m.count(tally.Received, tally.FromEventStream, 1)
	case kind == EventInbound && result == ResultDuplicate:
		m.count(tally.Duplicate, tally.FromEventStream, 1)
	case kind == EventStatus && (result == ResultNew || result == ResultDuplicate):
		m.count(tally.Status, result, 1)
	case result == EventMalformed:
		m.count(tally.Refused, "malformed_event", 1)
	}
}

// MediumKept records a medium kept, of n bytes.
func (m *Metrics) MediumKept(n int64) {
	if m == nil {
		return
	}
	m.mediaKept.Inc()
	m.mediaBytes.Add(float64(n))
	m.count(tally.MediaKept, "", 1)
}

// MediumFailed records a failed fetch of a medium, for reason (the
// Media… constants), and whether it gave the medium up.
func (m *Metrics) MediumFailed(reason string, givenUp bool) {
	if m == nil {
		return
	}
	m.mediaFailures.WithLabelValues(reason).Inc()
	m.count(tally.MediaFailed, reason, 1)
	if givenUp {
		m.mediaGivenUp.Inc()
	}
}

// MediumRefused records a medium never fetched.
func (m *Metrics) MediumRefused() {
	if m != nil {
		m.mediaRefused.Inc()
	}
}

// MediumDeletedAtTwilio records a medium deleted at Twilio.
func (m *Metrics) MediumDeletedAtTwilio() {
	if m != nil {
		m.mediaDeleted.Inc()
	}
}

// AdminAuthRefused records an admin request or login refused for its
// credentials, for reason.
func (m *Metrics) AdminAuthRefused(reason string) {
	if m == nil {
		return
	}
	m.adminAuthRefused.WithLabelValues(reason).Inc()
}

// EventsUnverified records an event batch answered 503 for reason.
func (m *Metrics) EventsUnverified(reason string) {
	if m == nil {
		return
	}
	m.eventsUnverified.WithLabelValues(reason).Inc()
}

// Batch records one group-commit batch: how many deliveries it carried and
// how long its round trip and commit took.
func (m *Metrics) Batch(size int, d time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(size))
	m.batchDuration.Observe(d.Seconds())
}

// BatchRetried records a batch that failed and was retried row by row.
func (m *Metrics) BatchRetried() {
	if m == nil {
		return
	}
	m.batchesRetried.Inc()
}

// Attempt records one run of a processing job, and on success the lag from
// the job's creation.
func (m *Metrics) Attempt(destination, event, outcome string, d, lag time.Duration) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(destination, event, outcome).Inc()
	m.attemptSeconds.WithLabelValues(event).Observe(d.Seconds())
	switch outcome {
	case OutcomeSuccess:
		m.lag.WithLabelValues(destination).Observe(lag.Seconds())
		m.count(tally.Delivered, destination, 1)
		m.count(tally.LagMS, destination, lag.Milliseconds())
	case OutcomeRetry:
		m.count(tally.Retrying, destination, 1)
	case OutcomeCancelled, OutcomeDiscarded:
		m.count(tally.Failed, destination, 1)
	}
}

// RetentionDeleted records rows retention deleted from table.
func (m *Metrics) RetentionDeleted(table string, n int64) {
	if m == nil || n == 0 {
		return
	}
	m.retentionRows.WithLabelValues(table).Add(float64(n))
}

// AccountLookup records a query for an account sid that was not in memory.
func (m *Metrics) AccountLookup() {
	if m == nil {
		return
	}
	m.accountLookups.Inc()
}

// RegisterAccounts reports the Twilio accounts held in memory, those whose
// tokens cannot be opened, and the sids remembered as unknown, read from
// sizes at scrape time.
func (m *Metrics) RegisterAccounts(sizes func() (accounts, unreadable, unknown int)) {
	if m == nil {
		return
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "inbox_twilio_accounts",
			Help: "Twilio accounts in memory, from twilio_accounts.",
		}, func() float64 { n, _, _ := sizes(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "inbox_twilio_accounts_unreadable",
			Help: "Twilio accounts whose tokens cannot be opened with ENCRYPTION_KEY: their deliveries are refused (403).",
		}, func() float64 { _, n, _ := sizes(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "inbox_twilio_unknown_sids",
			Help: "Account sids remembered as not configured (bounded).",
		}, func() float64 { _, _, n := sizes(); return float64(n) }),
	)
}

// ReconcileFound records one thing a sweep stored that no webhook had:
// KindMessage or KindStatus.
func (m *Metrics) ReconcileFound(kind string) {
	if m == nil {
		return
	}
	m.reconcileFound.WithLabelValues(kind).Inc()
	if kind == KindMessage {
		m.count(tally.Received, tally.FromReconcile, 1)
	} else {
		m.count(tally.Status, tally.FromReconcile, 1)
	}
}

// ReconcileSweep records a sweep's end: listed whole, or stopped short.
func (m *Metrics) ReconcileSweep(ok bool) {
	if m == nil {
		return
	}
	result := SweepSucceeded
	if !ok {
		result = SweepFailed
	}
	m.reconcileSweeps.WithLabelValues(result).Inc()
}

// ReconcileSucceeded records when the sweep of account last succeeded.
func (m *Metrics) ReconcileSucceeded(account string, at time.Time) {
	if m == nil {
		return
	}
	m.reconcileSucceeded.WithLabelValues(account).Set(float64(at.Unix()))
}

// ReconcileListed records n messages listed.
func (m *Metrics) ReconcileListed(n int) {
	if m == nil {
		return
	}
	m.reconcileListed.Add(float64(n))
}

// ReconcileInvalid records a listed message that could not be stored.
func (m *Metrics) ReconcileInvalid() {
	if m == nil {
		return
	}
	m.reconcileInvalid.Inc()
}

// TwilioAPI records one answer of Twilio's REST API (status 0: none).
func (m *Metrics) TwilioAPI(status int, throttled bool) {
	if m == nil {
		return
	}
	code := "error"
	switch {
	case status == 429:
		code = "429"
	case status >= 200 && status < 300:
		code = "2xx"
	case status >= 400 && status < 500:
		code = "4xx"
	case status >= 500:
		code = "5xx"
	}
	m.twilioRequests.WithLabelValues(code).Inc()
	if throttled {
		m.twilioThrottled.Inc()
	}
}

// ForwardHeld counts a forward put back for reason (HeldPaused, HeldRate).
func (m *Metrics) ForwardHeld(reason string) {
	if m == nil {
		return
	}
	m.forwardsHeld.WithLabelValues(reason).Inc()
}

// BreakerTripped counts a pause by the circuit breaker.
func (m *Metrics) BreakerTripped() {
	if m == nil {
		return
	}
	m.breakerTrips.Inc()
}

// RetriesQueued counts n forwards given a new job by a bulk retry.
func (m *Metrics) RetriesQueued(n int) {
	if m == nil {
		return
	}
	m.retriesQueued.Add(float64(n))
}

// counter, counterVec and gaugeVec spell a metric as its name, its
// help and its labels, so each definition is one line of what it means.
func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}
