package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/telemetry"
	"github.com/tlm/tracktrace/internal/tracking"
)

// kafkaParts are the Kafka components of a serving process.
type kafkaParts struct {
	clients   []*kgo.Client
	relay     *kafka.Relay
	consumers []*kafka.Consumer
	// fed reports on the projections when the consumer group feeds them.
	fed *consumerFed
	// ensureTopics, when set, creates the topics that could not be made at
	// start (the broker was not up yet): run retries it until it succeeds.
	ensureTopics func(ctx context.Context) error
	log          *slog.Logger
	// security describes how the clients connect (kafka.Security.String),
	// for the errors an operator reads when they cannot.
	security string
}

// kafkaFeedsProjections reports whether the projections read the Kafka
// topic rather than the event store's log.
func kafkaFeedsProjections(cfg *config.Config) bool {
	switch strings.ToLower(cfg.ReadModels.Feed) {
	case "kafka":
		return true
	case "log":
		return false
	}
	return cfg.Kafka.Enabled()
}

// kafkaConfig is the Kafka section as the kafka package takes it.
func kafkaConfig(cfg *config.Config) kafka.Config {
	return kafka.Config{Brokers: cfg.Kafka.Brokers(), ClientID: "tracktrace",
		Security: kafkaSecurity(cfg.Kafka.Security),
		Topics: kafka.Topics{DomainEvents: cfg.Kafka.Topics.DomainEvents, IntegrationEvents: cfg.Kafka.Topics.IntegrationEvents,
			Ingest: cfg.Kafka.Topics.Ingest},
		GroupID: cfg.Kafka.Consumer.GroupID, AutoOffsetReset: cfg.Kafka.Consumer.AutoOffsetReset,
		EnableAutoCommit: cfg.Kafka.Consumer.EnableAutoCommit, SessionTimeout: time.Duration(cfg.Kafka.Consumer.SessionTimeout)}
}

// kafkaSecurity is Kafka.Security as the kafka package takes it.
func kafkaSecurity(s config.KafkaSecurity) kafka.Security {
	var sec kafka.Security
	if s.TLS.Enabled {
		sec.TLS = &kafka.TLS{CAFile: s.TLS.CAFile, CertFile: s.TLS.CertFile, KeyFile: s.TLS.KeyFile, ServerName: s.TLS.ServerName}
	}
	if s.SASL.Mechanism != "" {
		sec.SASL = &kafka.SASL{Mechanism: s.SASL.Mechanism, Username: s.SASL.Username, Password: s.SASL.Password}
	}
	return sec
}

// startKafka builds the relay (always, when Kafka is configured), the
// projection consumer (when Kafka feeds the projections) and the ingest
// consumer (when an ingest topic is configured).
func startKafka(ctx context.Context, cfg *config.Config, features *config.Features, store eventstore.Store, views *readmodel.Store, leader projection.Leader, svc *tracking.Service,
	metrics *telemetry.Metrics, tp trace.TracerProvider, onApplied func([]eventstore.Recorded), log *slog.Logger) (*kafkaParts, error) {
	kc := kafkaConfig(cfg)
	parts := &kafkaParts{log: log, security: kc.Security.String()}
	producer, err := kafka.NewClient(kc)
	if err != nil {
		return nil, err
	}
	parts.clients = append(parts.clients, producer)
	log.Info("kafka: connecting", "brokers", kc.Brokers, "security", parts.security)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := kafka.EnsureTopics(tctx, producer, kc); err != nil {
		// The relay and the consumers retry until the topics exist; run
		// goes on creating them meanwhile.
		log.Warn("kafka: cannot create the topics now; retrying in the background", "security", parts.security, "error", err)
		parts.ensureTopics = func(ctx context.Context) error { return kafka.EnsureTopics(ctx, producer, kc) }
	}
	cancel()
	parts.relay = kafka.NewRelay(producer, store, views, leader, kafka.RelayOptions{DomainTopic: kc.Topics.DomainEvents,
		IntegrationTopic: kc.Topics.IntegrationEvents, IntegrationEvents: features.Func(config.FeatureIntegrationEvents),
		EtaPolicy: alerting.NewEtaAnnouncer(views, views), Interval: time.Duration(cfg.ReadModels.RefreshInterval), Logger: log, Tracer: tp, OnDeadLettered: metrics.DeadLettered})
	if err := metrics.Register(telemetry.NewBacklogCollector("tracktrace_relay_backlog_events",
		"Events in the global log not yet published to Kafka.", parts.relay)); err != nil {
		return nil, err
	}
	if kafkaFeedsProjections(cfg) {
		pc, err := kafka.NewClient(kc, kafka.ProjectionConsumerOpts(kc)...)
		if err != nil {
			return nil, err
		}
		parts.clients = append(parts.clients, pc)
		parts.fed = &consumerFed{names: tracking.Projections(), group: kc.GroupID}
		cons := kafka.NewProjectionConsumer(pc, views, kafka.ConsumerOptions{Logger: log, Tracer: tp,
			OnHandled: func(ds []kafka.Delivery) {
				countDeadLetters(metrics, ds)
				evs := make([]eventstore.Recorded, 0, len(ds))
				for _, d := range ds {
					evs = append(evs, d.Event)
				}
				onApplied(evs)
				parts.fed.applied()
			}})
		parts.fed.lag = cons.Lag
		parts.consumers = append(parts.consumers, cons)
		if err := metrics.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracktrace_consumer_lag_messages",
			Help: "Messages of the projection consumer group not yet applied."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := cons.Lag(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		})); err != nil {
			return nil, err
		}
	}
	if kc.Topics.Ingest != "" {
		ic, err := kafka.NewClient(kc, kafka.IngestConsumerOpts(kc)...)
		if err != nil {
			return nil, err
		}
		parts.clients = append(parts.clients, ic)
		var tenantTopics string
		if kafka.PerTenantIngest(kc.Topics.Ingest) {
			tenantTopics = kc.Topics.Ingest
		}
		parts.consumers = append(parts.consumers, kafka.NewIngestConsumer(ic, svc, kafka.ConsumerOptions{Logger: log,
			TenantTopics: tenantTopics, TrustTenantHeader: cfg.Kafka.Ingest.TrustProducerTenantHeader,
			Enabled:   features.Func(config.FeatureKafkaIngest),
			OnHandled: func(ds []kafka.Delivery) { countDeadLetters(metrics, ds) }}))
	}
	return parts, nil
}

// countDeadLetters counts the handled records that went to a dead-letter
// topic.
func countDeadLetters(metrics *telemetry.Metrics, ds []kafka.Delivery) {
	for _, d := range ds {
		if d.DeadLettered {
			metrics.DeadLettered(d.Topic, d.Reason)
		}
	}
}

// run runs the relay and the consumers until ctx ends, creating the
// topics first if that failed at start.
func (k *kafkaParts) run(ctx context.Context) error {
	if k.ensureTopics != nil {
		go k.retryTopics(ctx)
	}
	errs := make(chan error, 1+len(k.consumers))
	go func() { errs <- k.relay.Run(ctx) }()
	for _, c := range k.consumers {
		go func() { errs <- c.Run(ctx) }()
	}
	var all []error
	for range 1 + len(k.consumers) {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// retryTopics creates the topics, retrying with the followers' growing,
// jittered delay (projection.Backoff, up to 30 s) until it succeeds or ctx
// ends.
func (k *kafkaParts) retryTopics(ctx context.Context) {
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(projection.Backoff(attempt, 30*time.Second)):
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := k.ensureTopics(tctx)
		cancel()
		if err == nil {
			k.log.Info("kafka: topics created")
			return
		}
		k.log.Debug("kafka: cannot create the topics yet", "error", err)
	}
}

// close closes the clients (after run returned).
func (k *kafkaParts) close() {
	for _, c := range k.clients {
		c.Close()
	}
}

// ping checks that a broker answers, naming how the client connected when
// it does not (a broker that hangs up on a wrong password says no more than
// EOF).
func (k *kafkaParts) ping(ctx context.Context) error {
	if err := k.clients[0].Ping(ctx); err != nil {
		return fmt.Errorf("kafka (%s): %w", k.security, err)
	}
	return nil
}
