package kafka_test

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// BenchmarkIngest measures Kafka ingest into PostgreSQL: each iteration
// puts 2,000 messages of 5 events each, for new entities, on a 6-partition
// ingest topic and waits for the ingest consumer to record all of them
// (the producing is timed too: the consumer starts meanwhile). Reports
// events/s.
//
//	go test -run '^$' -bench Ingest -benchtime 5x ./internal/kafka/
func BenchmarkIngest(b *testing.B) {
	ctx := b.Context()
	cfg := setup(b, 6)
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	svc := tracking.NewService(store, tracking.ServiceOptions{AggregateCacheSize: 10_000})
	var handled atomic.Int64
	progress := make(chan struct{}, 1)
	opts := kafka.ConsumerOptions{OnHandled: func(ds []kafka.Delivery) {
		handled.Add(int64(len(ds)))
		select {
		case progress <- struct{}{}:
		default:
		}
	}}
	runInBackground(b, ctx, kafka.NewIngestConsumer(newClient(b, cfg, kafka.IngestConsumerOpts(cfg)...), svc, opts).Run)
	producer := newClient(b, cfg)
	const messages, perMessage = 2000, 5
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	event := `{"type":"LocationReported","occurredAt":"` + at + `","data":{"lat":52.1,"lon":4.3}}`
	events := event
	for range perMessage - 1 {
		events += "," + event
	}
	var sent int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		recs := make([]*kgo.Record, messages)
		for m := range recs {
			body := fmt.Sprintf(`{"entityId":"B%d-%d","entityType":"package","events":[%s]}`, i, m, events)
			recs[m] = &kgo.Record{Topic: cfg.Topics.Ingest, Key: fmt.Appendf(nil, "B%d-%d", i, m), Value: []byte(body)}
		}
		b.StartTimer()
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		sent += messages
		for handled.Load() < sent {
			select {
			case <-progress:
			case <-time.After(time.Minute):
				b.Fatalf("ingest stalled at %d of %d messages", handled.Load(), sent)
			}
		}
	}
	b.ReportMetric(float64(sent*perMessage)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRelay measures the relay from PostgreSQL to the in-process
// broker with its production options: BENCH_EVENTS events (default
// 200,000; 100-event appends to distinct entities, a milestone each) are
// stored once; each iteration publishes the whole log from the start,
// integration events included, until the checkpoint reaches the head.
// Reports events/s.
//
//	go test -run '^$' -bench Relay -benchtime 3x ./internal/kafka/
func BenchmarkRelay(b *testing.B) {
	ctx := b.Context()
	total := 200_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_EVENTS")); err == nil && v > 0 {
		total = v
	}
	cfg := setup(b, 6)
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	rm, err := postgres.OpenReadModels(ctx, "", store.Pool())
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-48 * time.Hour)
	data := []byte(`{"milestone":"arrived","siteId":"AMS-HUB-01","location":{"lat":52.1,"lon":4.3}}`)
	for s := 0; s*100 < total; s++ {
		evs := make([]eventstore.Event, 100)
		for k := range evs {
			evs[k] = eventstore.Event{ID: uuid.New(), Type: tracking.TypeMilestoneReached, Data: data,
				OccurredAt: at.Add(time.Duration(s*100+k) * time.Second)}
		}
		if _, err := store.Append(ctx, eventstore.AppendRequest{Tenant: "bench", StreamID: fmt.Sprintf("R-%d", s),
			EntityType: "shipment", Expected: eventstore.NoStream, Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
	// The log is readable up to the oldest transaction on the server.
	var head eventstore.Cursor
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		bl, err := store.Backlog(ctx, eventstore.Cursor{})
		if err != nil {
			b.Fatal(err)
		}
		if head, err = store.Head(ctx); err != nil {
			b.Fatal(err)
		}
		if bl.Events == int64(total) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events readable after a minute", bl.Events, total)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cp, err := rm.Checkpoint(ctx, kafka.RelayCheckpoint)
		if err != nil {
			b.Fatal(err)
		}
		if cp.Cursor != (eventstore.Cursor{}) {
			if err := rm.MoveCheckpoint(ctx, kafka.RelayCheckpoint, cp.Cursor, eventstore.Cursor{}); err != nil {
				b.Fatal(err)
			}
		}
		relay := kafka.NewRelay(newClient(b, cfg), store, rm, projection.LocalLeader{}, kafka.RelayOptions{
			DomainTopic: cfg.Topics.DomainEvents, IntegrationTopic: cfg.Topics.IntegrationEvents})
		b.StartTimer()
		stop := runInBackground(b, ctx, relay.Run)
		for {
			cp, err := rm.Checkpoint(ctx, kafka.RelayCheckpoint)
			if err != nil {
				b.Fatal(err)
			}
			if !cp.Cursor.Less(head) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
