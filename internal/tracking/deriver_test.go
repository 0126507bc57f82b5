package tracking_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// deriverStore is a SQLite event store for the deriver's tests, counting
// its stream reads (countingStore.loads).
func deriverStore(t *testing.T) *countingStore {
	t.Helper()
	s, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "e.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &countingStore{Store: s}
}

// spec is an event to append: its type, business time (minutes after a
// fixed hour) and data.
type spec struct {
	typ  string
	at   int
	data string
}

func minute(m int) time.Time {
	return time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
}

// appendEvents appends events to a stream of entity type "shipment", or
// "$epcis" for an EPCIS capture stream ("$epcis:<capture id>").
func appendEvents(t *testing.T, s eventstore.Store, tenant, id string, specs ...spec) {
	t.Helper()
	entityType := tracking.EntityShipment
	if strings.HasPrefix(id, "$epcis:") {
		entityType = "$epcis"
	}
	req := eventstore.AppendRequest{Tenant: tenant, StreamID: id, EntityType: entityType, Expected: eventstore.Any}
	for _, sp := range specs {
		req.Events = append(req.Events, eventstore.Event{ID: uuid.New(), Type: sp.typ, SchemaVersion: 1,
			Data: json.RawMessage(sp.data), OccurredAt: minute(sp.at)})
	}
	if _, err := s.Append(context.Background(), req); err != nil {
		t.Fatalf("append to %s: %v", id, err)
	}
}

// readLog returns the global log after a cursor.
func readLog(t *testing.T, s eventstore.Store, after eventstore.Cursor) []eventstore.Recorded {
	t.Helper()
	events, err := s.ReadAll(context.Background(), after, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// kinds lists, per event, "<stream>/v<version>:<kind>" of its integration
// events.
func kinds(events []eventstore.Recorded, derived [][]tracking.IntegrationEvent) []string {
	var out []string
	for i, ds := range derived {
		for _, d := range ds {
			out = append(out, fmt.Sprintf("%s/v%d:%s", events[i].StreamID, events[i].Version, d.Kind))
		}
	}
	return out
}

var (
	registeredSpec = spec{tracking.TypeEntityRegistered, 0, `{"reference":"R"}`}
	pickedUp       = spec{tracking.TypeMilestoneReached, 10, `{"milestone":"picked_up"}`}
	raisedX1       = spec{tracking.TypeExceptionRaised, 20, `{"exceptionId":"x1","code":"delay","severity":"high"}`}
	etaSet         = spec{tracking.TypeEtaUpdated, 30, `{"eta":"2026-03-04T12:00:00Z"}`}
	lateDeparted   = spec{tracking.TypeMilestoneReached, 5, `{"milestone":"departed"}`}
	resolvedX1     = spec{tracking.TypeExceptionResolved, 40, `{"exceptionId":"x1","resolution":"waited"}`}
	etaMoved       = spec{tracking.TypeEtaUpdated, 45, `{"eta":"2026-03-05T12:00:00Z"}`}
	delivered      = spec{tracking.TypeMilestoneReached, 50, `{"milestone":"delivered"}`}
)

// Two entities' events, interleaved in the log, derive their status
// changes, exceptions raised and resolved and ETA changes, whatever the
// cache holds: with room for both entities no stream is read again; with
// room for one, each switch of entity rebuilds its state from the store.
// An EPCIS capture stream (no entity id) derives nothing.
func TestDeriverDerivesIntegrationEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cacheSize int
		reads     bool
	}{{2, false}, {1, true}} {
		t.Run(fmt.Sprintf("cache of %d", tc.cacheSize), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := deriverStore(t)
			appendEvents(t, store, "acme", "SHP-1", registeredSpec, pickedUp)
			appendEvents(t, store, "acme", "SHP-2", registeredSpec)
			appendEvents(t, store, "acme", "SHP-1", raisedX1, etaSet, lateDeparted)
			appendEvents(t, store, "acme", "$epcis:c1", spec{"ObjectEvent", 1, `{"type":"ObjectEvent"}`})
			appendEvents(t, store, "acme", "SHP-2", pickedUp)
			appendEvents(t, store, "acme", "SHP-1", resolvedX1, etaMoved, delivered)
			events := readLog(t, store, eventstore.Cursor{})
			store.loads.Store(0)

			d := tracking.NewDeriver(store, tc.cacheSize)
			var got []string
			var all [][]tracking.IntegrationEvent
			for batch := range (len(events) + 2) / 3 {
				part := events[batch*3 : min(len(events), batch*3+3)]
				derived, err := d.DeriveBatch(ctx, part)
				if err != nil {
					t.Fatal(err)
				}
				if len(derived) != len(part) {
					t.Fatalf("%d results for %d events", len(derived), len(part))
				}
				got = append(got, kinds(part, derived)...)
				all = append(all, derived...)
				d.Commit()
			}
			want := []string{
				"SHP-1/v1:EntityStatusChanged", "SHP-1/v2:EntityStatusChanged",
				"SHP-2/v1:EntityStatusChanged",
				"SHP-1/v3:ExceptionRaised", "SHP-1/v4:EtaChanged",
				"SHP-2/v2:EntityStatusChanged",
				"SHP-1/v6:ExceptionResolved", "SHP-1/v7:EtaChanged", "SHP-1/v8:EntityStatusChanged",
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("derived\n%v\nwant\n%v", got, want)
			}
			if n := store.loads.Load(); (n > 0) != tc.reads {
				t.Errorf("%d stream reads, want reads: %v", n, tc.reads)
			}

			// The payloads carry the states before and after.
			byID := map[uuid.UUID][]tracking.IntegrationEvent{}
			for i, e := range events {
				byID[e.ID] = all[i]
			}
			eta := func(s string) *time.Time {
				v, _ := time.Parse(time.RFC3339, s)
				return &v
			}
			check := func(e eventstore.Recorded, want tracking.IntegrationEvent) {
				t.Helper()
				ds := byID[e.ID]
				if len(ds) != 1 {
					t.Fatalf("%s v%d derived %d events", e.StreamID, e.Version, len(ds))
				}
				g := ds[0]
				g.OccurredAt = time.Time{}
				if g.Exception != nil {
					x := *g.Exception
					x.RaisedAt, g.Exception = time.Time{}, &x
				}
				if !reflect.DeepEqual(g, want) {
					t.Errorf("%s v%d: got %s, want %s", e.StreamID, e.Version, dumpJSON(g), dumpJSON(want))
				}
			}
			shp1 := func(v int64) eventstore.Recorded {
				for _, e := range events {
					if e.StreamID == "SHP-1" && e.Version == v {
						return e
					}
				}
				t.Fatalf("no SHP-1 v%d", v)
				return eventstore.Recorded{}
			}
			base := tracking.IntegrationEvent{EntityID: "SHP-1", EntityType: "shipment"}
			with := func(v int64, f func(*tracking.IntegrationEvent)) tracking.IntegrationEvent {
				e := base
				e.Version = v
				f(&e)
				return e
			}
			check(shp1(2), with(2, func(e *tracking.IntegrationEvent) {
				e.Kind, e.PreviousStatus, e.Status = tracking.IntegrationEntityStatusChanged, tracking.StatusRegistered, tracking.StatusInTransit
			}))
			check(shp1(3), with(3, func(e *tracking.IntegrationEvent) {
				e.Kind = tracking.IntegrationExceptionRaised
				e.Exception = &tracking.IntegrationException{ExceptionID: "x1", Code: "delay", Severity: "high"}
			}))
			check(shp1(6), with(6, func(e *tracking.IntegrationEvent) {
				e.Kind = tracking.IntegrationExceptionResolved
				e.Exception = &tracking.IntegrationException{ExceptionID: "x1", Code: "delay", Severity: "high", Resolution: "waited"}
			}))
			check(shp1(7), with(7, func(e *tracking.IntegrationEvent) {
				e.Kind, e.PreviousEta, e.Eta = tracking.IntegrationEtaChanged, eta("2026-03-04T12:00:00Z"), eta("2026-03-05T12:00:00Z")
			}))
			check(shp1(8), with(8, func(e *tracking.IntegrationEvent) {
				e.Kind, e.PreviousStatus, e.Status = tracking.IntegrationEntityStatusChanged, tracking.StatusInTransit, tracking.StatusDelivered
			}))
		})
	}
}

// A batch that failed is discarded: its states never enter the cache, so
// handling it again derives the same events from the states before it,
// and the event after it is rebuilt from the store, not from a discarded
// state.
func TestDeriverDiscardDropsStagedStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := deriverStore(t)
	appendEvents(t, store, "acme", "SHP-1", registeredSpec, pickedUp, raisedX1, etaSet)
	events := readLog(t, store, eventstore.Cursor{})
	store.loads.Store(0)

	d := tracking.NewDeriver(store, 10)
	if _, err := d.DeriveBatch(ctx, events[:2]); err != nil {
		t.Fatal(err)
	}
	d.Commit()
	first, err := d.DeriveBatch(ctx, events[2:3])
	if err != nil {
		t.Fatal(err)
	}
	d.Discard()
	again, err := d.DeriveBatch(ctx, events[2:3])
	if err != nil {
		t.Fatal(err)
	}
	if len(first[0]) != 1 || !reflect.DeepEqual(first, again) {
		t.Errorf("the failed batch derived %v, handled again %v", first, again)
	}
	if n := store.loads.Load(); n != 0 {
		t.Errorf("handling the batch again read %d streams; the committed state is kept", n)
	}
	d.Discard()
	d.Commit() // nothing staged: the cache still holds version 2
	next, err := d.DeriveBatch(ctx, events[3:4])
	if err != nil {
		t.Fatal(err)
	}
	if n := store.loads.Load(); n == 0 {
		t.Error("deriving after a discarded batch used its state instead of reading the store")
	}
	if got := kinds(events[3:4], next); !reflect.DeepEqual(got, []string{"SHP-1/v4:EtaChanged"}) {
		t.Errorf("derived %v", got)
	}
}

// An erased entity is forgotten: its next life, read from the store when
// the cache misses, starts from nothing and not from the state its last
// life reached at the same version.
func TestDeriverForgetsErasedEntities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := deriverStore(t)
	appendEvents(t, store, "acme", "SHP-1", registeredSpec, pickedUp, delivered)
	d := tracking.NewDeriver(store, 10)
	if _, err := d.DeriveBatch(ctx, readLog(t, store, eventstore.Cursor{})); err != nil {
		t.Fatal(err)
	}
	d.Commit() // the cache holds the first life at version 3: delivered
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Erase(ctx, "acme", "SHP-1"); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, store, "acme", "SHP-1", registeredSpec)
	appendEvents(t, store, "acme", "SHP-1", raisedX1)
	appendEvents(t, store, "acme", "SHP-1", etaSet)
	appendEvents(t, store, "acme", "SHP-1", spec{tracking.TypeMilestoneReached, 60, `{"milestone":"out_for_delivery"}`})
	log := readLog(t, store, head)
	if len(log) != 5 || !log[0].Erasure() {
		t.Fatalf("log after the first life: %d events, first %+v", len(log), log[0])
	}
	// The marker in one batch, the next life's last event in another (as
	// when its first events were published without integration events).
	derived, err := d.DeriveBatch(ctx, log[:1])
	if err != nil || derived[0] != nil {
		t.Fatalf("erasure marker derived %v, %v", derived, err)
	}
	d.Commit()
	derived, err = d.DeriveBatch(ctx, log[4:])
	if err != nil {
		t.Fatal(err)
	}
	if len(derived[0]) != 1 || derived[0][0].PreviousStatus != tracking.StatusRegistered || derived[0][0].Status != tracking.StatusOutForDelivery {
		t.Errorf("next life's v4 derived %s, want registered -> out_for_delivery", dumpJSON(derived[0]))
	}
}

// An event whose stream before it can no longer be read derives nothing,
// nor do its entity's later events: not after its entity was erased.
func TestDeriverSaysNothingAfterErasure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := deriverStore(t)
	appendEvents(t, store, "acme", "SHP-1", registeredSpec, pickedUp, raisedX1)
	log := readLog(t, store, eventstore.Cursor{})
	if _, err := store.Erase(ctx, "acme", "SHP-1"); err != nil {
		t.Fatal(err)
	}
	derived, err := tracking.NewDeriver(store, 10).DeriveBatch(ctx, log[1:])
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(log[1:], derived); got != nil {
		t.Errorf("events of an erased stream derived %v", got)
	}
}

// Retention trims the events a snapshot covers: a state is rebuilt from
// that snapshot, and an event the snapshot does not reach back to derives
// nothing (a state folded from the events left would announce changes that
// did not happen).
func TestDeriverRebuildsTrimmedStreamsFromTheirSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := deriverStore(t)
	// More events than one page of stream reads, the first milestone among
	// the trimmed ones.
	specs := []spec{registeredSpec, pickedUp}
	for i := range 520 {
		specs = append(specs, spec{tracking.TypeLocationReported, 11 + i%30, `{"lat":1,"lon":2}`})
	}
	specs[299] = spec{tracking.TypeMilestoneReached, 45, `{"milestone":"out_for_delivery"}`}                     // v300
	specs[500] = spec{tracking.TypeExceptionRaised, 46, `{"exceptionId":"x9","code":"damage","severity":"low"}`} // v501
	for i := 0; i < len(specs); i += 100 {
		appendEvents(t, store, "acme", "SHP-1", specs[i:min(len(specs), i+100)]...)
	}
	appendEvents(t, store, "acme", "SHP-1", delivered)
	log := readLog(t, store, eventstore.Cursor{})
	last := log[len(log)-1]
	snapshot := func(v int) {
		t.Helper()
		state, _ := tracking.FoldEntity("SHP-1", nil, log[:v])
		if err := store.SaveSnapshot(ctx, eventstore.Snapshot{Tenant: "acme", StreamID: "SHP-1", Version: int64(v),
			SchemaVersion: tracking.SnapshotSchemaVersion, State: state}); err != nil {
			t.Fatal(err)
		}
	}
	snapshot(10)
	trimmer, ok := store.Store.(interface {
		TrimEvents(ctx context.Context, before time.Time, below eventstore.Cursor, schemaVersion int, dryRun bool) (int64, error)
	})
	if !ok {
		t.Fatal("the SQLite store cannot trim events")
	}
	if n, err := trimmer.TrimEvents(ctx, time.Now().Add(time.Hour), last.Cursor, tracking.SnapshotSchemaVersion, false); err != nil || n != 10 {
		t.Fatalf("trimmed %d events, %v; want the 10 the snapshot covers", n, err)
	}

	derived, err := tracking.NewDeriver(store, 10).Derive(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(derived) != 1 || derived[0].PreviousStatus != tracking.StatusOutForDelivery || derived[0].Status != tracking.StatusDelivered {
		t.Errorf("the last event derived %s, want out_for_delivery -> delivered", dumpJSON(derived))
	}
	derived, err = tracking.NewDeriver(store, 10).Derive(ctx, log[299])
	if err != nil {
		t.Fatal(err)
	}
	if len(derived) != 1 || derived[0].PreviousStatus != tracking.StatusInTransit || derived[0].Status != tracking.StatusOutForDelivery {
		t.Errorf("v300 derived %s, want in_transit -> out_for_delivery", dumpJSON(derived))
	}

	// A newer snapshot is no start for an event before it, but is for the
	// events after it.
	snapshot(500)
	batch := log[299:301]
	batches, err := tracking.NewDeriver(store, 10).DeriveBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(batch, batches); got != nil {
		t.Errorf("events after trimmed ones derived %v", got)
	}
	batch = log[499:501]
	batches, err = tracking.NewDeriver(store, 10).DeriveBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(batch, batches); !reflect.DeepEqual(got, []string{"SHP-1/v501:ExceptionRaised"}) {
		t.Errorf("the events around the snapshot derived %v, want v501's exception only", got)
	}
}

// Without a way to read streams, a state that is not kept cannot be
// rebuilt: deriving fails with an error rather than guessing.
func TestDeriverWithoutStreamsFails(t *testing.T) {
	t.Parallel()
	d := tracking.NewDeriver(nil, 0)
	e := eventstore.Recorded{Tenant: "acme", StreamID: "SHP-1", Version: 2, ID: uuid.New(),
		Type: tracking.TypeMilestoneReached, Data: json.RawMessage(`{"milestone":"picked_up"}`)}
	if _, err := d.Derive(context.Background(), e); err == nil {
		t.Error("no error deriving an event whose earlier state cannot be read")
	}
}

func dumpJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
