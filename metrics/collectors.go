package metrics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads pgxpool's statistics at scrape time.
type poolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, constructing, total, max *prometheus.Desc
	acquires, emptyAcquires, canceled        *prometheus.Desc
	acquireSeconds, emptyWaitSeconds         *prometheus.Desc
	newConns                                 *prometheus.Desc
}

// NewPoolCollector returns a collector of the pool's connection counts and
// acquire statistics (inbox_pool_*).
func NewPoolCollector(pool *pgxpool.Pool) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("inbox_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:             pool,
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
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.constructing, float64(s.ConstructingConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceled, float64(s.CanceledAcquireCount()))
	counter(c.acquireSeconds, s.AcquireDuration().Seconds())
	counter(c.emptyWaitSeconds, s.EmptyAcquireWaitTime().Seconds())
	counter(c.newConns, float64(s.NewConnsCount()))
}

// JobStates are River's job states, each reported even at zero.
var jobStates = []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded", "pending"}

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
	for _, state := range jobStates {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(counts[state]), state)
	}
}
