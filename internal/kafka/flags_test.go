package kafka_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// While Enabled says no (the KafkaIngest flag off), the ingest consumer
// records and commits nothing; switched on, it records what waited on the
// topic, in order, including what it had fetched just before a pause.
func TestIngestConsumerEnabled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 1)
	store, _ := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	producer := newClient(t, cfg)
	send := func(entity string) {
		produce(t, ctx, producer, &kgo.Record{Topic: cfg.Topics.Ingest, Value: []byte(`{"entityId":"` + entity +
			`","entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-01-01T00:00:00Z","data":{}}]}`)})
	}
	recorded := func(entity string) bool {
		_, err := store.StreamInfo(ctx, "default", entity)
		return err == nil
	}
	committed := func() int64 {
		offs, err := kadm.NewClient(producer).FetchOffsets(ctx, cfg.IngestGroupID)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := offs.Lookup(cfg.Topics.Ingest, 0); ok && o.Err == nil {
			return o.At
		}
		return -1
	}

	var on atomic.Bool
	var mu sync.Mutex
	var handled []int64
	var log syncBuffer
	pauses := func() int { return strings.Count(log.String(), "kafka consumer: paused") }
	opts := kafka.ConsumerOptions{Enabled: on.Load, Logger: slog.New(slog.NewTextHandler(&log, nil)), OnHandled: func(ds []kafka.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range ds {
			handled = append(handled, d.Offset)
		}
	}}
	runInBackground(t, ctx, kafka.NewIngestConsumer(newClient(t, cfg, kafka.IngestConsumerOpts(cfg)...), svc, opts).Run)
	waitFor(t, ctx, "the consumer to pause", func() bool { return pauses() == 1 })
	send("e0")
	// Absence cannot be waited for: give a consumer that wrongly ran time
	// to record it.
	time.Sleep(time.Second)
	if recorded("e0") || committed() >= 0 {
		t.Fatalf("switched off, the consumer recorded e0 (%t) or committed (offset %d)", recorded("e0"), committed())
	}

	on.Store(true)
	waitFor(t, ctx, "e0 to be recorded", func() bool { return recorded("e0") })
	waitFor(t, ctx, "offset 1 to be committed", func() bool { return committed() == 1 })

	on.Store(false)
	waitFor(t, ctx, "the consumer to pause again", func() bool { return pauses() == 2 })
	send("e1")
	time.Sleep(time.Second)
	if recorded("e1") || committed() != 1 {
		t.Fatalf("switched off again, the consumer recorded e1 (%t) or committed (offset %d)", recorded("e1"), committed())
	}
	on.Store(true)
	waitFor(t, ctx, "e1 to be recorded", func() bool { return recorded("e1") })
	waitFor(t, ctx, "offset 2 to be committed", func() bool { return committed() == 2 })
	// OnHandled runs after the commit: wait for its second call.
	waitFor(t, ctx, "the second delivery to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 2 || handled[0] != 0 || handled[1] != 1 {
		t.Errorf("handled offsets %v, want [0 1]", handled)
	}
}

// While IntegrationEvents says no, the relay publishes domain events only;
// switched on, the next batches carry integration events again, derived
// from the entity's whole stream.
func TestRelayIntegrationEventsSwitch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 1)
	store, rm := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	var on atomic.Bool
	opts := relayOptions(cfg)
	opts.IntegrationEvents = on.Load
	relay := kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, opts)
	runInBackground(t, ctx, relay.Run)
	caughtUp := func() bool {
		b, err := relay.Backlog(ctx)
		return err == nil && b.Events == 0
	}

	record(t, svc, "acme", "a", registered(0))
	waitFor(t, ctx, "the relay to publish the registration", caughtUp)
	on.Store(true)
	pick := milestone(10, tracking.MilestonePickedUp)
	record(t, svc, "acme", "a", pick)
	waitFor(t, ctx, "the relay to publish the milestone", caughtUp)

	if domain := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 2); len(domain) != 2 {
		t.Errorf("%d domain events, want 2", len(domain))
	}
	integration := consumeAll(t, ctx, cfg, cfg.Topics.IntegrationEvents, 1)
	if len(integration) != 1 {
		t.Fatalf("%d integration events, want 1 (the registration's was switched off)", len(integration))
	}
	var ce struct {
		ID   string         `json:"id"`
		Data map[string]any `json:"data"`
	}
	mustUnmarshal(t, integration[0].Value, &ce)
	if ce.ID != pick.ID.String()+":EntityStatusChanged" || ce.Data["previousStatus"] != "registered" {
		t.Errorf("integration event %s %v, want the pick-up's status change from registered", ce.ID, ce.Data)
	}
}

// syncBuffer is a log destination a consumer and its test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
