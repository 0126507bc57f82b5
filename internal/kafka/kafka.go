// Package kafka connects tracktrace to Kafka (franz-go): the relay that
// publishes the event store's global log (the outbox) to the domain-events
// topic as CloudEvents, together with the derived integration events; the
// consumer that feeds the projections from that topic; the optional ingest
// topic through which other systems record events; and dead-lettering of the
// messages that cannot be handled.
//
// Delivery is at least once everywhere: the relay moves its checkpoint only
// after the broker acknowledged a batch (acks=all, idempotent producer), and
// consumers commit offsets only after the read-model transaction. Duplicates
// are harmless: read models apply each (stream, version) once, integration
// events carry deterministic ids, and ingest messages carry (or are given
// deterministic) event ids.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of Config.
const (
	DefaultClientID          = "tracktrace"
	DefaultGroupID           = "tracktrace-projections"
	DefaultIngestGroupID     = "tracktrace-ingest"
	DefaultPartitions        = 6
	DefaultDomainEvents      = "corporate.tracktrace.events"
	DefaultIntegrationEvents = "corporate.integration.events"
	// DLQSuffix is appended to a topic's name to name its dead-letter topic.
	DLQSuffix = ".dlq"
)

// Topics names the topics (Kafka.Topics).
type Topics struct {
	DomainEvents      string // Kafka.Topics.DomainEvents
	IntegrationEvents string // Kafka.Topics.IntegrationEvents; "" publishes none
	Ingest            string // Kafka.Topics.Ingest; "" = no ingest topic
}

// Config is what the Kafka clients need from the Kafka configuration section.
type Config struct {
	// Brokers are the bootstrap servers (Kafka.BootstrapServers, split on commas).
	Brokers []string
	// ClientID identifies the process to the brokers (default "tracktrace").
	ClientID string
	Topics   Topics
	// GroupID is the projections' consumer group (Kafka.Consumer.GroupId,
	// default "tracktrace-projections").
	GroupID string
	// IngestGroupID is the ingest consumer group (default "tracktrace-ingest").
	IngestGroupID string
	// AutoOffsetReset is where a group without committed offsets starts:
	// "Earliest" (default) or "Latest" (Kafka.Consumer.AutoOffsetReset).
	AutoOffsetReset string
	// EnableAutoCommit must be false (Kafka.Consumer.EnableAutoCommit):
	// offsets are committed after the read-model transaction.
	EnableAutoCommit bool
	// SessionTimeout is the consumer groups' session timeout
	// (Kafka.Consumer.SessionTimeout; default the client's, 45s).
	SessionTimeout time.Duration
	// Partitions and ReplicationFactor are used by EnsureTopics for the
	// topics it creates (default 6 and the broker's default).
	Partitions        int32
	ReplicationFactor int16
}

func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.IngestGroupID == "" {
		c.IngestGroupID = DefaultIngestGroupID
	}
	if c.AutoOffsetReset == "" {
		c.AutoOffsetReset = "Earliest"
	}
	if c.Topics.DomainEvents == "" {
		c.Topics.DomainEvents = DefaultDomainEvents
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	return c
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: no bootstrap servers"))
	}
	if c.EnableAutoCommit {
		errs = append(errs, errors.New("kafka: EnableAutoCommit must be false: offsets are committed after the read-model transaction"))
	}
	switch strings.ToLower(c.AutoOffsetReset) {
	case "", "earliest", "latest":
	default:
		errs = append(errs, fmt.Errorf("kafka: AutoOffsetReset %q must be Earliest or Latest", c.AutoOffsetReset))
	}
	return errors.Join(errs...)
}

// NewClient returns a client of the configured brokers that produces with
// acks=all and the idempotent producer (order-preserving retries). extra
// options come last; add ProjectionConsumerOpts or IngestConsumerOpts for
// a consumer. The caller closes the client, after the Relay or Consumer
// using it has returned.
func NewClient(cfg Config, extra ...kgo.Opt) (*kgo.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	return cl, nil
}

// ProjectionConsumerOpts are the options of the client of a projection
// Consumer: group GroupID on the domain-events topic, starting where
// AutoOffsetReset says, offsets committed by the consumer only.
func ProjectionConsumerOpts(cfg Config) []kgo.Opt {
	cfg = cfg.withDefaults()
	return append(consumerOpts(cfg.GroupID, cfg.AutoOffsetReset, cfg.Topics.DomainEvents), sessionTimeout(cfg)...)
}

// IngestConsumerOpts are the options of the client of an ingest Consumer:
// group IngestGroupID on the ingest topic.
func IngestConsumerOpts(cfg Config) []kgo.Opt {
	cfg = cfg.withDefaults()
	return append(consumerOpts(cfg.IngestGroupID, cfg.AutoOffsetReset, cfg.Topics.Ingest), sessionTimeout(cfg)...)
}

// sessionTimeout is the group option of Config.SessionTimeout, if set.
func sessionTimeout(cfg Config) []kgo.Opt {
	if cfg.SessionTimeout <= 0 {
		return nil
	}
	return []kgo.Opt{kgo.SessionTimeout(cfg.SessionTimeout)}
}

func consumerOpts(group, reset, topic string) []kgo.Opt {
	start := kgo.NewOffset().AtStart()
	if strings.EqualFold(reset, "latest") {
		start = kgo.NewOffset().AtEnd()
	}
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	}
}

// DLQTopic names the dead-letter topic of a topic.
func DLQTopic(topic string) string { return topic + DLQSuffix }

// TopicNames lists the topics the configuration uses: domain events and its
// dead-letter topic, integration events, ingest and its dead-letter topic.
func TopicNames(cfg Config) []string {
	cfg = cfg.withDefaults()
	out := []string{cfg.Topics.DomainEvents, DLQTopic(cfg.Topics.DomainEvents)}
	if cfg.Topics.IntegrationEvents != "" {
		out = append(out, cfg.Topics.IntegrationEvents)
	}
	if cfg.Topics.Ingest != "" {
		out = append(out, cfg.Topics.Ingest, DLQTopic(cfg.Topics.Ingest))
	}
	return out
}

// EnsureTopics creates the configuration's topics (TopicNames) that do not
// exist yet, with Partitions partitions and ReplicationFactor replicas.
// Existing topics are left as they are.
func EnsureTopics(ctx context.Context, client *kgo.Client, cfg Config) error {
	cfg = cfg.withDefaults()
	resp, err := kadm.NewClient(client).CreateTopics(ctx, cfg.Partitions, cfg.ReplicationFactor, nil, TopicNames(cfg)...)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", err)
	}
	var errs []error
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafka: create topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}
