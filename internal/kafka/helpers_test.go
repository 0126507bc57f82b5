package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// realBroker is the bootstrap address of a real broker to test against
// instead of kfake, from TRACKTRACE_TEST_KAFKA.
func realBroker() string { return os.Getenv("TRACKTRACE_TEST_KAFKA") }

// testConfig returns a configuration with topics and groups of the test's
// own, so that tests can share a real broker.
func testConfig(t testing.TB, brokers []string, partitions int32) kafka.Config {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	suffix := name + "-" + uuid.NewString()[:8]
	return kafka.Config{
		Brokers: brokers,
		Topics: kafka.Topics{
			DomainEvents:      "events-" + suffix,
			IntegrationEvents: "integration-" + suffix,
			Ingest:            "ingest-" + suffix,
		},
		GroupID:       "projections-" + suffix,
		IngestGroupID: "ingest-" + suffix,
		Partitions:    partitions,
	}
}

// newBroker returns the brokers of a fresh kfake cluster (closed at
// cleanup), or of the real broker when one is configured; the cluster is nil
// then.
func newBroker(t testing.TB, opts ...kfake.Opt) ([]string, *kfake.Cluster) {
	t.Helper()
	if addr := realBroker(); addr != "" {
		return strings.Split(addr, ","), nil
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs(), c
}

// setup starts a broker and creates the test's topics on it.
func setup(t testing.TB, partitions int32) kafka.Config {
	t.Helper()
	brokers, _ := newBroker(t)
	cfg := testConfig(t, brokers, partitions)
	ensureTopics(t, cfg)
	return cfg
}

func ensureTopics(t testing.TB, cfg kafka.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, cfg)
	if err := kafka.EnsureTopics(ctx, cl, cfg); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
}

// newClient returns a client closed at cleanup (closing twice is harmless).
func newClient(t testing.TB, cfg kafka.Config, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// freePort returns a TCP port nobody listens on (for now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// openSQLite opens an event store and its read models in a temporary file.
func openSQLite(t *testing.T) (*sqlite.Store, *readmodel.Store) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, "file:"+filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rm, err := sqlite.OpenReadModels(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	return s, rm
}

// readModels is what the tests need of either engine's read models.
type readModels interface {
	projection.Target
	kafka.Applier
	kafka.Checkpoints
	Dump(ctx context.Context) (map[string][]string, error)
	ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error)
}

// rebuild applies the whole log of feed to fresh read models (rm must be
// empty) and returns their dump.
func rebuild(t *testing.T, ctx context.Context, feed projection.Feed, rm readModels) map[string][]string {
	t.Helper()
	m := projection.NewManager(feed, rm, projection.LocalLeader{}, tracking.Projections(), projection.Options{BatchSize: 50})
	for _, name := range tracking.Projections() {
		if err := m.CatchUp(ctx, name); err != nil {
			t.Fatalf("catch up %s: %v", name, err)
		}
	}
	d, err := rm.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitDumpEqual polls until got's dump equals want, failing at ctx's end.
func waitDumpEqual(t *testing.T, ctx context.Context, got readModels, want map[string][]string) {
	t.Helper()
	var last map[string][]string
	for {
		d, err := got.Dump(ctx)
		if err == nil && reflect.DeepEqual(d, want) {
			return
		}
		last = d
		select {
		case <-ctx.Done():
			for table := range want {
				if !reflect.DeepEqual(last[table], want[table]) {
					t.Errorf("table %s: got %d rows, rebuild has %d\n got: %s\nwant: %s", table, len(last[table]), len(want[table]),
						strings.Join(last[table], "\n      "), strings.Join(want[table], "\n      "))
				}
			}
			t.Fatalf("read models do not equal the rebuild: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitFor polls cond until it holds, failing at ctx's end.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// consumeAll reads a topic from the start, without a group, until it holds
// at least n records (then a short grace poll for extras), failing at ctx's
// end.
func consumeAll(t *testing.T, ctx context.Context, cfg kafka.Config, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, cfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	var out []*kgo.Record
	grace := false
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		if len(out) >= n {
			if grace || n == 0 {
				return out
			}
			grace = true
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s: got %d records, want at least %d", topic, len(out), n)
		}
	}
}

// relayOptions are quick relay options for tests.
func relayOptions(cfg kafka.Config) kafka.RelayOptions {
	return kafka.RelayOptions{
		DomainTopic:      cfg.Topics.DomainEvents,
		IntegrationTopic: cfg.Topics.IntegrationEvents,
		Interval:         200 * time.Millisecond,
		BatchSize:        7,
		ProduceTimeout:   2 * time.Second,
		MaxBackoff:       300 * time.Millisecond,
	}
}

// runInBackground runs f until the returned stop is called (or cleanup),
// and stop waits for it to return.
func runInBackground(t testing.TB, ctx context.Context, f func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := f(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// Event builders.

var base = time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

func ev(typ string, occurred time.Time, data any) tracking.NewEvent {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return tracking.NewEvent{ID: uuid.New(), Type: typ, OccurredAt: occurred, Data: b}
}

func registered(m int) tracking.NewEvent {
	return ev(tracking.TypeEntityRegistered, at(m), map[string]any{"reference": "ref", "origin": "AMS", "destination": "BER"})
}

func milestone(m int, name string) tracking.NewEvent {
	return ev(tracking.TypeMilestoneReached, at(m), map[string]any{"milestone": name, "siteId": "site-1"})
}

func location(m int) tracking.NewEvent {
	return ev(tracking.TypeLocationReported, at(m), map[string]any{"lat": 52.1 + float64(m)/1000, "lon": 4.3})
}

func opStarted(m int, id string) tracking.NewEvent {
	return ev(tracking.TypeOperationStarted, at(m), map[string]any{"operation": "loading", "operationId": id})
}

func opCompleted(m int, id string) tracking.NewEvent {
	return ev(tracking.TypeOperationCompleted, at(m), map[string]any{"operation": "loading", "operationId": id, "outcome": "succeeded"})
}

func raised(m int, id string) tracking.NewEvent {
	return ev(tracking.TypeExceptionRaised, at(m), map[string]any{"exceptionId": id, "code": "delay", "severity": "high", "description": "late <truck> & co"})
}

func resolved(m int, id string) tracking.NewEvent {
	return ev(tracking.TypeExceptionResolved, at(m), map[string]any{"exceptionId": id, "resolution": "rerouted"})
}

func eta(m int, etaAt time.Time) tracking.NewEvent {
	return ev(tracking.TypeEtaUpdated, at(m), map[string]any{"eta": etaAt, "source": "carrier"})
}

// record records events about one entity, failing the test on error.
func record(t *testing.T, svc *tracking.Service, tenant, entity string, events ...tracking.NewEvent) eventstore.AppendResult {
	t.Helper()
	res, err := svc.Record(context.Background(), tracking.RecordCommand{Tenant: tenant, EntityID: entity,
		EntityType: "shipment", Expected: eventstore.Any, Events: events, Principal: "tester"})
	if err != nil {
		t.Fatalf("record %s/%s: %v", tenant, entity, err)
	}
	return res
}

// journey is a realistic stream of n events (n ≥ 2), with operations,
// exceptions and a late scan.
func journey(n int) []tracking.NewEvent {
	out := []tracking.NewEvent{registered(0)}
	for i := 1; len(out) < n; i++ {
		m := i * 10
		switch i % 7 {
		case 1:
			out = append(out, milestone(m, tracking.MilestonePickedUp))
		case 2:
			out = append(out, opStarted(m, fmt.Sprintf("op-%d", i)))
		case 3:
			out = append(out, opCompleted(m, fmt.Sprintf("op-%d", i-1)))
		case 4:
			out = append(out, raised(m, fmt.Sprintf("x-%d", i)))
		case 5:
			out = append(out, resolved(m, fmt.Sprintf("x-%d", i-1)))
		case 6:
			out = append(out, location(m))
		case 0:
			out = append(out, milestone(m-25, tracking.MilestoneArrived)) // late
		}
	}
	return out
}

// recordJourneys records n-event journeys of entities e0..e<count-1>,
// interleaving the entities' appends (a few events at a time).
func recordJourneys(t *testing.T, svc *tracking.Service, tenant string, count, n int) {
	t.Helper()
	js := make([][]tracking.NewEvent, count)
	for i := range js {
		js[i] = journey(n)
	}
	for off := 0; off < n; off += 3 {
		for i := range js {
			record(t, svc, tenant, fmt.Sprintf("e%d", i), js[i][off:min(off+3, n)]...)
		}
	}
}

// checkDomainTopic checks every record of the domain-events topic: a valid
// CloudEvent keyed tenant/entity that decodes to a stored event; per entity,
// the first deliveries come in stream order and cover the whole stream.
// It returns the number of duplicate deliveries.
func checkDomainTopic(t *testing.T, ctx context.Context, store eventstore.Store, recs []*kgo.Record) int {
	t.Helper()
	type key struct{ tenant, id string }
	seen := map[uuid.UUID]bool{}
	order := map[key][]int64{}
	dups := 0
	for _, r := range recs {
		if err := kafka.ValidateCloudEvent(r.Value); err != nil {
			t.Fatalf("offset %d: %v\n%s", r.Offset, err, r.Value)
		}
		e, err := kafka.DecodeCloudEvent(r.Value)
		if err != nil {
			t.Fatalf("offset %d: %v", r.Offset, err)
		}
		if string(r.Key) != e.Tenant+"/"+e.StreamID {
			t.Errorf("offset %d: key %q, want %q", r.Offset, r.Key, e.Tenant+"/"+e.StreamID)
		}
		var ext map[string]any
		if err := json.Unmarshal(r.Value, &ext); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"tenantid", "entitytype", "streamversion", "position", "recordedat", "principal"} {
			if ext[name] == nil || ext[name] == "" {
				t.Errorf("offset %d: extension %s missing", r.Offset, name)
			}
		}
		if seen[e.ID] {
			dups++
			continue
		}
		seen[e.ID] = true
		order[key{e.Tenant, e.StreamID}] = append(order[key{e.Tenant, e.StreamID}], e.Version)
	}
	for k, versions := range order {
		info, err := store.StreamInfo(ctx, k.tenant, k.id)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range versions {
			if v != int64(i+1) {
				t.Fatalf("entity %s/%s: versions on the topic %v, want 1..%d in order", k.tenant, k.id, versions, info.Version)
			}
		}
		if int64(len(versions)) != info.Version {
			t.Errorf("entity %s/%s: %d versions on the topic, stream has %d", k.tenant, k.id, len(versions), info.Version)
		}
	}
	return dups
}

// partitionsOf returns a topic's partitions, nil while it is unknown.
func partitionsOf(ctx context.Context, cl *kgo.Client, topic string) map[int32]bool {
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return nil
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return nil
	}
	out := map[int32]bool{}
	for p := range td.Partitions {
		out[p] = true
	}
	return out
}
