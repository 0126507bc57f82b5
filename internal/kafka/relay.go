package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
)

// RelayCheckpoint is the name of the relay's checkpoint and leadership lock.
const RelayCheckpoint = "kafka-relay"

// Checkpoints stores the relay's position in the global log. Both engines'
// read models implement it (MoveCheckpoint is a compare-and-set).
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
	// Streams rebuilds entity states for integration events on a cache
	// miss. Default: the feed, when it implements StreamReader (every
	// eventstore.Store does).
	Streams StreamReader
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
}

// RelayStatus reports on a relay, for health checks and metrics.
type RelayStatus struct {
	// Active is true while this process leads the relay.
	Active bool
	// Published counts the events this process published and checkpointed.
	Published int64
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
	client *kgo.Client
	feed   projection.Feed
	cps    Checkpoints
	leader projection.Leader
	opts   RelayOptions
	log    *slog.Logger
	derive *deriver

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
		opts.Streams, _ = feed.(StreamReader)
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10_000
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
	return &Relay{client: client, feed: feed, cps: cp, leader: leader, opts: opts, log: log,
		derive: &deriver{cache: newStateCache(opts.CacheSize), streams: opts.Streams, staged: map[entityKey]folded{}}}
}

// Status reports the relay's state in this process.
func (r *Relay) Status() RelayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Relay) setActive(active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Active = active
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
func (r *Relay) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		lost, release, ok, err := r.leader.TryLead(ctx, RelayCheckpoint)
		if err != nil {
			r.log.Warn("kafka relay: leadership unavailable", "error", err)
		}
		if !ok {
			sleep(ctx, nil, r.opts.Interval, nil)
			continue
		}
		r.log.Info("kafka relay: leading")
		r.setActive(true)
		err = r.follow(ctx, lost)
		release()
		r.setActive(false)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("kafka relay: stopped leading", "error", err)
			sleep(ctx, nil, time.Second, nil)
		}
	}
	return nil
}

// maxQuickRetries bounds the quick re-reads after a commit signal that
// found nothing readable yet (PostgreSQL: an event becomes readable when
// every older transaction has ended). About 5 s in all.
const maxQuickRetries = 105

// follow publishes batches until ctx ends or leadership is lost.
func (r *Relay) follow(ctx context.Context, lost <-chan struct{}) error {
	failures, retry := 0, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errors.New("leadership lost")
		default:
		}
		committed := r.feed.Committed()
		n, err := r.step(ctx)
		switch {
		case err == nil:
			if failures > 0 {
				r.log.Info("kafka relay: publishing again", "failures", failures)
			}
			failures = 0
		case errors.Is(err, projection.ErrCheckpointMoved):
			continue // another relay moved it: re-read
		case ctx.Err() != nil:
			return nil
		default:
			failures++
			r.setError(err)
			r.log.Error("kafka relay: batch failed; retrying from the checkpoint", "error", err, "failures", failures)
			sleep(ctx, lost, backoff(failures, r.opts.MaxBackoff), nil)
			continue
		}
		switch {
		case n == r.opts.BatchSize:
			retry = 0
		case n == 0 && retry > 0 && retry <= maxQuickRetries:
			sleep(ctx, lost, time.Duration(min(retry, 10))*5*time.Millisecond, committed)
			retry++
		default:
			retry = 0
			if sleep(ctx, lost, r.opts.Interval, committed) == woken {
				retry = 1
			}
		}
	}
}

// step publishes one batch and returns its size.
func (r *Relay) step(ctx context.Context) (int, error) {
	cp, err := r.cps.Checkpoint(ctx, RelayCheckpoint)
	if err != nil {
		return 0, fmt.Errorf("kafka relay: checkpoint: %w", err)
	}
	events, err := r.feed.ReadAll(ctx, cp.Cursor, r.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("kafka relay: read log: %w", err)
	}
	if len(events) == 0 {
		return 0, nil
	}
	defer r.derive.discard()
	records, spans, err := r.records(ctx, events)
	if err != nil {
		endSpans(spans, err)
		return 0, err
	}
	err = r.produce(ctx, records)
	endSpans(spans, err)
	if err != nil {
		return 0, fmt.Errorf("kafka relay: produce: %w", err)
	}
	if err := r.cps.MoveCheckpoint(ctx, RelayCheckpoint, cp.Cursor, events[len(events)-1].Cursor); err != nil {
		if errors.Is(err, projection.ErrCheckpointMoved) {
			return 0, err
		}
		return 0, fmt.Errorf("kafka relay: move checkpoint: %w", err)
	}
	r.derive.commit()
	r.mu.Lock()
	r.status.Published += int64(len(events))
	r.mu.Unlock()
	r.setError(nil)
	if r.opts.OnPublished != nil {
		r.opts.OnPublished(events)
	}
	return len(events), nil
}

// records builds the batch's records: each domain event, followed by the
// integration events it causes.
func (r *Relay) records(ctx context.Context, events []eventstore.Recorded) (_ []*kgo.Record, spans []trace.Span, _ error) {
	integration := r.opts.IntegrationTopic != "" && (r.opts.IntegrationEvents == nil || r.opts.IntegrationEvents())
	out := make([]*kgo.Record, 0, len(events)*2)
	for _, e := range events {
		value, err := EncodeCloudEventFrom(r.opts.Source, e)
		if err != nil {
			return nil, spans, fmt.Errorf("kafka relay: event %s: %w", e.ID, err)
		}
		key := []byte(e.Tenant + "/" + e.StreamID)
		tp, span := r.traceParent(ctx, e)
		if span != nil {
			spans = append(spans, span)
		}
		headers := recordHeaders(e, tp)
		out = append(out, &kgo.Record{Topic: r.opts.DomainTopic, Key: key, Value: value, Headers: headers})
		if !integration {
			continue
		}
		ds, err := r.derive.derive(ctx, e)
		if err != nil {
			return nil, spans, err
		}
		for _, d := range ds {
			v, err := encodeIntegration(r.opts.Source, e, d)
			if err != nil {
				return nil, spans, fmt.Errorf("kafka relay: event %s: %w", e.ID, err)
			}
			out = append(out, &kgo.Record{Topic: r.opts.IntegrationTopic, Key: key, Value: v, Headers: headers})
		}
	}
	return out, spans, nil
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

// produce sends the records and waits until every one is acknowledged, or
// one failed. Records not yet sent fail after ProduceTimeout; records in
// flight are waited for (see RelayOptions.ProduceTimeout) unless ctx ends.
func (r *Relay) produce(ctx context.Context, records []*kgo.Record) error {
	pctx, cancel := context.WithTimeout(ctx, r.opts.ProduceTimeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- r.client.ProduceSync(pctx, records...).FirstErr()
	}()
	slow := time.NewTimer(r.opts.ProduceTimeout + time.Second)
	defer slow.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-slow.C:
			// Records already sent cannot be failed without risking
			// duplicates or reordering: keep waiting, but say why.
			r.setError(errors.New("kafka relay: produce: waiting for the broker to acknowledge records in flight"))
		}
	}
}

// backoff is the jittered wait before retry n (1, 2, ...): 100 ms doubling,
// capped.
func backoff(n int, ceiling time.Duration) time.Duration {
	d := min(100*time.Millisecond<<min(n-1, 16), ceiling)
	return d/2 + rand.N(d/2+1)
}

type wake int

const (
	elapsed wake = iota
	woken
	stopped
)

// sleep waits d, or until ctx ends, lost closes, or wakeup closes (nil
// channels never close).
func sleep(ctx context.Context, lost <-chan struct{}, d time.Duration, wakeup <-chan struct{}) wake {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return stopped
	case <-lost:
		return stopped
	case <-wakeup:
		return woken
	case <-t.C:
		return elapsed
	}
}
