package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// produce writes records and waits for their acknowledgement.
func produce(t *testing.T, ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// domainRecords encodes the store's whole log as domain-event records.
func domainRecords(t *testing.T, ctx context.Context, store eventstore.Store, topic string) ([]*kgo.Record, []eventstore.Recorded) {
	t.Helper()
	events, err := store.ReadAll(ctx, eventstore.Cursor{}, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, len(events))
	for i, e := range events {
		v, err := kafka.EncodeCloudEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(e.Tenant + "/" + e.StreamID), Value: v}
	}
	return recs, events
}

func headerOf(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// checkDLQ checks a dead-lettered record's headers.
func checkDLQ(t *testing.T, r *kgo.Record, topic string, offset int64, attempts int) {
	t.Helper()
	want := map[string]string{
		kafka.HeaderDLQOriginalTopic:     topic,
		kafka.HeaderDLQOriginalPartition: "0",
		kafka.HeaderDLQOriginalOffset:    strconv.FormatInt(offset, 10),
		kafka.HeaderDLQAttempts:          strconv.Itoa(attempts),
	}
	for k, v := range want {
		if got, ok := headerOf(r, k); !ok || got != v {
			t.Errorf("dead letter of offset %d: header %s = %q, want %q", offset, k, got, v)
		}
	}
	if msg, ok := headerOf(r, kafka.HeaderDLQError); !ok || msg == "" {
		t.Errorf("dead letter of offset %d: no %s header", offset, kafka.HeaderDLQError)
	}
}

// poisonApplier fails every apply that includes the poison event.
type poisonApplier struct {
	kafka.Applier
	poison uuid.UUID
	alone  atomic.Int32 // attempts at the poison event alone, per projection
}

func (p *poisonApplier) ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error {
	for _, e := range events {
		if e.ID == p.poison {
			if len(events) == 1 && name == tracking.ProjectionTimeline {
				p.alone.Add(1)
			}
			return errors.New("read model rejects the event")
		}
	}
	return p.Applier.ApplyEvents(ctx, name, events)
}

// A message that cannot be decoded is dead-lettered at once; one whose
// application keeps failing is retried MaxAttempts times, then
// dead-lettered; the partition goes on with the later messages.
func TestConsumerPoisonMessages(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 1)
	topic := cfg.Topics.DomainEvents
	store, _ := openSQLite(t)
	_, other := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	record(t, svc, "acme", "p", journey(6)...)
	recs, events := domainRecords(t, ctx, store, topic)

	// Offsets: 0 v1, 1 v2, 2 garbage, 3 v3, 4 v4 (poison), 5 v5, 6 v6.
	garbage := &kgo.Record{Topic: topic, Key: []byte("acme/p"), Value: []byte(`{"specversion":"1.0","id":`),
		Headers: []kgo.RecordHeader{{Key: "custom", Value: []byte("kept")}}}
	ordered := []*kgo.Record{recs[0], recs[1], garbage, recs[2], recs[3], recs[4], recs[5]}
	producer := newClient(t, cfg)
	produce(t, ctx, producer, ordered...)

	app := &poisonApplier{Applier: other, poison: events[3].ID}
	var mu sync.Mutex
	var handled []kafka.Delivery
	consumer := kafka.NewProjectionConsumer(newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...), app, kafka.ConsumerOptions{
		MaxAttempts: 3, Backoff: 10 * time.Millisecond,
		OnHandled: func(ds []kafka.Delivery) {
			mu.Lock()
			defer mu.Unlock()
			handled = append(handled, ds...)
		},
	})
	runInBackground(t, ctx, consumer.Run)
	waitFor(t, ctx, "the last message to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) > 0 && handled[len(handled)-1].Offset == 6
	})

	dlq := consumeAll(t, ctx, cfg, kafka.DLQTopic(topic), 2)
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	checkDLQ(t, dlq[0], topic, 2, 1)
	checkDLQ(t, dlq[1], topic, 4, 3)
	if string(dlq[0].Value) != string(garbage.Value) || string(dlq[0].Key) != "acme/p" {
		t.Errorf("dead letter changed the message: %q %q", dlq[0].Key, dlq[0].Value)
	}
	if v, _ := headerOf(dlq[0], "custom"); v != "kept" {
		t.Errorf("dead letter lost the original headers: %v", dlq[0].Headers)
	}
	if n := app.alone.Load(); n != 3 {
		t.Errorf("the poison event was attempted %d times alone, want 3", n)
	}
	if v, err := other.ProjectedVersion(ctx, tracking.ProjectionEntities, "acme", "p"); err != nil || v != 6 {
		t.Errorf("entities projected version %d (%v), want 6: later messages applied", v, err)
	}
	page, err := other.Timeline(ctx, tracking.TimelineQuery{Tenant: "acme", EntityID: "p", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, e := range page.Entries {
		versions = append(versions, e.Version)
	}
	slices.Sort(versions)
	if want := []int64{1, 2, 3, 5, 6}; !reflect.DeepEqual(versions, want) {
		t.Errorf("timeline versions %v, want %v", versions, want)
	}
	lagClient := newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...)
	if lag, err := kafka.NewProjectionConsumer(lagClient, other, kafka.ConsumerOptions{}).Lag(ctx); err != nil || lag != 0 {
		t.Errorf("lag %d (%v) after handling everything, want 0", lag, err)
	}
	mu.Lock()
	defer mu.Unlock()
	dead := 0
	for _, d := range handled {
		if d.DeadLettered {
			dead++
		}
	}
	if dead != 2 {
		t.Errorf("%d deliveries marked dead-lettered, want 2", dead)
	}
}

// crashingApplier "kills" the consumer (cancels its context) after every
// n-th successful apply, so that it stops between projections of a batch or
// between a batch and its commit.
type crashingApplier struct {
	kafka.Applier
	n      int
	calls  atomic.Int32
	cancel context.CancelFunc
}

func (c *crashingApplier) ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error {
	err := c.Applier.ApplyEvents(ctx, name, events)
	if err == nil && int(c.calls.Add(1))%c.n == 0 {
		c.cancel()
	}
	return err
}

// Consumers killed at arbitrary points and restarted, with duplicates on the
// topic, never apply an event twice: the read models equal a rebuild.
func TestConsumerRestartsNeverDoubleApply(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := setup(t, 3)
	store, rm := openSQLite(t)
	_, other := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	recordJourneys(t, svc, "acme", 3, 10)
	recordJourneys(t, svc, "globex", 2, 8)

	relay := kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, relayOptions(cfg))
	stopRelay := runInBackground(t, ctx, relay.Run)
	waitFor(t, ctx, "the relay to catch up", func() bool {
		b, err := relay.Backlog(ctx)
		return err == nil && b.Events == 0
	})
	stopRelay()
	// Republish part of the log, as a relay that crashed before its
	// checkpoint would.
	recs, _ := domainRecords(t, ctx, store, cfg.Topics.DomainEvents)
	produce(t, ctx, newClient(t, cfg), recs[:12]...)

	_, fresh := openSQLite(t)
	want := rebuild(t, ctx, store, fresh)
	restarts := 0
	for round := 0; ; round++ {
		if round > 60 {
			t.Fatal("the consumers did not catch up in 60 rounds")
		}
		rctx, rcancel := context.WithCancel(ctx)
		cl := newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...)
		// A batch is one ApplyEvents per projection: a crash within the
		// first batch (n <= projections) makes no progress, a later one does.
		app := &crashingApplier{Applier: other, n: 2 + round%(len(tracking.Projections())+2), cancel: rcancel}
		consumer := kafka.NewProjectionConsumer(cl, app, kafka.ConsumerOptions{MaxPollRecords: 5})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := consumer.Run(rctx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
		complete := false
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-ctx.Done():
				rcancel()
				<-done
				t.Fatal("timed out")
			case <-time.After(50 * time.Millisecond):
				if d, err := other.Dump(ctx); err == nil && reflect.DeepEqual(d, want) {
					complete = true
					rcancel()
					<-done
					break wait
				}
			}
		}
		rcancel()
		cl.Close()
		if complete {
			break
		}
		restarts++
	}
	if restarts < 3 {
		t.Errorf("only %d restarts: the test did not exercise redelivery", restarts)
	}
	// Nothing more arrives after a final restart.
	consumer := kafka.NewProjectionConsumer(newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...), other, kafka.ConsumerOptions{})
	stop := runInBackground(t, ctx, consumer.Run)
	waitDumpEqual(t, ctx, other, want)
	stop()
}

// flakyRecorder wraps the tracking service: it fails entities' first
// records as unavailable, and "kills" the consumer after one entity's
// message is recorded, before its offset is committed.
type flakyRecorder struct {
	kafka.Recorder
	mu          sync.Mutex
	unavailable map[string]int // entity → failures left
	crashAfter  string
	cancel      context.CancelFunc
	calls       map[string]int
	results     map[string][]eventstore.AppendResult
}

// RecordBatch goes through Record, item by item, so that every item meets
// the failures.
func (f *flakyRecorder) RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome {
	out := make([]eventstore.Outcome, len(cmds))
	for i, c := range cmds {
		out[i].Result, out[i].Err = f.Record(ctx, c)
	}
	return out
}

func (f *flakyRecorder) Record(ctx context.Context, cmd tracking.RecordCommand) (eventstore.AppendResult, error) {
	f.mu.Lock()
	f.calls[cmd.EntityID]++
	if f.unavailable[cmd.EntityID] > 0 {
		f.unavailable[cmd.EntityID]--
		f.mu.Unlock()
		return eventstore.AppendResult{}, fmt.Errorf("store down: %w", eventstore.ErrUnavailable)
	}
	f.mu.Unlock()
	res, err := f.Recorder.Record(ctx, cmd)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.results[cmd.EntityID] = append(f.results[cmd.EntityID], res)
		if cmd.EntityID == f.crashAfter && f.cancel != nil {
			f.cancel()
			f.cancel = nil
		}
	}
	return res, err
}

// Valid ingest messages are recorded (a redelivered one is a replay, even
// without event ids), invalid ones go to the ingest dead-letter topic with
// the headers, and an unavailable store is waited for. (The single topic
// trusts its producers' tenant header: TestIngestTenantTopics has the
// tenancy.)
func TestIngest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 1)
	topic := cfg.Topics.Ingest
	store, _ := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	record(t, svc, "default", "existing", registered(0))

	withIDs := uuid.New()
	msg := func(key, tenant, body string) *kgo.Record {
		r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(body)}
		if tenant != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "tenant", Value: []byte(tenant)})
		}
		return r
	}
	ts := func(m int) string { return at(m).Format(time.RFC3339) }
	messages := []*kgo.Record{
		// 0: valid, with an event id, tenant from the header.
		msg("m0", "acme", `{"entityId":"m0","entityType":"package","expectedVersion":"none","events":[{"eventId":"`+withIDs.String()+
			`","type":"EntityRegistered","occurredAt":"`+ts(0)+`","data":{"reference":"R-1"},"metadata":{"correlationId":"c-1"}}]}`),
		// 1: valid, no event ids, default tenant.
		msg("m1", "", `{"entityId":"m1","entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"`+ts(0)+
			`","data":{}},{"type":"MilestoneReached","occurredAt":"`+ts(5)+`","data":{"milestone":"picked_up"}}]}`),
		// 2: not JSON.
		msg("m2", "", `{"entityId":`),
		// 3: validation error (unknown event type).
		msg("m3", "", `{"entityId":"m3","entityType":"shipment","events":[{"type":"Teleported","occurredAt":"`+ts(0)+`","data":{}}]}`),
		// 4: rule violation (resolving an exception that is not open).
		msg("m4", "", `{"entityId":"existing","events":[{"type":"ExceptionResolved","occurredAt":"`+ts(1)+`","data":{"exceptionId":"nope"}}]}`),
		// 5: valid, but the store is unavailable twice first.
		msg("m5", "", `{"entityId":"m5","entityType":"vehicle","events":[{"type":"EntityRegistered","occurredAt":"`+ts(0)+`","data":{}}]}`),
		// 6: version conflict.
		msg("m6", "", `{"entityId":"existing","expectedVersion":"none","events":[{"type":"LocationReported","occurredAt":"`+ts(2)+`","data":{"lat":1,"lon":2}}]}`),
	}
	traceID := "0af7651916cd43dd8448eb211c80319c"
	messages[1].Headers = append(messages[1].Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-" + traceID + "-b7ad6b7169203331-01")})
	produce(t, ctx, newClient(t, cfg), messages...)

	rctx, crash := context.WithCancel(ctx)
	rec := &flakyRecorder{Recorder: svc, unavailable: map[string]int{"m5": 2}, crashAfter: "m1", cancel: crash,
		calls: map[string]int{}, results: map[string][]eventstore.AppendResult{}}
	// One topic for every tenant, trusting the producers' tenant header.
	opts := kafka.ConsumerOptions{MaxAttempts: 3, Backoff: 10 * time.Millisecond, TrustTenantHeader: true}
	first := newClient(t, cfg, kafka.IngestConsumerOpts(cfg)...)
	if err := kafka.NewIngestConsumer(first, rec, opts).Run(rctx); err != nil {
		t.Fatal(err)
	}
	first.Close()

	var mu sync.Mutex
	var handled []kafka.Delivery
	opts.OnHandled = func(ds []kafka.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, ds...)
	}
	runInBackground(t, ctx, kafka.NewIngestConsumer(newClient(t, cfg, kafka.IngestConsumerOpts(cfg)...), rec, opts).Run)
	waitFor(t, ctx, "the last message to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) > 0 && handled[len(handled)-1].Offset == 6
	})

	rec.mu.Lock()
	m1 := rec.results["m1"]
	calls5 := rec.calls["m5"]
	rec.mu.Unlock()
	if len(m1) != 2 || m1[0].Replayed || !m1[1].Replayed || m1[1].Version != 2 {
		t.Errorf("m1 results %+v, want a first recording then a replay at version 2", m1)
	}
	if calls5 != 3 {
		t.Errorf("m5 attempted %d times, want 3 (twice unavailable)", calls5)
	}
	events, err := store.ReadStream(ctx, "default", "m1", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].ID != kafka.IngestEventID(topic, 0, 1, 0) || events[1].ID != kafka.IngestEventID(topic, 0, 1, 1) {
		t.Errorf("m1 events %+v: want the deterministic ids", events)
	}
	if events[0].Metadata.TraceID != traceID || events[0].Metadata.Source != "kafka:"+topic {
		t.Errorf("m1 metadata %+v: want the traceparent's trace id and the kafka source", events[0].Metadata)
	}
	acme, err := store.ReadStream(ctx, "acme", "m0", 1, 10)
	if err != nil || len(acme) != 1 || acme[0].ID != withIDs || acme[0].Metadata.CorrelationID != "c-1" {
		t.Errorf("m0 in tenant acme: %+v, %v", acme, err)
	}
	if _, err := store.StreamInfo(ctx, "default", "m5"); err != nil {
		t.Errorf("m5 not recorded: %v", err)
	}
	if info, _ := store.StreamInfo(ctx, "default", "existing"); info.Version != 1 {
		t.Errorf("existing at version %d, want 1", info.Version)
	}

	dlq := consumeAll(t, ctx, cfg, kafka.DLQTopic(topic), 4)
	if len(dlq) != 4 {
		t.Fatalf("%d dead letters, want 4", len(dlq))
	}
	for i, offset := range []int64{2, 3, 4, 6} {
		checkDLQ(t, dlq[i], topic, offset, 1)
		if string(dlq[i].Value) != string(messages[offset].Value) {
			t.Errorf("dead letter %d: value changed", i)
		}
	}
}

// A new group with AutoOffsetReset Latest skips what the topic held before
// it joined.
func TestConsumerAutoOffsetResetLatest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 1)
	cfg.AutoOffsetReset = "Latest"
	store, _ := openSQLite(t)
	_, other := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	record(t, svc, "acme", "old", journey(3)...)
	record(t, svc, "acme", "new", journey(30)...)
	recs, _ := domainRecords(t, ctx, store, cfg.Topics.DomainEvents)
	producer := newClient(t, cfg)
	produce(t, ctx, producer, recs[:3]...)

	handled := make(chan kafka.Delivery, len(recs))
	consumer := kafka.NewProjectionConsumer(newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...), other, kafka.ConsumerOptions{
		OnHandled: func(ds []kafka.Delivery) {
			for _, d := range ds {
				handled <- d
			}
		},
	})
	runInBackground(t, ctx, consumer.Run)
	// The group starts at the end once it has joined, which nobody
	// announces: produce one record at a time until one arrives.
	var first kafka.Delivery
	for i := 3; first.Event.StreamID == ""; i++ {
		if i == len(recs) {
			t.Fatal("no record consumed")
		}
		produce(t, ctx, producer, recs[i])
		select {
		case first = <-handled:
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if first.Event.StreamID != "new" || first.Offset < 3 {
		t.Errorf("first consumed %s at offset %d: the records before the group joined must be skipped", first.Event.StreamID, first.Offset)
	}
}

// countingRecorder counts the calls a consumer makes of each kind.
type countingRecorder struct {
	kafka.Recorder
	singles, batches, batched atomic.Int64
}

func (c *countingRecorder) Record(ctx context.Context, cmd tracking.RecordCommand) (eventstore.AppendResult, error) {
	c.singles.Add(1)
	return c.Recorder.Record(ctx, cmd)
}

func (c *countingRecorder) RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome {
	c.batches.Add(1)
	c.batched.Add(int64(len(cmds)))
	return c.Recorder.RecordBatch(ctx, cmds)
}

// A poll of valid ingest messages is recorded as one batch command per
// partition, several messages of one entity included, in offset order.
func TestIngestRecordsAPollAsABatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 1)
	store, _ := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{AggregateCacheSize: 100})
	var messages []*kgo.Record
	for i := range 40 {
		body := fmt.Sprintf(`{"entityId":"E-%d","entityType":"package","events":[{"type":"LocationReported","occurredAt":"%s","data":{"lat":%d,"lon":1}}]}`,
			i%10, at(i).Format(time.RFC3339), i%90)
		messages = append(messages, &kgo.Record{Topic: cfg.Topics.Ingest, Value: []byte(body)})
	}
	produce(t, ctx, newClient(t, cfg), messages...)
	rec := &countingRecorder{Recorder: svc}
	var handled atomic.Int64
	opts := kafka.ConsumerOptions{OnHandled: func(ds []kafka.Delivery) { handled.Add(int64(len(ds))) }}
	runInBackground(t, ctx, kafka.NewIngestConsumer(newClient(t, cfg, kafka.IngestConsumerOpts(cfg)...), rec, opts).Run)
	waitFor(t, ctx, "every message to be handled", func() bool { return handled.Load() == 40 })
	if rec.singles.Load() != 0 || rec.batched.Load() != 40 {
		t.Errorf("%d single records, %d batched in %d batches: want every message in batches", rec.singles.Load(), rec.batched.Load(), rec.batches.Load())
	}
	for e := range 10 {
		evs, err := store.ReadStream(ctx, "default", fmt.Sprintf("E-%d", e), 1, 10)
		if err != nil || len(evs) != 4 {
			t.Fatalf("E-%d: %d events, %v; want 4", e, len(evs), err)
		}
		for j, ev := range evs {
			if want := fmt.Sprintf(`"lat":%d`, e+10*j); !strings.Contains(string(ev.Data), want) {
				t.Errorf("E-%d version %d: %s, want %s (offset order)", e, ev.Version, ev.Data, want)
			}
		}
	}
}
