package tracking_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// countingStore counts the events ReadStream and LoadStream return (read)
// and the stream and snapshot reads made (loads).
type countingStore struct {
	eventstore.Store
	read, loads atomic.Int64
	// appendAlls counts AppendAll calls; appends, Append calls.
	appendAlls, appends atomic.Int64
}

func (c *countingStore) LoadStreams(ctx context.Context, refs []eventstore.StreamRef, limit int) ([]eventstore.Loaded, error) {
	c.loads.Add(1)
	out, err := c.Store.LoadStreams(ctx, refs, limit)
	for _, l := range out {
		c.read.Add(int64(len(l.Events)))
	}
	return out, err
}

func (c *countingStore) AppendAll(ctx context.Context, reqs []eventstore.AppendRequest) []eventstore.Outcome {
	c.appendAlls.Add(1)
	return c.Store.AppendAll(ctx, reqs)
}

func (c *countingStore) Append(ctx context.Context, r eventstore.AppendRequest) (eventstore.AppendResult, error) {
	c.appends.Add(1)
	return c.Store.Append(ctx, r)
}

func (c *countingStore) ReadStream(ctx context.Context, tenant, id string, from int64, limit int) ([]eventstore.Recorded, error) {
	c.loads.Add(1)
	recs, err := c.Store.ReadStream(ctx, tenant, id, from, limit)
	c.read.Add(int64(len(recs)))
	return recs, err
}

func (c *countingStore) LoadStream(ctx context.Context, tenant, id string, limit int) (eventstore.Loaded, error) {
	c.loads.Add(1)
	l, err := c.Store.LoadStream(ctx, tenant, id, limit)
	c.read.Add(int64(len(l.Events)))
	return l, err
}

func (c *countingStore) LoadSnapshot(ctx context.Context, tenant, id string) (eventstore.Snapshot, error) {
	c.loads.Add(1)
	return c.Store.LoadSnapshot(ctx, tenant, id)
}

var realEngines = []struct {
	name string
	open func(t testing.TB) eventstore.Store
}{
	{"sqlite", func(t testing.TB) eventstore.Store {
		s, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "e.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t testing.TB) eventstore.Store {
		s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// An entity of 1,000 events has a snapshot, and loading it reads at most
// SnapshotFrequency events, on the real engines.
func TestSnapshotBoundsLoadingOnEngines(t *testing.T) {
	t.Parallel()
	for _, eng := range realEngines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			store := &countingStore{Store: eng.open(t)}
			svc := tracking.NewService(store, tracking.ServiceOptions{SnapshotFrequency: 100})
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			base := time.Now().Add(-24 * time.Hour)
			for batch := range 10 {
				cmd := tracking.RecordCommand{Tenant: "t1", EntityID: "BIG-1", EntityType: "vehicle", Expected: eventstore.Any}
				for i := range 100 {
					n := batch*100 + i
					data, _ := json.Marshal(map[string]float64{"lat": float64(n%90) / 2, "lon": 4})
					cmd.Events = append(cmd.Events, tracking.NewEvent{Type: "LocationReported",
						OccurredAt: base.Add(time.Duration(n) * time.Second), Data: data})
				}
				if _, err := svc.Record(ctx, cmd); err != nil {
					t.Fatalf("batch %d: %v", batch, err)
				}
			}
			if err := svc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			snap, err := store.LoadSnapshot(ctx, "t1", "BIG-1")
			if err != nil || snap.Version != 1000 {
				t.Fatalf("snapshot = v%d, %v; want one at version 1000", snap.Version, err)
			}
			store.read.Store(0)
			st, err := svc.Entity(ctx, "t1", "BIG-1")
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != 1000 || st.LastLocation == nil || st.LastLocation.Lat != float64(999%90)/2 {
				t.Fatalf("state = %+v", st)
			}
			if n := store.read.Load(); n > 100 {
				t.Fatalf("loading read %d events, want at most SnapshotFrequency (100)", n)
			}
			// One more event: loading reads the snapshot plus that one event.
			if _, err := svc.Record(ctx, tracking.RecordCommand{Tenant: "t1", EntityID: "BIG-1", Expected: eventstore.Exact(1000),
				Events: []tracking.NewEvent{{Type: "LocationReported", OccurredAt: base.Add(time.Hour), Data: json.RawMessage(`{"lat":1,"lon":2}`)}}}); err != nil {
				t.Fatal(err)
			}
			store.read.Store(0)
			if _, err := svc.Entity(ctx, "t1", "BIG-1"); err != nil {
				t.Fatal(err)
			}
			if n := store.read.Load(); n != 1 {
				t.Fatalf("loading after one more event read %d events, want 1", n)
			}
		})
	}
}

// Two replicas (two Services) write one entity through one store. Each keeps
// the entity's aggregate cached between commands, and the other's writes make
// it stale: a stale cache must neither reject a valid command nor let an
// invalid one through, and a client's exact expected version is checked
// against the store, not against the cache.
func TestReplicasWithStaleAggregateCaches(t *testing.T) {
	t.Parallel()
	for _, eng := range realEngines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := &countingStore{Store: eng.open(t)}
			a := tracking.NewService(store, tracking.ServiceOptions{AggregateCacheSize: 100})
			b := tracking.NewService(store, tracking.ServiceOptions{AggregateCacheSize: 100})
			at := time.Now().Add(-time.Hour)
			op := func(typ, id string) tracking.NewEvent {
				at = at.Add(time.Minute)
				data := `{"operation":"loading","operationId":"` + id + `"}`
				if typ == "OperationCompleted" {
					data = `{"operation":"loading","operationId":"` + id + `","outcome":"succeeded"}`
				}
				return tracking.NewEvent{Type: typ, OccurredAt: at, Data: json.RawMessage(data)}
			}
			record := func(svc *tracking.Service, expected eventstore.ExpectedVersion, e tracking.NewEvent) (eventstore.AppendResult, error) {
				return svc.Record(ctx, tracking.RecordCommand{Tenant: "t1", EntityID: "TRK-1", EntityType: "vehicle",
					Expected: expected, Events: []tracking.NewEvent{e}})
			}
			mustRecord := func(svc *tracking.Service, expected eventstore.ExpectedVersion, e tracking.NewEvent, want int64) {
				t.Helper()
				res, err := record(svc, expected, e)
				if err != nil || res.Version != want {
					t.Fatalf("record %s: version %d, %v; want version %d", e.Type, res.Version, err, want)
				}
			}

			mustRecord(a, eventstore.NoStream, op("OperationStarted", "op1"), 1) // a caches v1: op1 open
			// A warm command on a's cached aggregate reads nothing before appending.
			store.loads.Store(0)
			mustRecord(a, eventstore.Any, op("OperationStarted", "op2"), 2) // a caches v2
			if n := store.loads.Load(); n != 0 {
				t.Fatalf("a command on a cached aggregate made %d reads, want 0", n)
			}
			mustRecord(b, eventstore.Any, op("OperationCompleted", "op1"), 3) // a's cache is stale now

			// a's cache says op1 is open, the store says it is completed:
			// starting it again is valid and must not be rejected.
			mustRecord(a, eventstore.Any, op("OperationStarted", "op1"), 4)
			mustRecord(b, eventstore.Any, op("OperationCompleted", "op1"), 5) // b's cache is stale too, by one

			// a's cache (v4) says op1 is open, so completing it looks valid;
			// the store says it is completed: the append must fail with 422.
			_, err := record(a, eventstore.Any, op("OperationCompleted", "op1"))
			if !errors.Is(err, tracking.ErrRuleViolation) {
				t.Fatalf("completing a completed operation on a stale replica: %v, want a rule violation", err)
			}
			// The client knows the version is 5; a's cache may not.
			mustRecord(a, eventstore.Exact(5), op("OperationCompleted", "op2"), 6)
			// An exact version that is stale for the store is a conflict on
			// either replica.
			for name, svc := range map[string]*tracking.Service{"a": a, "b": b} {
				_, err := record(svc, eventstore.Exact(5), op("OperationStarted", "op9"))
				var wrong *eventstore.WrongExpectedVersionError
				if !errors.As(err, &wrong) || wrong.Actual != 6 {
					t.Fatalf("%s: stale exact version: %v, want a conflict at actual version 6", name, err)
				}
			}
			// Erasure through a forgets a's cache; b (whose last command
			// failed, so it caches nothing) starts the new stream.
			if _, err := tracking.NewEraser(a, tracking.EraserOptions{}).Erase(ctx, "t1", "TRK-1"); err != nil {
				t.Fatal(err)
			}
			mustRecord(b, eventstore.Any, op("OperationStarted", "op1"), 1)
			mustRecord(a, eventstore.Exact(1), op("OperationCompleted", "op1"), 2)
			if _, err := record(b, eventstore.Any, op("OperationCompleted", "op1")); !errors.Is(err, tracking.ErrRuleViolation) {
				t.Fatalf("completing op1 twice after re-creation: %v, want a rule violation", err)
			}
			st, err := b.Entity(ctx, "t1", "TRK-1")
			if err != nil || st.Version != 2 {
				t.Fatalf("state after erasure and re-creation = %+v, %v", st, err)
			}

			// Another replica erases and re-creates the entity up to the
			// version a has cached: a's cache (v1, op7 open) matches the
			// store's version but not its stream. Completing op7, which the
			// new stream never started, must be a rule violation, not an
			// append decided on the erased stream.
			if _, err := tracking.NewEraser(a, tracking.EraserOptions{}).Erase(ctx, "t1", "TRK-1"); err != nil {
				t.Fatal(err)
			}
			mustRecord(a, eventstore.NoStream, op("OperationStarted", "op7"), 1) // a caches v1: op7 open
			if _, err := tracking.NewEraser(b, tracking.EraserOptions{}).Erase(ctx, "t1", "TRK-1"); err != nil {
				t.Fatal(err)
			}
			mustRecord(b, eventstore.NoStream, op("OperationStarted", "op8"), 1)
			_, err = record(a, eventstore.Any, op("OperationCompleted", "op7"))
			if !errors.Is(err, tracking.ErrRuleViolation) {
				t.Fatalf("completing an operation of the erased stream on a replica that cached it: %v, want a rule violation", err)
			}
			// The refused command left the new stream as b wrote it.
			if st, err := b.Entity(ctx, "t1", "TRK-1"); err != nil || st.Version != 1 {
				t.Fatalf("state after the refused command = %+v, %v; want version 1", st, err)
			}
		})
	}
}

// A batch loads its entities in one read and appends in one AppendAll; every
// item is answered as Record would answer it alone: new and existing
// entities, several items of one entity in order, a rule violation failing
// only its item, a replay, an aggregate another replica made stale.
func TestRecordBatch(t *testing.T) {
	t.Parallel()
	for _, eng := range realEngines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := &countingStore{Store: eng.open(t)}
			svc := tracking.NewService(store, tracking.ServiceOptions{AggregateCacheSize: 100})
			other := tracking.NewService(store, tracking.ServiceOptions{AggregateCacheSize: 100})
			at := time.Now().Add(-time.Hour)
			ev := func(typ, data string) tracking.NewEvent {
				at = at.Add(time.Second)
				return tracking.NewEvent{ID: uuid.New(), Type: typ, OccurredAt: at, Data: json.RawMessage(data)}
			}
			loc := func() tracking.NewEvent { return ev("LocationReported", `{"lat":1,"lon":2}`) }
			cmd := func(id string, evs ...tracking.NewEvent) tracking.RecordCommand {
				return tracking.RecordCommand{Tenant: "t1", EntityID: id, EntityType: "package", Expected: eventstore.Any, Events: evs}
			}
			// OLD-1 exists and is cached by svc; OLD-2 exists, cached by nobody.
			if _, err := svc.Record(ctx, cmd("OLD-1", loc(), loc())); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Record(ctx, cmd("OLD-2", ev("OperationStarted", `{"operation":"loading","operationId":"op1"}`))); err != nil {
				t.Fatal(err)
			}
			store.loads.Store(0)
			store.appendAlls.Store(0)
			store.appends.Store(0)
			batch := []tracking.RecordCommand{
				cmd("NEW-1", loc()),
				cmd("OLD-1", loc()),
				cmd("OLD-2", ev("OperationCompleted", `{"operation":"loading","operationId":"op1","outcome":"succeeded"}`)),
				cmd("NEW-2", loc(), loc(), loc()),
				cmd("NEW-1", loc()), // after NEW-1's first item
				cmd("OLD-2", ev("OperationCompleted", `{"operation":"loading","operationId":"op1","outcome":"succeeded"}`)), // completed already
				{Tenant: "t1", EntityID: "bad id!", EntityType: "package", Events: []tracking.NewEvent{loc()}},
			}
			out := svc.RecordBatch(ctx, batch)
			wantVersions := []int64{1, 3, 2, 3, 2, 0, 0}
			for i, o := range out {
				switch {
				case i == 5:
					if !errors.Is(o.Err, tracking.ErrRuleViolation) {
						t.Errorf("item %d (completing a completed operation): %v, want a rule violation", i, o.Err)
					}
				case i == 6:
					if !errors.Is(o.Err, tracking.ErrInvalid) {
						t.Errorf("item %d (malformed id): %v, want invalid", i, o.Err)
					}
				case o.Err != nil || o.Result.Version != wantVersions[i]:
					t.Errorf("item %d: version %d, %v; want version %d", i, o.Result.Version, o.Err, wantVersions[i])
				}
			}
			// One read for the cold entities (NEW-1, OLD-2, NEW-2; OLD-1 was
			// cached), one AppendAll for the first item of each entity; the
			// second items of NEW-1 and OLD-2 went the single-command way.
			if n := store.appendAlls.Load(); n != 1 {
				t.Errorf("%d AppendAll calls, want 1", n)
			}
			if n := store.appends.Load(); n > 2 {
				t.Errorf("%d single appends, want at most the 2 later items of an entity", n)
			}
			// Sent again: the same answers; the valid items are replays.
			again := svc.RecordBatch(ctx, batch)
			for i := range batch {
				if (again[i].Err == nil) != (out[i].Err == nil) || again[i].Result.Version != out[i].Result.Version ||
					again[i].Err == nil && !again[i].Result.Replayed {
					t.Errorf("item %d sent again: %+v, %v; first %+v, %v", i, again[i].Result, again[i].Err, out[i].Result, out[i].Err)
				}
			}

			// Another replica makes svc's cached OLD-1 stale, then erases and
			// re-creates NEW-2 up to the version svc cached.
			if _, err := other.Record(ctx, cmd("OLD-1", loc())); err != nil {
				t.Fatal(err)
			}
			if _, err := tracking.NewEraser(other, tracking.EraserOptions{}).Erase(ctx, "t1", "NEW-2"); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Record(ctx, cmd("NEW-2", loc(), loc(), loc())); err != nil {
				t.Fatal(err)
			}
			out = svc.RecordBatch(ctx, []tracking.RecordCommand{cmd("OLD-1", loc()), cmd("NEW-2", loc())})
			if out[0].Err != nil || out[0].Result.Version != 5 {
				t.Errorf("OLD-1 on a stale cache: %+v, %v; want version 5", out[0].Result, out[0].Err)
			}
			if out[1].Err != nil || out[1].Result.Version != 4 {
				t.Errorf("NEW-2 re-created by another replica: %+v, %v; want version 4", out[1].Result, out[1].Err)
			}
			evs, err := svc.Events(ctx, "t1", "NEW-2", 1, 10)
			if err != nil || len(evs) != 4 {
				t.Fatalf("NEW-2 events %d, %v; want 4", len(evs), err)
			}
		})
	}
}
