package kafka_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
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
