package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/telemetry"
	"github.com/tlm/tracktrace/internal/tracking"
)

// An event larger than the broker (message.max.bytes) or the producer
// (ProducerBatchMaxBytes) accepts does not block the relay: the events
// after it are published, the big one's identity goes to the dead-letter
// topic with the reason, and a metric and a warning say so.
func TestRelayDeadLettersOversizedEvents(t *testing.T) {
	t.Parallel()
	const limit = 20_000
	for _, tc := range []struct {
		name   string
		broker []kfake.Opt
		client []kgo.Opt
	}{
		{"broker limit", []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "20000"})}, nil},
		{"producer limit", nil, []kgo.Opt{kgo.ProducerBatchMaxBytes(limit)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if realBroker() != "" && tc.broker != nil {
				t.Skip("a real broker's limits are its own")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			brokers, _ := newBroker(t, tc.broker...)
			cfg := testConfig(t, brokers, 2)
			ensureTopics(t, cfg)
			store, rm := openSQLite(t)
			svc := tracking.NewService(store, tracking.ServiceOptions{})

			// Random bytes: the broker measures the compressed batch.
			image := make([]byte, 2*limit)
			rand.Read(image)
			big := ev("x-scan-image", at(5), map[string]any{"image": image})
			record(t, svc, "acme", "a", registered(0), milestone(1, tracking.MilestonePickedUp))
			record(t, svc, "acme", "a", big)
			record(t, svc, "acme", "a", milestone(10, tracking.MilestoneDeparted), location(11))
			record(t, svc, "acme", "b", registered(0), milestone(2, tracking.MilestoneDelivered))

			reg := prometheus.NewRegistry()
			metrics := telemetry.NewMetrics(reg, nil)
			var logs syncBuffer
			opts := relayOptions(cfg)
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			opts.OnDeadLettered = metrics.DeadLettered
			relay := kafka.NewRelay(newClient(t, cfg, tc.client...), store, rm, projection.LocalLeader{}, opts)
			runInBackground(t, ctx, relay.Run)
			waitFor(t, ctx, "the relay to move past the oversized event", func() bool {
				b, err := relay.Backlog(ctx)
				return err == nil && b.Events == 0
			})

			published := map[string]bool{}
			for _, r := range consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 6) {
				e, err := kafka.DecodeCloudEvent(r.Value)
				if err != nil {
					t.Fatalf("domain topic: %v", err)
				}
				published[e.ID.String()] = true
			}
			if len(published) != 6 || published[big.ID.String()] {
				t.Errorf("published %d events (the big one: %v), want the 6 others", len(published), published[big.ID.String()])
			}

			dlq := consumeAll(t, ctx, cfg, kafka.DLQTopic(cfg.Topics.DomainEvents), 1)
			if len(dlq) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dlq))
			}
			dl := dlq[0]
			if string(dl.Key) != "acme/a" {
				t.Errorf("dead letter key %q, want acme/a", dl.Key)
			}
			if len(dl.Value) > 2048 {
				t.Errorf("dead letter of %d bytes: it should carry the event's identity, not its data", len(dl.Value))
			}
			var id struct {
				ID, Subject, TenantID, StreamVersion string
				Data                                 json.RawMessage
			}
			mustUnmarshal(t, dl.Value, &id)
			if id.ID != big.ID.String() || id.Subject != "a" || id.TenantID != "acme" || id.StreamVersion != "3" || id.Data != nil {
				t.Errorf("dead letter %s, want the big event's identity without data", dl.Value)
			}
			if err := kafka.ValidateCloudEvent(dl.Value); err != nil {
				t.Errorf("dead letter is not a CloudEvent: %v", err)
			}
			for h, want := range map[string]string{kafka.HeaderDLQReason: kafka.ReasonMessageTooLarge,
				kafka.HeaderDLQOriginalTopic: cfg.Topics.DomainEvents, kafka.HeaderDLQError: "MESSAGE_TOO_LARGE"} {
				if got, _ := headerOf(dl, h); !strings.Contains(got, want) {
					t.Errorf("dead letter header %s = %q, want %q", h, got, want)
				}
			}
			if n := counterValue(t, reg, "tracktrace_kafka_dead_letters_total",
				map[string]string{"topic": cfg.Topics.DomainEvents, "reason": kafka.ReasonMessageTooLarge}); n != 1 {
				t.Errorf("tracktrace_kafka_dead_letters_total = %v, want 1", n)
			}
			if !strings.Contains(logs.String(), "too large") || !strings.Contains(logs.String(), big.ID.String()) {
				t.Errorf("no warning names the oversized event:\n%s", logs.String())
			}
		})
	}
}

// counterValue returns the value of reg's counter with exactly the given
// labels, 0 when it has none.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
