package telemetry

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports a pgx pool's statistics.
type PoolCollector struct {
	pool                                  *pgxpool.Pool
	acquired, idle, total, max            *prometheus.Desc
	acquires, emptyAcquires, acquireWaitS *prometheus.Desc
}

// NewPoolCollector returns a collector of the pool's statistics, labelled db=name.
func NewPoolCollector(pool *pgxpool.Pool, name string) *PoolCollector {
	l := prometheus.Labels{"db": name}
	d := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc("tracktrace_db_pool_"+n, help, nil, l)
	}
	return &PoolCollector{pool: pool,
		acquired:      d("acquired_connections", "Connections in use."),
		idle:          d("idle_connections", "Idle connections."),
		total:         d("total_connections", "Open connections."),
		max:           d("max_connections", "Pool size limit."),
		acquires:      d("acquires_total", "Connections acquired."),
		emptyAcquires: d("empty_acquires_total", "Acquires that had to wait for a connection."),
		acquireWaitS:  d("acquire_wait_seconds_total", "Time spent waiting for connections."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.emptyAcquires, c.acquireWaitS} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.emptyAcquires, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireWaitS, prometheus.CounterValue, s.AcquireDuration().Seconds())
}
