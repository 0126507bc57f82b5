package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/tracking"
)

// With a topic per tenant, an ingest message's tenant is its topic's: the
// broker's ACLs let tenant a's producer write a's topic only, and a tenant
// header naming another tenant is dead-lettered, not recorded for it.
func TestIngestTenantTopics(t *testing.T) {
	t.Parallel()
	if realBroker() != "" {
		t.Skip("needs a broker with SASL users and ACLs of the test's own (kfake)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pattern := testConfig(t, nil, 1).Topics.Ingest + "." + kafka.TenantPlaceholder
	topicA, topicB := kafka.IngestTopic(pattern, "a"), kafka.IngestTopic(pattern, "b")
	writeOwn := func(topic string) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral,
			Operation: kmsg.ACLOperationWrite, Allow: true}
	}
	brokers, _ := newBroker(t, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "tracktrace", "service-secret"),
		kfake.User("PLAIN", "producer-a", "a-secret", writeOwn(topicA)),
		kfake.User("PLAIN", "producer-b", "b-secret", writeOwn(topicB)))
	cfg := testConfig(t, brokers, 1)
	cfg.Topics.Ingest = pattern
	as := func(user, pass string) kgo.Opt { return kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()) }
	service := as("tracktrace", "service-secret")
	if _, err := kadm.NewClient(newClient(t, cfg, service)).CreateTopics(ctx, 1, 1, nil, topicA, topicB); err != nil {
		t.Fatal(err)
	}

	producerA := newClient(t, cfg, as("producer-a", "a-secret"))
	producerB := newClient(t, cfg, as("producer-b", "b-secret"))
	body := func(entity string) []byte {
		return []byte(`{"entityId":"` + entity + `","entityType":"package","events":[{"type":"EntityRegistered","occurredAt":"` +
			at(0).Format(time.RFC3339) + `","data":{}}]}`)
	}
	withTenant := func(r *kgo.Record, tenant string) *kgo.Record {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: kafka.HeaderIngestTenant, Value: []byte(tenant)})
		return r
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	err := producerA.ProduceSync(pctx, &kgo.Record{Topic: topicB, Value: body("intruder")}).FirstErr()
	pcancel()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("producer a writing b's topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	produce(t, ctx, producerA,
		&kgo.Record{Topic: topicA, Value: body("a-plain")},
		withTenant(&kgo.Record{Topic: topicA, Value: body("forged")}, "b"),
		withTenant(&kgo.Record{Topic: topicA, Value: body("a-named")}, "a"))
	produce(t, ctx, producerB, &kgo.Record{Topic: topicB, Value: body("b-plain")})

	store, _ := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	var mu sync.Mutex
	handled := map[string]kafka.Delivery{}
	consumer := kafka.NewIngestConsumer(newClient(t, cfg, append(kafka.IngestConsumerOpts(cfg), service)...), svc, kafka.ConsumerOptions{
		TenantTopics: pattern, Backoff: 10 * time.Millisecond,
		OnHandled: func(ds []kafka.Delivery) {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				handled[fmt.Sprintf("%s@%d", d.Topic, d.Offset)] = d
			}
		}})
	runInBackground(t, ctx, consumer.Run)
	waitFor(t, ctx, "the four messages to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 4
	})

	for _, c := range []struct {
		tenant, entity string
		stored         bool
	}{
		{"a", "a-plain", true}, {"a", "a-named", true}, {"b", "b-plain", true},
		{"b", "forged", false}, {"a", "forged", false}, {"b", "intruder", false},
	} {
		_, err := store.StreamInfo(ctx, c.tenant, c.entity)
		if stored := err == nil; stored != c.stored || err != nil && !errors.Is(err, eventstore.ErrNotFound) {
			t.Errorf("tenant %s, entity %s: stored %v (%v), want %v", c.tenant, c.entity, stored, err, c.stored)
		}
	}
	mu.Lock()
	forged := handled[topicA+"@1"]
	mu.Unlock()
	if !forged.DeadLettered || forged.Reason != kafka.ReasonTenantMismatch {
		t.Errorf("the forged message: dead-lettered %v, reason %q; want %q", forged.DeadLettered, forged.Reason, kafka.ReasonTenantMismatch)
	}
	dlq := consumeAs(t, ctx, cfg, service, kafka.DLQTopic(topicA), 1)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters of a's topic, want 1", len(dlq))
	}
	if r, _ := headerOf(dlq[0], kafka.HeaderDLQReason); r != kafka.ReasonTenantMismatch {
		t.Errorf("dead letter reason %q, want %q", r, kafka.ReasonTenantMismatch)
	}
}

// consumeAs reads a topic from the start with the given credentials until
// it holds n records, failing at ctx's end.
func consumeAs(t *testing.T, ctx context.Context, cfg kafka.Config, auth kgo.Opt, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, cfg, auth, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(out) < n {
		if ctx.Err() != nil {
			t.Fatalf("topic %s: got %d records, want %d", topic, len(out), n)
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
		cancel()
	}
	return out
}
