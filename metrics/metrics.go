// Package metrics is what the service tells Prometheus: one registry per
// process (never the global one), the inbox_ metrics the packages above it
// record, and collectors that read the pool and the job table at scrape
// time. It depends on nothing of the service's own, so every package can
// record into it.
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
)

// Label values. Each label takes a fixed, small set of values, so the
// number of series is bounded whatever the traffic.
const (
	KindMessage = "message"
	KindStatus  = "status"

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
	lag            prometheus.Histogram
	retentionRows  *prometheus.CounterVec
	accountLookups prometheus.Counter
}

// New returns a registry with the Go runtime and process collectors and
// every inbox_ metric, the labelled ones at zero for each known label value
// so that a rate() over them starts from the first scrape.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{registry: reg}

	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inbox_http_requests_total",
		Help: "HTTP requests answered on the webhook listener, by route template and status code.",
	}, []string{"route", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inbox_http_request_duration_seconds",
		Help:    "Time from a webhook request's arrival to its answer, by route template.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inbox_deliveries_total",
		Help: "Twilio deliveries by kind (message, status) and result: new (stored), duplicate (already stored), refused (4xx), unavailable (5xx; outcome unknown, a retry is safe).",
	}, []string{"kind", "result"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inbox_refusals_total",
		Help: "Deliveries refused with a 4xx, by reason.",
	}, []string{"reason"})
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
	m.batchesRetried = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inbox_write_batches_retried_total",
		Help: "Group-commit batches that failed and were retried one delivery at a time.",
	})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inbox_processing_attempts_total",
		Help: "Runs of processing jobs (the forward, by default), by event (message, status) and outcome: success, retry (failed, will run again), cancelled (refused for good), discarded (failed its last attempt).",
	}, []string{"event", "outcome"})
	m.attemptSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inbox_processing_attempt_duration_seconds",
		Help:    "Time one run of a processing job took, by event.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"event"})
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "inbox_processing_lag_seconds",
		Help:    "Time from a job's commit (with its message or status) to the end of its successful run.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
	})
	m.retentionRows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inbox_retention_deleted_rows_total",
		Help: "Rows deleted by retention, by table.",
	}, []string{"table"})
	m.accountLookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inbox_account_lookups_total",
		Help: "Queries for an account sid not in memory (bounded by a budget a second, whatever arrives).",
	})
	for _, c := range []prometheus.Collector{
		m.accountLookups, m.httpRequests, m.httpDuration, m.deliveries, m.refusals, m.batchSize, m.batchDuration,
		m.batchesRetried, m.attempts, m.attemptSeconds, m.lag, m.retentionRows,
	} {
		f(c)
	}
	for _, kind := range []string{KindMessage, KindStatus} {
		for _, result := range []string{ResultNew, ResultDuplicate, ResultRefused, ResultUnavailable} {
			m.deliveries.WithLabelValues(kind, result)
		}
		for _, outcome := range []string{OutcomeSuccess, OutcomeRetry, OutcomeCancelled, OutcomeDiscarded} {
			m.attempts.WithLabelValues(kind, outcome)
		}
	}
	for _, table := range []string{"messages", "message_status_events", "river_job"} {
		m.retentionRows.WithLabelValues(table)
	}
	return m
}

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
	}
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
func (m *Metrics) Attempt(event, outcome string, d, lag time.Duration) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(event, outcome).Inc()
	m.attemptSeconds.WithLabelValues(event).Observe(d.Seconds())
	if outcome == OutcomeSuccess {
		m.lag.Observe(lag.Seconds())
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
