package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Dead-letter headers, added to the original record's headers when it is
// produced to <topic>.dlq.
const (
	HeaderDLQError             = "dlq-error"
	HeaderDLQOriginalTopic     = "dlq-original-topic"
	HeaderDLQOriginalPartition = "dlq-original-partition"
	HeaderDLQOriginalOffset    = "dlq-original-offset"
	HeaderDLQAttempts          = "dlq-attempts"
	// HeaderDLQReason names the class of failure (one of the Reason
	// constants), which the tracktrace_kafka_dead_letters_total metric
	// counts by.
	HeaderDLQReason = "dlq-reason"
)

// Reasons a record is dead-lettered, in the dlq-reason header and the
// reason label of tracktrace_kafka_dead_letters_total.
const (
	// ReasonMessageTooLarge: the relay could not publish an event because
	// it is larger than the broker (max.message.bytes) or the producer
	// (kgo.ProducerBatchMaxBytes) accepts; its dead letter carries the
	// event's identity, not its data.
	ReasonMessageTooLarge = "message_too_large"
	// ReasonInvalid: the message cannot succeed (undecodable, invalid, a
	// domain rule refused it).
	ReasonInvalid = "invalid"
	// ReasonRetriesExhausted: the message failed MaxAttempts times.
	ReasonRetriesExhausted = "retries_exhausted"
	// ReasonTenantMismatch: an ingest message names another tenant in its
	// header than the tenant its topic belongs to.
	ReasonTenantMismatch = "tenant_mismatch"
)

// maxDLQErrorBytes bounds the dlq-error header.
const maxDLQErrorBytes = 1024

// Applier applies events to a projection's read models, idempotently per
// (stream, version), without a global-log checkpoint, and erases entities
// from every read model; readmodel.Store implements it.
type Applier interface {
	ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error
	// EraseEntity deletes every read-model row of an entity, including
	// the versions applied of it, so that a later life starts afresh.
	EraseEntity(ctx context.Context, tenant, entityID string) error
}

// ConsumerOptions tune a Consumer.
type ConsumerOptions struct {
	// Projections are the projections a projection consumer feeds
	// (default tracking.Projections()).
	Projections []string
	// MaxAttempts bounds the attempts at a failing message before it is
	// dead-lettered (default 3). Messages that cannot succeed (undecodable,
	// invalid) are dead-lettered at once; failures of an unavailable
	// database (eventstore.ErrUnavailable) are retried until it is back.
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubling after
	// each next one (default 200ms) up to MaxBackoff (default 10s).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxPollRecords bounds the records handled per poll (default 500).
	MaxPollRecords int
	// DefaultTenant is the tenant of the messages of a single ingest topic
	// (default "default"); see NewIngestConsumer.
	DefaultTenant string
	// TenantTopics is the per-tenant ingest topic pattern
	// (Kafka.Topics.Ingest with TenantPlaceholder): an ingest message's
	// tenant is its topic's.
	TenantTopics string
	// TrustTenantHeader makes a single ingest topic take each message's
	// tenant from its "tenant" header, which any producer allowed to write
	// the topic can set to any tenant (Kafka.Ingest.TrustProducerTenantHeader).
	TrustTenantHeader bool
	Logger            *slog.Logger
	// Tracer, when set, records a "projection.apply" span per record that
	// carries a traceparent header, in that trace.
	Tracer trace.TracerProvider
	// OnHandled, when set, is called with the records of a partition once
	// they are handled and their offsets committed (metrics, tracing, tests).
	OnHandled func([]Delivery)
	// Enabled, when set, is asked at least every second, between polls,
	// whether to consume (the KafkaIngest feature flag); nil means always.
	// Once it said no, the consumer stays in its group but fetches,
	// handles and commits nothing until it says yes again: the messages
	// wait on the topic. Records already polled are handled first, never
	// dropped.
	Enabled func() bool
}

// Delivery is one handled record.
type Delivery struct {
	Topic     string
	Partition int32
	Offset    int64
	// TraceParent is the record's W3C traceparent header, "" when absent.
	TraceParent string
	// Event is the decoded domain event (projection consumer); for a
	// tombstone, the erasure marker of its entity (Event.Erasure()).
	Event eventstore.Recorded
	// Result is the append's outcome (ingest consumer); Result.Replayed is
	// true for a redelivered message.
	Result eventstore.AppendResult
	// DeadLettered is true when the record went to the dead-letter topic
	// because of Err after Attempts attempts; Reason is why (a Reason
	// constant).
	DeadLettered bool
	Reason       string
	Err          error
	Attempts     int
}

// handler handles the records of one partition.
type handler interface {
	// one handles one record.
	one(ctx context.Context, rec *kgo.Record, d *Delivery) error
	// batch handles a partition's records at once, or fails as a whole;
	// the consumer then handles them one by one.
	batch(ctx context.Context, recs []*kgo.Record, ds []Delivery) error
}

// Consumer consumes a topic in a consumer group, handles each partition's
// records in order, dead-letters the ones that keep failing to <topic>.dlq
// and commits the partition's offsets once its records are handled (never
// before: a crash redelivers, and handling is idempotent).
type Consumer struct {
	client *kgo.Client
	h      handler
	opts   ConsumerOptions
	log    *slog.Logger
	dlqs   map[string]bool // dead-letter topics known to exist
}

func newConsumer(client *kgo.Client, h handler, opts ConsumerOptions) *Consumer {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.MaxPollRecords <= 0 {
		opts.MaxPollRecords = 500
	}
	if opts.DefaultTenant == "" {
		opts.DefaultTenant = "default"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{client: client, h: h, opts: opts, log: log, dlqs: map[string]bool{}}
}

// NewProjectionConsumer returns a consumer that feeds the projections from
// the domain-events topic: per partition and poll, it decodes the
// CloudEvents, applies them to every projection (idempotent per stream
// version) and then commits the offsets. A tombstone (the relay's record of
// an erasure: the entity's key, a null value) erases the entity from every
// read model; as it follows all of the erased entity's events on their
// partition, a replay of the topic ends with the entity gone, and its
// events before the tombstone in the same poll are not applied at all. A
// later life of the same id comes after the tombstone and starts afresh.
// The client must be created with ProjectionConsumerOpts; the caller
// closes it after Run returns.
func NewProjectionConsumer(client *kgo.Client, target Applier, opts ConsumerOptions) *Consumer {
	if len(opts.Projections) == 0 {
		opts.Projections = tracking.Projections()
	}
	return newConsumer(client, &projectionHandler{target: target, names: opts.Projections}, opts)
}

// Run consumes until ctx is done and returns nil then. Handling stops at
// once; what was not committed is redelivered to the next consumer.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.client.AllowRebalance()
	idle, paused := 0, false
	for {
		if c.opts.Enabled != nil {
			// Between polls every record polled is handled (and committed,
			// or left for redelivery), so pausing here loses nothing.
			if on := c.opts.Enabled(); on == paused {
				paused = c.pause(!on)
			}
			if paused {
				if !sleep(ctx, enabledCheck) {
					return nil
				}
				continue
			}
		}
		fetches, timedOut := c.poll(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		if timedOut {
			c.client.AllowRebalance()
			continue
		}
		failed := false
		fetches.EachError(func(topic string, partition int32, err error) {
			failed = true
			c.log.Warn("kafka consumer: fetch failed", "topic", topic, "partition", partition, "error", err)
		})
		var stop error
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if stop == nil && len(p.Records) > 0 {
				stop = c.partition(ctx, p.Records)
			}
		})
		c.client.AllowRebalance()
		if stop != nil {
			return nil // ctx ended
		}
		if failed && fetches.NumRecords() == 0 {
			idle++
			sleep(ctx, projection.Backoff(idle, c.opts.MaxBackoff))
		} else {
			idle = 0
		}
	}
}

// enabledCheck is how often a consumer with an Enabled option asks it.
const enabledCheck = time.Second

// poll polls records; with an Enabled option for at most enabledCheck, so
// that it is asked again (timedOut: nothing came meanwhile).
func (c *Consumer) poll(ctx context.Context) (_ kgo.Fetches, timedOut bool) {
	if c.opts.Enabled == nil {
		return c.client.PollRecords(ctx, c.opts.MaxPollRecords), false
	}
	pctx, cancel := context.WithTimeout(ctx, enabledCheck)
	defer cancel()
	fetches := c.client.PollRecords(pctx, c.opts.MaxPollRecords)
	return fetches, fetches.NumRecords() == 0 && pctx.Err() != nil
}

// pause stops (or resumes) fetching the consumer's topics and reports
// whether it is paused now. Records the client buffered for a paused topic
// are dropped without moving its position: they are fetched again on
// resume.
func (c *Consumer) pause(p bool) bool {
	topics, _ := c.client.OptValue(kgo.ConsumeTopics).([]string)
	if regex, _ := c.client.OptValue(kgo.ConsumeRegex).(bool); regex {
		topics = c.client.GetConsumeTopics() // the names the expressions matched
	}
	if p {
		c.client.PauseFetchTopics(topics...)
		c.log.Info("kafka consumer: paused", "topics", topics)
	} else {
		c.client.ResumeFetchTopics(topics...)
		c.log.Info("kafka consumer: resumed", "topics", topics)
	}
	return p
}

// partition handles one partition's records in order and commits them. It
// returns an error only when ctx ended.
func (c *Consumer) partition(ctx context.Context, recs []*kgo.Record) error {
	ds := make([]Delivery, len(recs))
	var spans []trace.Span
	for i, rec := range recs {
		ds[i] = Delivery{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
			TraceParent: header(rec, HeaderTraceParent), Attempts: 1}
		if c.opts.Tracer != nil && ds[i].TraceParent != "" {
			sctx := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": ds[i].TraceParent})
			_, span := c.opts.Tracer.Tracer("tracktrace/kafka").Start(sctx, "kafka.consume "+rec.Topic,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", rec.Topic),
					attribute.Int64("messaging.kafka.offset", rec.Offset)))
			spans = append(spans, span)
		}
	}
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	if err := c.h.batch(ctx, recs, ds); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, errNoBatch) {
			c.log.Warn("kafka consumer: batch failed; handling its records one by one",
				"topic", recs[0].Topic, "partition", recs[0].Partition, "error", err)
		}
		for i, rec := range recs {
			if err := c.handle(ctx, rec, &ds[i]); err != nil {
				return err
			}
		}
	}
	if err := c.client.CommitRecords(ctx, recs[len(recs)-1]); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Redelivery is harmless: handling is idempotent.
		c.log.Warn("kafka consumer: commit failed", "topic", recs[0].Topic, "partition", recs[0].Partition, "error", err)
	}
	if c.opts.OnHandled != nil {
		c.opts.OnHandled(ds)
	}
	return nil
}

// Lag returns how many records of the consumer's topics its group has not
// committed yet, over all partitions (metrics: consumer lag).
func (c *Consumer) Lag(ctx context.Context) (int64, error) {
	group, _ := c.client.OptValue(kgo.ConsumerGroup).(string)
	if group == "" {
		return 0, errors.New("kafka consumer: the client has no consumer group")
	}
	return GroupLag(ctx, c.client, group)
}

// ErrGroupNotStarted: the consumer group has no members and no committed
// offsets yet (no server has consumed with it).
var ErrGroupNotStarted = errors.New("the consumer group has not started")

// GroupLag returns how many records of its topics a consumer group has not
// committed yet, over all partitions. The client need not be a member of
// the group (a command-line tool asks with a plain client).
func GroupLag(ctx context.Context, client *kgo.Client, group string) (int64, error) {
	lags, err := kadm.NewClient(client).Lag(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("kafka: lag of %s: %w", group, err)
	}
	if l, ok := lags[group]; ok && errors.Is(l.Error(), kerr.GroupIDNotFound) {
		return 0, fmt.Errorf("kafka: lag of %s: %w", group, ErrGroupNotStarted)
	}
	l, ok := lags[group]
	if !ok {
		return 0, fmt.Errorf("kafka: lag: group %s not described", group)
	}
	if err := l.Error(); err != nil {
		return 0, fmt.Errorf("kafka: lag of %s: %w", group, err)
	}
	var total int64
	for _, ps := range l.Lag {
		for _, p := range ps {
			if p.Err != nil {
				return 0, fmt.Errorf("kafka: lag of %s on %s/%d: %w", group, p.Topic, p.Partition, p.Err)
			}
			total += p.Lag
		}
	}
	return total, nil
}

// Classes of failures.
const (
	retryBounded     = iota // retried MaxAttempts times, then dead-lettered
	retryNever              // dead-lettered at once: it cannot succeed
	retryUnavailable        // retried until it succeeds: the database is down
)

// permanentError marks a failure that retrying cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// reasonOf is the dead-letter reason of a failure that is not retried
// (again).
func reasonOf(err error) string {
	var pe *permanentError
	switch {
	case errors.Is(err, errTenantMismatch):
		return ReasonTenantMismatch
	case errors.As(err, &pe):
		return ReasonInvalid
	}
	return ReasonRetriesExhausted
}

func classOf(err error) int {
	var pe *permanentError
	switch {
	case errors.As(err, &pe):
		return retryNever
	case errors.Is(err, eventstore.ErrUnavailable):
		return retryUnavailable
	}
	return retryBounded
}

// handle handles one record with retries, dead-lettering it when it keeps
// failing. It returns an error only when ctx ended.
func (c *Consumer) handle(ctx context.Context, rec *kgo.Record, d *Delivery) error {
	for attempt := 1; ; attempt++ {
		err := c.h.one(ctx, rec, d)
		if err == nil {
			d.Attempts = attempt
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		class := classOf(err)
		if class == retryNever || class == retryBounded && attempt >= c.opts.MaxAttempts {
			d.DeadLettered, d.Reason, d.Err, d.Attempts = true, reasonOf(err), err, attempt
			return c.deadLetter(ctx, rec, d.Reason, err, attempt)
		}
		wait := min(c.opts.Backoff<<min(attempt-1, 16), c.opts.MaxBackoff)
		c.log.Warn("kafka consumer: message failed; retrying", "topic", rec.Topic, "partition", rec.Partition,
			"offset", rec.Offset, "attempt", attempt, "retry_in", wait.String(), "error", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// deadLetter produces the record to its topic's dead-letter topic, with the
// failure in headers, retrying until the broker acknowledges it (the
// partition must not move on without it) or ctx ends.
func (c *Consumer) deadLetter(ctx context.Context, rec *kgo.Record, reason string, cause error, attempts int) error {
	dl := &kgo.Record{Topic: DLQTopic(rec.Topic), Key: rec.Key, Value: rec.Value,
		Headers: deadLetterHeaders(rec.Headers, deadLetterOrigin{topic: rec.Topic, partition: rec.Partition, offset: rec.Offset},
			reason, cause, attempts)}
	c.log.Error("kafka consumer: dead-lettering message", "topic", rec.Topic, "partition", rec.Partition,
		"offset", rec.Offset, "attempts", attempts, "reason", reason, "error", cause)
	if !c.dlqs[dl.Topic] {
		// A per-tenant topic's dead-letter topic is made on first use.
		c.createTopic(ctx, dl.Topic)
		c.dlqs[dl.Topic] = true
	}
	for n := 1; ; n++ {
		pctx, cancel := context.WithTimeout(ctx, dlqProduceTimeout)
		err := c.client.ProduceSync(pctx, dl).FirstErr()
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Error("kafka consumer: dead-letter produce failed; retrying", "topic", dl.Topic, "error", err)
		if !sleep(ctx, projection.Backoff(n, c.opts.MaxBackoff)) {
			return ctx.Err()
		}
	}
}

// dlqProduceTimeout bounds one attempt at producing a dead letter that
// has not been sent yet.
const dlqProduceTimeout = 30 * time.Second

// createTopic creates a topic with the broker's default partitions and
// replicas, if it does not exist.
func (c *Consumer) createTopic(ctx context.Context, topic string) {
	_, err := kadm.NewClient(c.client).CreateTopic(ctx, -1, -1, nil, topic)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
	case err != nil:
		c.log.Warn("kafka consumer: cannot create the dead-letter topic", "topic", topic, "error", err)
	default:
		c.log.Info("kafka consumer: created the dead-letter topic", "topic", topic)
	}
}

// deadLetterOrigin is where a dead-lettered record was, or was to be,
// written: a partition below 0 means it never was (a record the broker
// refused).
type deadLetterOrigin struct {
	topic     string
	partition int32
	offset    int64
}

// deadLetterHeaders returns a dead letter's headers: the original record's,
// then why it failed and where it came from.
func deadLetterHeaders(original []kgo.RecordHeader, from deadLetterOrigin, reason string, cause error, attempts int) []kgo.RecordHeader {
	msg := cause.Error()
	if len(msg) > maxDLQErrorBytes {
		msg = msg[:maxDLQErrorBytes]
	}
	h := append(slices.Clone(original),
		kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderDLQOriginalTopic, Value: []byte(from.topic)},
	)
	if from.partition >= 0 {
		h = append(h,
			kgo.RecordHeader{Key: HeaderDLQOriginalPartition, Value: []byte(strconv.FormatInt(int64(from.partition), 10))},
			kgo.RecordHeader{Key: HeaderDLQOriginalOffset, Value: []byte(strconv.FormatInt(from.offset, 10))})
	}
	return append(h, kgo.RecordHeader{Key: HeaderDLQAttempts, Value: []byte(strconv.Itoa(attempts))})
}

// errNoBatch: the handler handles records one by one only.
var errNoBatch = errors.New("kafka: no batch handling")

// entityKey identifies an entity across tenants.
type entityKey struct{ tenant, id string }

// projectionHandler applies domain events to the projections.
type projectionHandler struct {
	target Applier
	names  []string
}

func (p *projectionHandler) batch(ctx context.Context, recs []*kgo.Record, ds []Delivery) error {
	events := make([]eventstore.Recorded, len(recs))
	last := map[entityKey]int{} // the index of each entity's last tombstone
	for i, rec := range recs {
		e, err := decodeDomainRecord(rec)
		if err != nil {
			return err
		}
		events[i] = e
		if e.Erasure() {
			last[entityKey{e.Tenant, e.StreamID}] = i
		}
	}
	var pending []eventstore.Recorded
	for i, e := range events {
		at, erased := last[entityKey{e.Tenant, e.StreamID}]
		switch {
		case !e.Erasure() && erased && i < at:
			// Erased later in this poll: never shown.
		case !e.Erasure():
			pending = append(pending, e)
		case i == at:
			if err := p.apply(ctx, pending); err != nil {
				return err
			}
			pending = pending[:0]
			if err := p.erase(ctx, e); err != nil {
				return err
			}
		}
	}
	if err := p.apply(ctx, pending); err != nil {
		return err
	}
	for i := range ds {
		ds[i].Event = events[i]
	}
	return nil
}

func (p *projectionHandler) one(ctx context.Context, rec *kgo.Record, d *Delivery) error {
	e, err := decodeDomainRecord(rec)
	if err != nil {
		return &permanentError{err}
	}
	d.Event = e
	if e.Erasure() {
		return p.erase(ctx, e)
	}
	return p.apply(ctx, []eventstore.Recorded{e})
}

// apply applies events to every projection.
func (p *projectionHandler) apply(ctx context.Context, events []eventstore.Recorded) error {
	if len(events) == 0 {
		return nil
	}
	for _, name := range p.names {
		if err := p.target.ApplyEvents(ctx, name, events); err != nil {
			return fmt.Errorf("kafka consumer: apply %s: %w", name, err)
		}
	}
	return nil
}

// erase erases the entity of an erasure marker from the read models.
func (p *projectionHandler) erase(ctx context.Context, marker eventstore.Recorded) error {
	if err := p.target.EraseEntity(ctx, marker.Tenant, marker.StreamID); err != nil {
		return fmt.Errorf("kafka consumer: erase %s/%s: %w", marker.Tenant, marker.StreamID, err)
	}
	return nil
}

// decodeDomainRecord decodes a record of the domain-events topic: a
// CloudEvent, or a tombstone, which becomes the erasure marker of the
// entity its key and tenant header name.
func decodeDomainRecord(rec *kgo.Record) (eventstore.Recorded, error) {
	if rec.Value != nil {
		return DecodeCloudEvent(rec.Value)
	}
	tenant := header(rec, HeaderTenant)
	id, ok := strings.CutPrefix(string(rec.Key), tenant+"/")
	if tenant == "" || !ok || id == "" {
		return eventstore.Recorded{}, fmt.Errorf("kafka: tombstone: key %q and tenant header %q do not name an entity", rec.Key, tenant)
	}
	return eventstore.Recorded{Tenant: tenant, StreamID: id, Type: eventstore.ErasureType}, nil
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
