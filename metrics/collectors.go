package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolStat is what the connection pool says of itself (pgxpool's Stat), as
// the store reports it.
type PoolStat struct {
	Acquired, Idle, Constructing, Total, Max        int32
	Acquires, EmptyAcquires, CanceledAcquires, News int64
	AcquireDuration, EmptyAcquireWait               time.Duration
}

// poolCollector reads the pool's statistics at scrape time.
type poolCollector struct {
	stat func() PoolStat

	acquired, idle, constructing, total, max *prometheus.Desc
	acquires, emptyAcquires, canceled        *prometheus.Desc
	acquireSeconds, emptyWaitSeconds         *prometheus.Desc
	newConns                                 *prometheus.Desc
}

// NewPoolCollector returns a collector of the pool's connection counts and
// acquire statistics (inbox_pool_*), read with stat at each scrape.
func NewPoolCollector(stat func() PoolStat) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("inbox_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		stat:             stat,
		acquired:         d("acquired_connections", "Connections in use."),
		idle:             d("idle_connections", "Idle connections."),
		constructing:     d("constructing_connections", "Connections being opened."),
		total:            d("total_connections", "Open connections: acquired, idle and being opened."),
		max:              d("max_connections", "Most connections the pool may open."),
		acquires:         d("acquires_total", "Connections acquired from the pool."),
		emptyAcquires:    d("empty_acquires_total", "Acquires that had to wait for a connection: the pool was exhausted."),
		canceled:         d("canceled_acquires_total", "Acquires given up because their context ended."),
		acquireSeconds:   d("acquire_seconds_total", "Time spent acquiring connections."),
		emptyWaitSeconds: d("empty_acquire_wait_seconds_total", "Time spent waiting for a connection when the pool was exhausted."),
		newConns:         d("new_connections_total", "Connections opened."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.constructing, c.total, c.max,
		c.acquires, c.emptyAcquires, c.canceled, c.acquireSeconds, c.emptyWaitSeconds, c.newConns} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.Acquired))
	gauge(c.idle, float64(s.Idle))
	gauge(c.constructing, float64(s.Constructing))
	gauge(c.total, float64(s.Total))
	gauge(c.max, float64(s.Max))
	counter(c.acquires, float64(s.Acquires))
	counter(c.emptyAcquires, float64(s.EmptyAcquires))
	counter(c.canceled, float64(s.CanceledAcquires))
	counter(c.acquireSeconds, s.AcquireDuration.Seconds())
	counter(c.emptyWaitSeconds, s.EmptyAcquireWait.Seconds())
	counter(c.newConns, float64(s.News))
}

// jobStates are River's job states, each reported even at zero.
func jobStates() []string {
	return []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded", "pending"}
}

// jobCollector counts the job table by state at scrape time.
type jobCollector struct {
	count   func(ctx context.Context) (map[string]int64, error)
	timeout time.Duration
	jobs    *prometheus.Desc
	up      *prometheus.Desc
}

// NewJobCollector returns a collector of inbox_jobs{state}, read with count
// at each scrape (bounded by timeout, so a slow database cannot hang a
// scrape), and inbox_jobs_scrape_success, 0 when that read failed: then no
// inbox_jobs series is reported rather than a false zero.
func NewJobCollector(count func(ctx context.Context) (map[string]int64, error), timeout time.Duration) prometheus.Collector {
	return &jobCollector{
		count:   count,
		timeout: timeout,
		jobs:    prometheus.NewDesc("inbox_jobs", "Processing jobs in the job table, by River state.", []string{"state"}, nil),
		up:      prometheus.NewDesc("inbox_jobs_scrape_success", "1 if the job table could be counted at this scrape, else 0.", nil, nil),
	}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.up
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, state := range jobStates() {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(counts[state]), state)
	}
}

// The reasons of inbox_forwarding_paused, each reported even at zero.
func pauseReasons() []string { return []string{"operator", "breaker"} }

// ForwardingControl is what forwardingCollector reports: why forwarding
// is paused ("" when it runs) and its rate (0: unlimited).
type ForwardingControl struct {
	PausedReason  string
	RatePerSecond float64
}

// forwardingCollector reads the forwarding controls at scrape time.
type forwardingCollector struct {
	read    func(ctx context.Context) (ForwardingControl, error)
	timeout time.Duration
	paused  *prometheus.Desc
	rate    *prometheus.Desc
}

// NewForwardingCollector returns a collector of inbox_forwarding_paused{reason}
// (1 for the reason forwarding is paused, 0 for the others) and
// inbox_forwarding_rate_limit, read with read at each scrape (bounded by
// timeout); when the read fails, neither is reported rather than a false
// "running".
func NewForwardingCollector(read func(ctx context.Context) (ForwardingControl, error), timeout time.Duration) prometheus.Collector {
	return &forwardingCollector{
		read:    read,
		timeout: timeout,
		paused: prometheus.NewDesc("inbox_forwarding_paused",
			"1 while forwarding is paused, with the reason: operator (from the console or the API) or breaker (FORWARD_BREAK_AFTER consecutive failed attempts).",
			[]string{"reason"}, nil),
		rate: prometheus.NewDesc("inbox_forwarding_rate_limit",
			"The delivery rate, forwards a second across every worker of every process; 0: unlimited.", nil, nil),
	}
}

func (c *forwardingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.paused
	ch <- c.rate
}

func (c *forwardingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	fc, err := c.read(ctx)
	if err != nil {
		return
	}
	for _, reason := range pauseReasons() {
		v := 0.0
		if fc.PausedReason == reason {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, v, reason)
	}
	ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, fc.RatePerSecond)
}

// DestinationState is what destinationCollector reports of one
// destination: why it is paused ("" when it runs), how many deliveries
// wait or run in its queue, and how long the longest-waiting due one has
// waited.
type DestinationState struct {
	Name         string
	PausedReason string
	Waiting      int64
	Lag          time.Duration
}

// destinationCollector reads the destinations at scrape time.
type destinationCollector struct {
	read    func(ctx context.Context) ([]DestinationState, error)
	timeout time.Duration
	paused  *prometheus.Desc
	waiting *prometheus.Desc
	lag     *prometheus.Desc
}

// NewDestinationCollector returns a collector of, for each destination of
// the table (few by construction: at most 100),
// inbox_destination_paused{destination, reason}, inbox_destination_waiting
// and inbox_destination_lag_seconds, read with read at each scrape
// (bounded by timeout); when the read fails, none is reported.
func NewDestinationCollector(read func(ctx context.Context) ([]DestinationState, error), timeout time.Duration) prometheus.Collector {
	return &destinationCollector{
		read:    read,
		timeout: timeout,
		paused: prometheus.NewDesc("inbox_destination_paused",
			"1 while the destination is paused, with the reason: operator or breaker (FORWARD_BREAK_AFTER consecutive failed attempts).",
			[]string{"destination", "reason"}, nil),
		waiting: prometheus.NewDesc("inbox_destination_waiting",
			"Deliveries (messages) waiting or running in the destination's queue.", []string{"destination"}, nil),
		lag: prometheus.NewDesc("inbox_destination_lag_seconds",
			"How long the destination's longest-waiting due delivery has waited; 0 when none waits.", []string{"destination"}, nil),
	}
}

func (c *destinationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.paused
	ch <- c.waiting
	ch <- c.lag
}

func (c *destinationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ds, err := c.read(ctx)
	if err != nil {
		return
	}
	for _, d := range ds {
		for _, reason := range pauseReasons() {
			v := 0.0
			if d.PausedReason == reason {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, v, d.Name, reason)
		}
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(d.Waiting), d.Name)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, d.Lag.Seconds(), d.Name)
	}
}

// unroutedCollector reads the last hour's unrouted messages at scrape
// time.
type unroutedCollector struct {
	count    func(ctx context.Context) (int64, error)
	timeout  time.Duration
	unrouted *prometheus.Desc
}

// NewUnroutedCollector returns a collector of
// inbox_unrouted_messages_last_hour, read with count at each scrape
// (bounded by timeout); when the read fails, it is not reported.
func NewUnroutedCollector(count func(ctx context.Context) (int64, error), timeout time.Duration) prometheus.Collector {
	return &unroutedCollector{count: count, timeout: timeout,
		unrouted: prometheus.NewDesc("inbox_unrouted_messages_last_hour",
			"Inbound messages received in the last hour with no delivery: no destination matched them (or nothing was forwarded when they came). Counted at scrape time, at most 100 000 messages read.", nil, nil)}
}

func (c *unroutedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.unrouted }

func (c *unroutedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.unrouted, prometheus.GaugeValue, float64(n))
}

// mediaCollector reports the media still owed, read at each scrape.
type mediaCollector struct {
	waiting func(ctx context.Context) (n int64, oldest time.Time, err error)
	timeout time.Duration
	count   *prometheus.Desc
	oldest  *prometheus.Desc
}

// NewMediaCollector returns a collector of inbox_media_waiting and
// inbox_media_oldest_waiting_seconds, read with waiting at each scrape
// (bounded by timeout); when the read fails, they are not reported.
func NewMediaCollector(waiting func(ctx context.Context) (int64, time.Time, error), timeout time.Duration) prometheus.Collector {
	return &mediaCollector{waiting: waiting, timeout: timeout,
		count: prometheus.NewDesc("inbox_media_waiting", "Media of stored messages not yet kept nor given up (fetching), at most 100 000 counted.", nil, nil),
		oldest: prometheus.NewDesc("inbox_media_oldest_waiting_seconds",
			"How long the oldest medium not yet kept nor given up has waited since its message was stored; 0 when none waits.", nil, nil)}
}

func (c *mediaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldest
}

func (c *mediaCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, oldest, err := c.waiting(ctx)
	if err != nil {
		return
	}
	age := 0.0
	if n > 0 {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
