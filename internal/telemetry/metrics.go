// Package telemetry holds tracktrace's Prometheus metrics (on an injected
// registry, never the global one) and the decorators and collectors that
// feed them.
package telemetry

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/subscription"
)

// Metrics are the service's own metric families.
type Metrics struct {
	reg prometheus.Registerer

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	appendDuration *prometheus.HistogramVec
	eventsAppended *prometheus.CounterVec
	cacheRequests  *prometheus.CounterVec
	leading        *prometheus.GaugeVec
	deadLetters    *prometheus.CounterVec
	epcisEvents    *prometheus.CounterVec
	epcisSkipped   *prometheus.CounterVec
	// Webhook subscriptions.
	webhookAttempts *prometheus.CounterVec
	webhookEvents   prometheus.Counter
	webhookLatency  prometheus.Histogram
	webhookFailing  prometheus.Gauge
	webhookLag      *prometheus.GaugeVec
	webhookLagSecs  *prometheus.GaugeVec
}

// NewMetrics registers the metric families on reg, each with the constant
// labels (Monitoring.Metrics.Tags), plus the Go runtime and process collectors.
func NewMetrics(reg *prometheus.Registry, constLabels map[string]string) *Metrics {
	r := prometheus.WrapRegistererWith(prometheus.Labels(constLabels), reg)
	m := &Metrics{
		reg: r,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tracktrace_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tracktrace_eventstore_append_duration_seconds", Help: "Event store append latency (including group-commit wait), by outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"outcome"}),
		eventsAppended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_events_appended_total", Help: "Events appended, by event type.",
		}, []string{"type"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_cache_requests_total", Help: "Read-model cache lookups, by cache and result (hit, miss, error).",
		}, []string{"cache", "result"}),
		leading: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tracktrace_follower_active", Help: "1 while this replica leads the follower of the log (projections, kafka-relay, ...): one replica at a time does.",
		}, []string{"follower"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_kafka_dead_letters_total",
			Help: "Records written to a dead-letter topic instead of being published or handled, by their own topic and reason " +
				"(message_too_large, invalid, retries_exhausted, tenant_mismatch).",
		}, []string{"topic", "reason"}),
		epcisEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_epcis_events_total",
			Help: "EPCIS events of capture jobs, by outcome: captured (stored), unchanged (stored already with the same content), refused (invalid, in conflict, or not stored).",
		}, []string{"outcome"}),
		epcisSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_epcis_mapping_skipped_total",
			Help: "Tracking events derived from EPCIS events that the domain refused (rule-violation, invalid, other): the object's entity misses them.",
		}, []string{"reason"}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracktrace_webhook_attempts_total",
			Help: "Webhook delivery attempts, by outcome: delivered (2xx), failed (another answer or none).",
		}, []string{"outcome"}),
		webhookEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracktrace_webhook_events_delivered_total", Help: "Events acknowledged by webhook endpoints (replays included).",
		}),
		webhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tracktrace_webhook_request_duration_seconds", Help: "Webhook request latency (answered or not).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		webhookFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tracktrace_webhook_retrying_subscriptions", Help: "Subscriptions whose deliveries are failing and being retried.",
		}),
		webhookLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tracktrace_webhook_lag_events", Help: "Events of the log after a subscription's checkpoint.",
		}, []string{"tenant", "subscription"}),
		webhookLagSecs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tracktrace_webhook_lag_seconds", Help: "Age of the oldest event after a subscription's checkpoint.",
		}, []string{"tenant", "subscription"}),
	}
	r.MustRegister(m.httpRequests, m.httpDuration, m.appendDuration, m.eventsAppended, m.cacheRequests, m.leading, m.deadLetters,
		m.epcisEvents, m.epcisSkipped,
		m.webhookAttempts, m.webhookEvents, m.webhookLatency, m.webhookFailing, m.webhookLag, m.webhookLagSecs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Register adds a collector (pool statistics, projection lag, relay backlog).
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// CacheResult counts one cache lookup.
func (m *Metrics) CacheResult(cache, result string) {
	m.cacheRequests.WithLabelValues(cache, result).Inc()
}

// ObserveLeadership decorates leader so that tracktrace_follower_active
// reports, per follower name, whether this replica leads it: every follower
// of the log (the projections, the Kafka relay, any later one) takes its
// leadership from a Leader, so each shows up without code of its own.
func (m *Metrics) ObserveLeadership(leader projection.Leader) projection.Leader {
	return observedLeader{next: leader, gauge: m.leading}
}

type observedLeader struct {
	next  projection.Leader
	gauge *prometheus.GaugeVec
}

func (l observedLeader) TryLead(ctx context.Context, name string) (<-chan struct{}, func(), bool, error) {
	g := l.gauge.WithLabelValues(name)
	lost, release, ok, err := l.next.TryLead(ctx, name)
	if !ok {
		g.Set(0)
		return lost, release, ok, err
	}
	g.Set(1)
	// The follower releases after it noticed the loss, too.
	return lost, func() { g.Set(0); release() }, true, err
}

// DeadLettered counts one record written to a dead-letter topic: topic is
// the record's own (configured, so the label set is bounded; per-tenant
// ingest topics count under their pattern), reason why.
func (m *Metrics) DeadLettered(topic, reason string) {
	m.deadLetters.WithLabelValues(topic, reason).Inc()
}

// EPCISCaptured counts the events of a finished capture job: captured and
// unchanged ones, and refused ones (one per error of the job).
func (m *Metrics) EPCISCaptured(captured, unchanged, refused int) {
	m.epcisEvents.WithLabelValues("captured").Add(float64(captured))
	m.epcisEvents.WithLabelValues("unchanged").Add(float64(unchanged))
	m.epcisEvents.WithLabelValues("refused").Add(float64(refused))
}

// EPCISMappingSkipped counts one derived tracking command the domain
// refused.
func (m *Metrics) EPCISMappingSkipped(reason string) {
	m.epcisSkipped.WithLabelValues(reason).Inc()
}

// statusRecorder captures the status code a handler writes.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Instrument records rate, errors and duration per route: the ServeMux
// pattern that matched, never the raw path (which would explode the label
// set with entity ids).
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		method := methodLabel(r.Method)
		m.httpRequests.WithLabelValues(route, method, strconv.Itoa(rec.status)).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// methodLabel keeps the method label set bounded: a client can send any
// token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// typeLabel keeps the event-type label set bounded and tenants' custom type
// names private: every "x-" type counts as "custom".
func typeLabel(eventType string) string {
	if strings.HasPrefix(eventType, "x-") {
		return "custom"
	}
	return eventType
}

// InstrumentStore decorates an event store with append latency and events
// appended by type.
func (m *Metrics) InstrumentStore(s eventstore.Store) eventstore.Store {
	return &instrumentedStore{Store: s, m: m}
}

type instrumentedStore struct {
	eventstore.Store
	m *Metrics
}

func (s *instrumentedStore) Append(ctx context.Context, r eventstore.AppendRequest) (eventstore.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.Append(ctx, r)
	s.observe(r, res, err, time.Since(start))
	return res, err
}

// AppendAll observes each request as Append does, each taking the whole
// call's time (they commit together).
func (s *instrumentedStore) AppendAll(ctx context.Context, reqs []eventstore.AppendRequest) []eventstore.Outcome {
	start := time.Now()
	out := s.Store.AppendAll(ctx, reqs)
	took := time.Since(start)
	for i, o := range out {
		s.observe(reqs[i], o.Result, o.Err, took)
	}
	return out
}

func (s *instrumentedStore) observe(r eventstore.AppendRequest, res eventstore.AppendResult, err error, took time.Duration) {
	outcome := "ok"
	switch {
	case err != nil:
		outcome = "error"
	case res.Replayed:
		outcome = "replayed"
	}
	s.m.appendDuration.WithLabelValues(outcome).Observe(took.Seconds())
	if err == nil && !res.Replayed {
		for _, e := range r.Events {
			s.m.eventsAppended.WithLabelValues(typeLabel(e.Type)).Inc()
		}
	}
}

// StatusSource reports projections' status (projection.Manager).
type StatusSource interface {
	Status(ctx context.Context) ([]projection.Status, error)
}

// ProjectionCollector exports every projection's lag at scrape time.
type ProjectionCollector struct {
	src       StatusSource
	lagEvents *prometheus.Desc
	lagSecs   *prometheus.Desc
	active    *prometheus.Desc
}

// NewProjectionCollector returns a collector of the projections' lag.
func NewProjectionCollector(src StatusSource) *ProjectionCollector {
	return &ProjectionCollector{src: src,
		lagEvents: prometheus.NewDesc("tracktrace_projection_lag_events", "Events in the global log not yet applied by the projection.", []string{"projection"}, nil),
		lagSecs:   prometheus.NewDesc("tracktrace_projection_lag_seconds", "Age of the oldest event not yet applied by the projection.", []string{"projection"}, nil),
		active:    prometheus.NewDesc("tracktrace_projection_active", "1 when this replica runs the projection.", []string{"projection"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ProjectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lagEvents
	ch <- c.lagSecs
	ch <- c.active
}

// Collect implements prometheus.Collector.
func (c *ProjectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.src.Status(ctx)
	if err != nil {
		// No figures this scrape (the store or the broker is unreachable),
		// but the rest of /metrics is still served: an invalid metric
		// would fail the whole scrape.
		return
	}
	for _, s := range st {
		ch <- prometheus.MustNewConstMetric(c.lagEvents, prometheus.GaugeValue, float64(s.LagEvents), s.Name)
		ch <- prometheus.MustNewConstMetric(c.lagSecs, prometheus.GaugeValue, s.LagSeconds, s.Name)
		active := 0.0
		if s.Active {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, active, s.Name)
	}
}

// BacklogSource reports how far a reader of the log is behind (the relay).
type BacklogSource interface {
	Backlog(ctx context.Context) (eventstore.Backlog, error)
}

// NewBacklogCollector exports a backlog (e.g. the Kafka relay's) as gauges.
func NewBacklogCollector(name, help string, src BacklogSource) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		b, err := src.Backlog(ctx)
		if err != nil {
			return -1
		}
		return float64(b.Events)
	})
}

// NewFeatureCollector exports the feature flags that flags returns at
// scrape time, as tracktrace_feature_enabled{flag="..."} 1 or 0.
func NewFeatureCollector(flags func() map[string]bool) prometheus.Collector {
	return &featureCollector{flags: flags, desc: prometheus.NewDesc("tracktrace_feature_enabled",
		"1 when the feature flag is on (Features section of the configuration, re-read at run time).", []string{"flag"}, nil)}
}

type featureCollector struct {
	flags func() map[string]bool
	desc  *prometheus.Desc
}

func (c *featureCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *featureCollector) Collect(ch chan<- prometheus.Metric) {
	for name, on := range c.flags() {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name)
	}
}

// NewSQLDBCollector exports database/sql pool statistics (SQLite).
func NewSQLDBCollector(db *sql.DB, name string) prometheus.Collector {
	return collectors.NewDBStatsCollector(db, name)
}

// NewHorizonCollector exports what the last look of a read-horizon monitor
// (projection.HorizonMonitor) found: the age of the transaction holding the
// event log's read horizon back (0 when none does) and the committed events
// it keeps from the followers. A failed look exports nothing.
func NewHorizonCollector(status func() projection.HorizonStatus) prometheus.Collector {
	return &horizonCollector{status: status,
		age: prometheus.NewDesc("tracktrace_eventstore_horizon_holder_age_seconds",
			"Age of the oldest transaction holding the event log's read horizon back (0 when none): followers see no event committed after it took its id.", nil, nil),
		waiting: prometheus.NewDesc("tracktrace_eventstore_horizon_waiting_events",
			"Committed events the read horizon keeps from the log's followers (counted up to a bound).", nil, nil),
	}
}

type horizonCollector struct {
	status       func() projection.HorizonStatus
	age, waiting *prometheus.Desc
}

func (c *horizonCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.waiting
}

func (c *horizonCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	if st.Err != nil || st.Checked.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, st.Age.Seconds())
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(st.Holder.Waiting))
}

// Webhooks returns the subscriptions' observer: their metrics.
func (m *Metrics) Webhooks() subscription.Observer { return webhookMetrics{m} }

type webhookMetrics struct{ m *Metrics }

func (w webhookMetrics) Attempted(d subscription.Delivery) {
	w.m.webhookLatency.Observe(d.Latency.Seconds())
	if d.Error != "" {
		w.m.webhookAttempts.WithLabelValues("failed").Inc()
		return
	}
	w.m.webhookAttempts.WithLabelValues("delivered").Inc()
	w.m.webhookEvents.Add(float64(d.Events))
}

func (w webhookMetrics) Lag(tenant, id string, events int64, seconds float64) {
	w.m.webhookLag.WithLabelValues(tenant, id).Set(float64(events))
	w.m.webhookLagSecs.WithLabelValues(tenant, id).Set(seconds)
}

func (w webhookMetrics) Failing(_, _ string, failing bool) {
	if failing {
		w.m.webhookFailing.Inc()
	} else {
		w.m.webhookFailing.Dec()
	}
}

func (w webhookMetrics) Forget(tenant, id string) {
	w.m.webhookLag.DeleteLabelValues(tenant, id)
	w.m.webhookLagSecs.DeleteLabelValues(tenant, id)
}
