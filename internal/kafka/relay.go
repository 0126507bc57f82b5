package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// RelayCheckpoint is the name of the relay's checkpoint and leadership lock.
const RelayCheckpoint = "kafka-relay"

// Checkpoints stores the relay's position in the global log;
// readmodel.Store implements it (MoveCheckpoint is a compare-and-set).
type Checkpoints interface {
	Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error)
	// MoveCheckpoint moves the checkpoint from `from` to `to`, or returns
	// projection.ErrCheckpointMoved when it is not at `from`.
	MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error
}

// RelayOptions tune a Relay.
type RelayOptions struct {
	// DomainTopic receives every event (Kafka.Topics.DomainEvents; default
	// DefaultDomainEvents).
	DomainTopic string
	// IntegrationTopic receives the integration events
	// (Kafka.Topics.IntegrationEvents); "" publishes none.
	IntegrationTopic string
	// IntegrationEvents, when set, is asked once per batch whether to
	// publish integration events (the IntegrationEvents feature flag); nil
	// means yes. The events of a batch published without them never get
	// them later.
	IntegrationEvents func() bool
	// Source is the CloudEvents source of every message (default "tracktrace").
	Source string
	// EtaPolicy, when set, decides which ETA changes are published as
	// EtaChanged (alerting.EtaAnnouncer: a tenant's delay rule's
	// etaDelta); nil publishes every change.
	EtaPolicy tracking.EtaPolicy
	// Streams rebuilds entity states for integration events on a cache
	// miss. Default: the feed, when it implements tracking.StreamReader
	// (every eventstore.Store does).
	Streams tracking.StreamReader
	// Interval is the polling fallback when no commit signal arrives, and
	// how often a standby replica tries to take over (default 5s).
	Interval time.Duration
	// BatchSize is the number of events published per acknowledged batch
	// (default 500).
	BatchSize int
	// CacheSize bounds the entities whose folded state is kept for deriving
	// integration events (default 10,000).
	CacheSize int
	// ProduceTimeout bounds how long records of a batch may wait for a
	// broker before the batch is retried (default 30s). Records already
	// sent to a broker are waited for until it answers, whatever the
	// timeout: the idempotent producer cannot forget them safely.
	ProduceTimeout time.Duration
	// MaxBackoff caps the wait between failed batches (default 10s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// Tracer, when set, records a "kafka.publish" span per event that
	// carries a trace id, in that trace, and sends its context in the
	// traceparent header (otherwise the header is derived from the event).
	Tracer trace.TracerProvider
	// OnPublished, when set, is called after each acknowledged and
	// checkpointed batch (metrics).
	OnPublished func(events []eventstore.Recorded)
	// OnDeadLettered, when set, is called for each record the broker
	// acknowledged on a dead-letter topic instead of its own (metrics):
	// topic is the record's own, reason a Reason constant.
	OnDeadLettered func(topic, reason string)
}

// RelayStatus reports on a relay, for health checks and metrics.
type RelayStatus struct {
	// Active is true while this process leads the relay.
	Active bool
	// Published counts the events this process published and checkpointed.
	Published int64
	// DeadLettered counts the records this process wrote to the
	// dead-letter topic instead (ReasonMessageTooLarge).
	DeadLettered int64
	// LastError is the error of the last failed batch, cleared by the next
	// successful one.
	LastError   string
	LastErrorAt time.Time
}

// Relay publishes the event store's global log to Kafka: the transactional
// outbox without a dual write. It tails the log from its checkpoint,
// produces each batch (domain events keyed "<tenant>/<entityId>", so that an
// entity's events stay in order on one partition, plus the integration
// events they cause), waits until the broker acknowledged every record, and
// only then moves its checkpoint. A failed batch is retried from the
// checkpoint with backoff, so a batch may be published twice but never
// skipped. One relay runs across replicas (Leader).
type Relay struct {
	client   *kgo.Client
	feed     projection.Feed
	cps      Checkpoints
	opts     RelayOptions
	log      *slog.Logger
	derive   *tracking.Deriver
	follower *projection.Follower

	mu     sync.Mutex
	status RelayStatus
}

// NewRelay returns a relay from feed (the event store) to the client's
// brokers. The client must produce with acks=all and idempotence (see
// NewClient); the caller closes it after Run returns.
func NewRelay(client *kgo.Client, feed projection.Feed, cp Checkpoints, leader projection.Leader, opts RelayOptions) *Relay {
	if opts.DomainTopic == "" {
		opts.DomainTopic = DefaultDomainEvents
	}
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.Streams == nil {
		opts.Streams, _ = feed.(tracking.StreamReader)
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = tracking.DefaultDeriverCacheSize
	}
	if opts.ProduceTimeout <= 0 {
		opts.ProduceTimeout = 30 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{client: client, feed: feed, cps: cp, opts: opts, log: log,
		derive: tracking.NewDeriver(opts.Streams, opts.CacheSize).UseEtaPolicy(opts.EtaPolicy)}
	r.follower = projection.NewFollower(RelayCheckpoint, feed, cp, leader, r.publish, projection.FollowerOptions{
		Interval: opts.Interval, BatchSize: opts.BatchSize, MaxBackoff: opts.MaxBackoff, Logger: log,
		OnState: r.setState,
	})
	return r
}

// Status reports the relay's state in this process.
func (r *Relay) Status() RelayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// setState records the follower's leadership and its last batch's error.
func (r *Relay) setState(active bool, err error) {
	r.mu.Lock()
	r.status.Active = active
	r.mu.Unlock()
	if active && err != nil {
		r.setError(err) // cleared by the next published batch only
	}
}

func (r *Relay) setError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.status.LastError, r.status.LastErrorAt = "", time.Time{}
		return
	}
	r.status.LastError, r.status.LastErrorAt = err.Error(), time.Now()
}

// Backlog reports the events not yet published (metrics: relay backlog).
func (r *Relay) Backlog(ctx context.Context) (eventstore.Backlog, error) {
	cp, err := r.cps.Checkpoint(ctx, RelayCheckpoint)
	if err != nil {
		return eventstore.Backlog{}, err
	}
	return r.feed.Backlog(ctx, cp.Cursor)
}

// Run competes for leadership of the relay and, while leading, publishes
// until ctx is done. It returns nil when ctx ends. A produce still waiting
// for an unreachable broker is abandoned then: close the client afterwards.
func (r *Relay) Run(ctx context.Context) error { return r.follower.Run(ctx) }

// publish is the relay's effect on a batch: produce its records, wait for
// every acknowledgement, and only then move the checkpoint. A record too
// large for the broker is acknowledged by its dead letter instead.
func (r *Relay) publish(ctx context.Context, from eventstore.Cursor, events []eventstore.Recorded) error {
	defer r.derive.Discard()
	records, sources, spans, err := r.records(ctx, events)
	if err != nil {
		endSpans(spans, err)
		return err
	}
	results, err := r.produce(ctx, records)
	if err == nil {
		err = r.settle(ctx, results, sources)
	}
	endSpans(spans, err)
	if err != nil {
		return fmt.Errorf("kafka relay: produce: %w", err)
	}
	if err := r.cps.MoveCheckpoint(ctx, RelayCheckpoint, from, events[len(events)-1].Cursor); err != nil {
		if errors.Is(err, projection.ErrCheckpointMoved) {
			return err
		}
		return fmt.Errorf("kafka relay: move checkpoint: %w", err)
	}
	r.derive.Commit()
	r.mu.Lock()
	r.status.Published += int64(len(events))
	r.mu.Unlock()
	r.setError(nil) // also the note produce leaves while it waits for a broker
	if r.opts.OnPublished != nil {
		r.opts.OnPublished(events)
	}
	return nil
}

// records builds the batch's records: each domain event, followed by the
// integration events it causes; sources holds the event each record is
// made of.
func (r *Relay) records(ctx context.Context, events []eventstore.Recorded) (_ []*kgo.Record, sources map[*kgo.Record]*eventstore.Recorded, spans []trace.Span, _ error) {
	integration := r.opts.IntegrationTopic != "" && (r.opts.IntegrationEvents == nil || r.opts.IntegrationEvents())
	out := make([]*kgo.Record, 0, len(events)*2)
	sources = make(map[*kgo.Record]*eventstore.Recorded, len(events)*2)
	for i := range events {
		e := &events[i]
		if e.Erasure() {
			rec := tombstone(r.opts.DomainTopic, *e)
			out = append(out, rec)
			sources[rec] = e
			r.derive.Forget(e.Tenant, e.StreamID) // with or without integration events
			continue
		}
		value, err := EncodeCloudEventFrom(r.opts.Source, *e)
		if err != nil {
			return nil, nil, spans, fmt.Errorf("kafka relay: event %s: %w", e.ID, err)
		}
		key := []byte(e.Tenant + "/" + e.StreamID)
		tp, span := r.traceParent(ctx, *e)
		if span != nil {
			spans = append(spans, span)
		}
		headers := recordHeaders(*e, tp)
		rec := &kgo.Record{Topic: r.opts.DomainTopic, Key: key, Value: value, Headers: headers}
		out = append(out, rec)
		sources[rec] = e
		if !integration {
			continue
		}
		ds, err := r.derive.Derive(ctx, *e)
		if err != nil {
			return nil, nil, spans, fmt.Errorf("kafka relay: %w", err)
		}
		for _, d := range ds {
			v, err := encodeIntegration(r.opts.Source, *e, d)
			if err != nil {
				return nil, nil, spans, fmt.Errorf("kafka relay: event %s: %w", e.ID, err)
			}
			rec := &kgo.Record{Topic: r.opts.IntegrationTopic, Key: key, Value: v, Headers: headers}
			out = append(out, rec)
			sources[rec] = e
		}
	}
	return out, sources, spans, nil
}

// tooLarge reports a record that a broker, or the producer itself
// (ProducerBatchMaxBytes), refuses for its size: retrying cannot help.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// settle checks the produce results of a batch: nil when every record was
// acknowledged, or refused for its size and then acknowledged on its own or
// dead-lettered (ReasonMessageTooLarge); otherwise the first other failure,
// and the batch is retried.
func (r *Relay) settle(ctx context.Context, results kgo.ProduceResults, sources map[*kgo.Record]*eventstore.Recorded) error {
	var large []kgo.ProduceResult
	for _, pr := range results {
		switch {
		case pr.Err == nil:
		case tooLarge(pr.Err):
			large = append(large, pr)
		default:
			return pr.Err
		}
	}
	// Results come in the order records finished: put the refused ones
	// back in log order.
	slices.SortFunc(large, func(a, b kgo.ProduceResult) int {
		return cmp.Compare(sources[a.Record].Position, sources[b.Record].Position)
	})
	for _, pr := range large {
		rec := pr.Record
		// A broker refuses a whole batch for its size: the records it held
		// with the culprit are tried again alone.
		alone := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
		res, err := r.produce(ctx, []*kgo.Record{alone})
		if err != nil {
			return err
		}
		err = res[0].Err
		if err == nil {
			r.log.Warn("kafka relay: a batch was too large for the broker; its records were published one by one "+
				"(the topic's max.message.bytes is below the producer's batch limit, 1,000,012 bytes by default)",
				"topic", rec.Topic, "error", pr.Err)
			continue
		}
		if !tooLarge(err) {
			return err
		}
		if err := r.deadLetter(ctx, alone, sources[rec], err); err != nil {
			return err
		}
	}
	return nil
}

// deadLetter writes, instead of a record too large to publish, a dead
// letter of its event's identity (its CloudEvent without data, which would
// not fit either) to the domain topic's dead-letter topic, with the reason
// in the headers, and waits for the broker's acknowledgement.
func (r *Relay) deadLetter(ctx context.Context, rec *kgo.Record, e *eventstore.Recorded, cause error) error {
	value, err := encodeIdentity(r.opts.Source, *e)
	if err != nil {
		return err
	}
	dl := &kgo.Record{Topic: DLQTopic(r.opts.DomainTopic), Key: rec.Key, Value: value,
		Headers: deadLetterHeaders(rec.Headers, deadLetterOrigin{topic: rec.Topic, partition: -1}, ReasonMessageTooLarge, cause, 1)}
	res, err := r.produce(ctx, []*kgo.Record{dl})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		return fmt.Errorf("dead-letter event %s: %w", e.ID, err)
	}
	r.log.Warn("kafka relay: event too large to publish; dead-lettered its identity", "topic", rec.Topic, "dlq", dl.Topic,
		"tenant", e.Tenant, "entity", e.StreamID, "version", e.Version, "event_id", e.ID.String(),
		"bytes", len(rec.Value), "error", cause)
	r.mu.Lock()
	r.status.DeadLettered++
	r.mu.Unlock()
	if r.opts.OnDeadLettered != nil {
		r.opts.OnDeadLettered(rec.Topic, ReasonMessageTooLarge)
	}
	return nil
}

// tombstone is the record of an erasure marker: the entity's key with a
// null value, after all of the entity's records on its partition. A
// compacted topic drops the key's earlier records for it, and consumers
// erase the entity (see NewProjectionConsumer).
func tombstone(topic string, e eventstore.Recorded) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(e.Tenant + "/" + e.StreamID),
		Headers: []kgo.RecordHeader{{Key: HeaderTenant, Value: []byte(e.Tenant)}}}
}

func recordHeaders(e eventstore.Recorded, traceParent string) []kgo.RecordHeader {
	h := []kgo.RecordHeader{
		{Key: HeaderContentType, Value: []byte(ContentType)},
		{Key: HeaderTenant, Value: []byte(e.Tenant)},
	}
	if traceParent != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderTraceParent, Value: []byte(traceParent)})
	}
	return h
}

// traceParent returns the traceparent header of an event, and the publish
// span it started when tracing is on and the event carries a trace id.
func (r *Relay) traceParent(ctx context.Context, e eventstore.Recorded) (string, trace.Span) {
	tp, ok := TraceParent(e.Metadata.TraceID, e.ID)
	if !ok {
		return "", nil
	}
	if r.opts.Tracer == nil {
		return tp, nil
	}
	carrier := propagation.MapCarrier{"traceparent": tp}
	ctx = propagation.TraceContext{}.Extract(ctx, carrier)
	ctx, span := r.opts.Tracer.Tracer("tracktrace/kafka").Start(ctx, "kafka.publish "+r.opts.DomainTopic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", r.opts.DomainTopic),
			attribute.String("tracktrace.event_id", e.ID.String())))
	out := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, out)
	if v := out["traceparent"]; v != "" {
		tp = v
	}
	return tp, span
}

func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, "publish failed")
		}
		s.End()
	}
}

// produce sends the records and waits until every one is acknowledged or
// failed, and returns their results; the error is ctx's only. Records not
// yet sent fail after ProduceTimeout; records in flight are waited for (see
// RelayOptions.ProduceTimeout) unless ctx ends.
func (r *Relay) produce(ctx context.Context, records []*kgo.Record) (kgo.ProduceResults, error) {
	pctx, cancel := context.WithTimeout(ctx, r.opts.ProduceTimeout)
	done := make(chan kgo.ProduceResults, 1)
	go func() {
		defer cancel()
		done <- r.client.ProduceSync(pctx, records...)
	}()
	slow := time.NewTimer(r.opts.ProduceTimeout + time.Second)
	defer slow.Stop()
	for {
		select {
		case res := <-done:
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-slow.C:
			// Records already sent cannot be failed without risking
			// duplicates or reordering: keep waiting, but say why.
			r.setError(errors.New("kafka relay: produce: waiting for the broker to acknowledge records in flight"))
		}
	}
}
