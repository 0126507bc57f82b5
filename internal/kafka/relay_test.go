package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Events appended while the broker is unreachable are all published once it
// is back, in stream order per entity, as valid CloudEvents: first with a
// relay started before any broker exists, then (kfake only) with a broker
// that stops and restarts on the same port with its data.
func TestRelayBrokerDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port := freePort(t)
	down := testConfig(t, []string{"127.0.0.1:" + strconv.Itoa(port)}, 3)
	store, rm := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})

	relayClient := newClient(t, down)
	relay := kafka.NewRelay(relayClient, store, rm, projection.LocalLeader{}, relayOptions(down))
	stopRelay := runInBackground(t, ctx, relay.Run)

	recordJourneys(t, svc, "acme", 3, 8)
	waitFor(t, ctx, "the relay to fail against the missing broker", func() bool { return relay.Status().LastError != "" })
	if cp, _ := rm.Checkpoint(ctx, kafka.RelayCheckpoint); cp.Cursor != (eventstore.Cursor{}) {
		t.Fatalf("checkpoint moved to %v while the broker was down", cp.Cursor)
	}

	cfg := down
	var cluster *kfake.Cluster
	dataDir := t.TempDir()
	if addr := realBroker(); addr != "" {
		// A real broker cannot be stopped here: a fresh relay takes over
		// the unpublished log, as a restarted process would.
		stopRelay()
		cfg.Brokers = []string{addr}
		ensureTopics(t, cfg)
		relay = kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, relayOptions(cfg))
		stopRelay = runInBackground(t, ctx, relay.Run)
	} else {
		var err error
		cluster, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dataDir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cluster.Close() })
		ensureTopics(t, cfg)
	}
	recs := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 24)
	// No broker ever took a record before this one: nothing can be there twice.
	if dups := checkDomainTopic(t, ctx, store, recs); dups != 0 {
		t.Errorf("%d events published twice to a broker that was never up before", dups)
	}
	waitFor(t, ctx, "the relay to catch up", func() bool {
		b, err := relay.Backlog(ctx)
		return err == nil && b.Events == 0
	})

	if cluster == nil {
		return
	}
	// The broker goes away again, with the relay caught up and running.
	cluster.Close()
	stopped := time.Now()
	record(t, svc, "acme", "e0", location(500), milestone(510, tracking.MilestoneDelivered))
	record(t, svc, "acme", "late", registered(0), milestone(5, tracking.MilestonePickedUp))
	record(t, svc, "other", "e0", registered(0))
	waitFor(t, ctx, "the relay to fail against the stopped broker", func() bool {
		return relay.Status().LastErrorAt.After(stopped)
	})
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Close() })
	recs = consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 29)
	// A batch the stopped broker wrote but never acknowledged is sent again:
	// at most one batch of duplicates.
	if dups := checkDomainTopic(t, ctx, store, recs); dups > relayOptions(cfg).BatchSize {
		t.Errorf("%d events published twice, want at most one batch (%d)", dups, relayOptions(cfg).BatchSize)
	}
	waitFor(t, ctx, "the relay to catch up again", func() bool {
		b, err := relay.Backlog(ctx)
		return err == nil && b.Events == 0 && relay.Status().LastError == ""
	})
	stopRelay()
}

// crashingCheckpoints lets MoveCheckpoint call number `at` "crash" the
// relay: it cancels the relay's context instead of moving the checkpoint,
// after the batch was produced and acknowledged.
type crashingCheckpoints struct {
	kafka.Checkpoints
	at     int
	calls  atomic.Int32
	cancel context.CancelFunc
}

func (c *crashingCheckpoints) MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error {
	if int(c.calls.Add(1)) == c.at {
		c.cancel()
		return context.Canceled
	}
	return c.Checkpoints.MoveCheckpoint(ctx, name, from, to)
}

// engine is an event store and two sets of read models on it: the store's
// own (for the relay's checkpoint and rebuilds) and another database's (fed
// from Kafka).
type engine struct {
	store      eventstore.Store
	own, other readModels
}

func sqliteEngine(t *testing.T) engine {
	store, rm := openSQLite(t)
	_, other := openSQLite(t)
	return engine{store, rm, other}
}

func postgresEngine(t *testing.T) engine {
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rm, err := postgres.OpenReadModels(ctx, "", store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	other, err := postgres.OpenReadModels(ctx, pgtest.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return engine{store, rm, other}
}

var _ readModels = (*readmodel.Store)(nil)

// onEachEngine runs f in parallel subtests on SQLite and on PostgreSQL,
// with a context of 90 s.
func onEachEngine(t *testing.T, f func(t *testing.T, ctx context.Context, eng engine)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		open func(t *testing.T) engine
	}{{"sqlite", sqliteEngine}, {"postgres", postgresEngine}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			f(t, ctx, tc.open(t))
		})
	}
}

// A relay killed after producing a batch and before checkpointing it
// republishes at most that batch on restart, and read models fed from the
// topic still equal a rebuild from the store.
func TestRelayCrashBeforeCheckpoint(t *testing.T) {
	t.Parallel()
	onEachEngine(t, func(t *testing.T, ctx context.Context, eng engine) {
		cfg := setup(t, 3)
		svc := tracking.NewService(eng.store, tracking.ServiceOptions{})
		recordJourneys(t, svc, "acme", 4, 9)
		const total = 36

		opts := relayOptions(cfg)
		rctx, crash := context.WithCancel(ctx)
		cps := &crashingCheckpoints{Checkpoints: eng.own, at: 3, cancel: crash}
		first := newClient(t, cfg)
		if err := kafka.NewRelay(first, eng.store, cps, projection.LocalLeader{}, opts).Run(rctx); err != nil {
			t.Fatal(err)
		}
		first.Close()
		if got := cps.calls.Load(); got != 3 {
			t.Fatalf("MoveCheckpoint called %d times before the crash, want 3", got)
		}

		relay := kafka.NewRelay(newClient(t, cfg), eng.store, eng.own, projection.LocalLeader{}, opts)
		runInBackground(t, ctx, relay.Run)
		waitFor(t, ctx, "the restarted relay to catch up", func() bool {
			b, err := relay.Backlog(ctx)
			return err == nil && b.Events == 0
		})
		recs := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, total)
		dups := checkDomainTopic(t, ctx, eng.store, recs)
		if dups < 1 || dups > opts.BatchSize {
			t.Errorf("%d events published twice, want 1..%d (the unacknowledged batch)", dups, opts.BatchSize)
		}

		want := rebuild(t, ctx, eng.store, eng.own)
		consumer := kafka.NewProjectionConsumer(newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...), eng.other,
			kafka.ConsumerOptions{MaxPollRecords: 10})
		runInBackground(t, ctx, consumer.Run)
		waitDumpEqual(t, ctx, eng.other, want)
	})
}

// Status changes, exceptions raised and resolved and ETA changes produce
// integration events with deterministic ids; late events that change none
// of them produce none. The state is folded from the cache, or rebuilt from
// the store when the cache misses (a new relay; a cache of one entity). An
// EPCIS capture stream is no entity and causes none.
func TestRelayIntegrationEvents(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 3)
	store, rm := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})

	eta1, eta2 := at(2000), at(2500)
	reg := registered(0)
	pick := milestone(10, tracking.MilestonePickedUp)
	raise := raised(20, "x1")
	etaSet := eta(30, eta1)
	scan := location(35)
	etaMoved := eta(40, eta2)
	resolve := resolved(50, "x1")
	lateScan := milestone(5, tracking.MilestoneDeparted) // older than picked_up: status unchanged
	lateEta := eta(35, at(9999))                         // older than etaMoved: ignored
	out := milestone(60, tracking.MilestoneOutForDelivery)
	lateDelivered := milestone(55, tracking.MilestoneDelivered) // older than out_for_delivery
	delivered := milestone(70, tracking.MilestoneDelivered)

	opts := relayOptions(cfg)
	opts.CacheSize = 1 // the other entity evicts "a": rebuilds from the store
	relay := kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, opts)
	stop := runInBackground(t, ctx, relay.Run)
	if _, err := store.Append(ctx, eventstore.AppendRequest{Tenant: "acme", StreamID: epcis.StreamID("c1"),
		EntityType: epcis.StreamType, Expected: eventstore.NoStream, Events: []eventstore.Event{{ID: uuid.New(),
			Type: epcis.ObjectEvent, SchemaVersion: 1, Data: json.RawMessage(`{"type":"ObjectEvent"}`), OccurredAt: at(0)}}}); err != nil {
		t.Fatal(err)
	}
	record(t, svc, "acme", "a", reg, pick)
	record(t, svc, "acme", "b", registered(0))
	record(t, svc, "acme", "a", raise, etaSet, scan)
	record(t, svc, "acme", "b", milestone(5, tracking.MilestoneCancelled))
	record(t, svc, "acme", "a", etaMoved, resolve, lateScan)
	waitFor(t, ctx, "the relay to catch up", func() bool {
		b, err := relay.Backlog(ctx)
		return err == nil && b.Events == 0
	})
	stop()
	// A new relay starts with an empty cache.
	record(t, svc, "acme", "a", lateEta, out, lateDelivered, delivered)
	relay = kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, relayOptions(cfg))
	runInBackground(t, ctx, relay.Run)

	type want struct {
		id, typ string
		check   func(d map[string]any) error
	}
	field := func(name, value string) func(map[string]any) error {
		return func(d map[string]any) error {
			if got, _ := d[name].(string); got != value {
				return fmt.Errorf("%s = %v, want %q", name, d[name], value)
			}
			return nil
		}
	}
	absent := func(name string) func(map[string]any) error {
		return func(d map[string]any) error {
			if v, ok := d[name]; ok {
				return fmt.Errorf("%s = %v, want it absent", name, v)
			}
			return nil
		}
	}
	all := func(fs ...func(map[string]any) error) func(map[string]any) error {
		return func(d map[string]any) error {
			var errs []error
			for _, f := range fs {
				errs = append(errs, f(d))
			}
			return errors.Join(errs...)
		}
	}
	exception := func(id string) func(map[string]any) error {
		return func(d map[string]any) error {
			x, _ := d["exception"].(map[string]any)
			if x == nil || x["exceptionId"] != id {
				return fmt.Errorf("exception = %v, want id %s", d["exception"], id)
			}
			return nil
		}
	}
	wants := []want{
		{reg.ID.String() + ":EntityStatusChanged", "EntityStatusChanged", all(field("status", "registered"), absent("previousStatus"))},
		{pick.ID.String() + ":EntityStatusChanged", "EntityStatusChanged", all(field("previousStatus", "registered"), field("status", "in_transit"))},
		{raise.ID.String() + ":ExceptionRaised", "ExceptionRaised", exception("x1")},
		{etaSet.ID.String() + ":EtaChanged", "EtaChanged", all(absent("previousEta"), field("eta", eta1.Format(time.RFC3339)))},
		{etaMoved.ID.String() + ":EtaChanged", "EtaChanged", all(field("previousEta", eta1.Format(time.RFC3339)), field("eta", eta2.Format(time.RFC3339)))},
		{resolve.ID.String() + ":ExceptionResolved", "ExceptionResolved", all(exception("x1"), func(d map[string]any) error {
			if r := d["exception"].(map[string]any)["resolution"]; r != "rerouted" {
				return fmt.Errorf("resolution = %v", r)
			}
			return nil
		})},
		{out.ID.String() + ":EntityStatusChanged", "EntityStatusChanged", all(field("previousStatus", "in_transit"), field("status", "out_for_delivery"))},
		{delivered.ID.String() + ":EntityStatusChanged", "EntityStatusChanged", all(field("previousStatus", "out_for_delivery"), field("status", "delivered"))},
	}
	const others = 2 // b: registered, then cancelled
	recs := consumeAll(t, ctx, cfg, cfg.Topics.IntegrationEvents, len(wants)+others)
	var got []map[string]any
	for _, r := range recs {
		if err := kafka.ValidateCloudEvent(r.Value); err != nil {
			t.Fatalf("%v\n%s", err, r.Value)
		}
		if k := string(r.Key); k != "acme/a" && k != "acme/b" {
			t.Errorf("integration event of %s: %s", k, r.Value)
		}
		if string(r.Key) != "acme/a" {
			continue
		}
		var ce map[string]any
		mustUnmarshal(t, r.Value, &ce)
		got = append(got, ce)
	}
	if len(got) != len(wants) {
		for _, g := range got {
			t.Logf("got %v %v", g["id"], g["data"])
		}
		t.Fatalf("%d integration events for a, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if g["id"] != w.id || g["type"] != "tracktrace.integration."+w.typ+".v1" {
			t.Errorf("event %d: id %v type %v, want %s %s", i, g["id"], g["type"], w.id, w.typ)
			continue
		}
		data, _ := g["data"].(map[string]any)
		if err := w.check(data); err != nil {
			t.Errorf("event %d (%s): %v", i, w.typ, err)
		}
		if g["subject"] != "a" || g["tenantid"] != "acme" || g["entitytype"] != "shipment" {
			t.Errorf("event %d: subject %v tenantid %v entitytype %v", i, g["subject"], g["tenantid"], g["entitytype"])
		}
	}
	for _, late := range []tracking.NewEvent{scan, lateScan, lateEta, lateDelivered} {
		for _, g := range got {
			if g["causationid"] == late.ID.String() {
				t.Errorf("late or state-neutral event %s caused %v", late.Type, g["id"])
			}
		}
	}
}

// A W3C traceparent header travels with the event from the relay to the
// projection consumer; an event whose trace id is not a W3C trace id has none.
func TestTraceContextPropagates(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 2)
	store, rm := openSQLite(t)
	_, other := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traced := registered(0)
	traced.Metadata.TraceID = traceID
	untraced := milestone(5, tracking.MilestonePickedUp)
	untraced.Metadata.TraceID = "not-a-w3c-trace-id"
	record(t, svc, "acme", "t1", traced, untraced)

	relay := kafka.NewRelay(newClient(t, cfg), store, rm, projection.LocalLeader{}, relayOptions(cfg))
	runInBackground(t, ctx, relay.Run)

	var mu sync.Mutex
	seen := map[string]string{} // event id → traceparent
	consumer := kafka.NewProjectionConsumer(newClient(t, cfg, kafka.ProjectionConsumerOpts(cfg)...), other, kafka.ConsumerOptions{
		OnHandled: func(ds []kafka.Delivery) {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				seen[d.Event.ID.String()] = d.TraceParent
			}
		},
	})
	runInBackground(t, ctx, consumer.Run)
	waitFor(t, ctx, "the consumer to handle both events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	tp := seen[traced.ID.String()]
	gotTrace, span, ok := kafka.ParseTraceParent(tp)
	if !ok || gotTrace != traceID || len(span) != 16 {
		t.Errorf("traceparent %q, want 00-%s-<span>-01", tp, traceID)
	}
	if tp := seen[untraced.ID.String()]; tp != "" {
		t.Errorf("traceparent %q for an event without a W3C trace id", tp)
	}
	recs := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 2)
	for _, r := range recs {
		var ce map[string]any
		mustUnmarshal(t, r.Value, &ce)
		for _, h := range r.Headers {
			if h.Key == kafka.HeaderContentType && string(h.Value) != kafka.ContentType {
				t.Errorf("content-type %q", h.Value)
			}
		}
	}
}

// Of two relays sharing a store, one leads (the store's leadership lock) and
// every event is published once.
func TestRelaySingleLeader(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := setup(t, 3)
	store, rm := openSQLite(t)
	svc := tracking.NewService(store, tracking.ServiceOptions{})
	relays := make([]*kafka.Relay, 2)
	for i := range relays {
		relays[i] = kafka.NewRelay(newClient(t, cfg), store, rm, rm, relayOptions(cfg))
		runInBackground(t, ctx, relays[i].Run)
	}
	recordJourneys(t, svc, "acme", 3, 6)
	recs := consumeAll(t, ctx, cfg, cfg.Topics.DomainEvents, 18)
	if dups := checkDomainTopic(t, ctx, store, recs); dups != 0 {
		t.Errorf("%d events published twice", dups)
	}
	active, published := 0, int64(0)
	for _, r := range relays {
		st := r.Status()
		if st.Active {
			active++
		}
		published += st.Published
	}
	if active != 1 || published != 18 {
		t.Errorf("%d active relays, %d events published; want 1 and 18", active, published)
	}
}
