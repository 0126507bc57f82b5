package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/tracking"
)

// retentionStore is what the engines' event stores offer retention and the
// seeding of rebuilds.
type retentionStore interface {
	retention.EventStore
	projection.RetainedSource
}

// retainer returns what the retention tests need of the env: the retention
// run's collaborators, and a manager whose rebuilds are seeded with the
// streams retention trimmed.
func (e *env) retainer() (retention.Deps, *projection.Manager) {
	e.t.Helper()
	store, ok := e.store.(retentionStore)
	if !ok {
		e.t.Fatalf("%T offers neither retention nor retained snapshots", e.store)
	}
	deps := retention.Deps{Store: store, ReadModels: e.rm, Snapshotter: e.svc, Readers: tracking.Projections(),
		SnapshotSchemaVersion: tracking.SnapshotSchemaVersion}
	return deps, newManager(e.store, e.rm, e.rm, projection.Options{Retained: store, SnapshotSchemaVersion: tracking.SnapshotSchemaVersion})
}

// rebuildAll starts a rebuild of every projection.
func (e *env) rebuildAll(m *projection.Manager) {
	e.t.Helper()
	for _, name := range tracking.Projections() {
		if err := m.Rebuild(e.ctx, name); err != nil {
			e.t.Fatal(err)
		}
	}
}

// testRetentionThenRebuild: retention trims the old events of streams
// behind a snapshot; a rebuild of every projection afterwards, seeded with
// the snapshots, folds the same read models as the live projections hold
// (row for row, stream positions included), though the log no longer has
// the trimmed events.
func testRetentionThenRebuild(t *testing.T, e *env) {
	deps, m := e.retainer()
	// Old events (recorded before the cutoff), then recent ones.
	e.record([]step{
		{acme, "OLD-1", tracking.EntityShipment, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(6, 0), `{"reference":"R-9","origin":"Ghent"}`),
			started("loading", "op-1", at(6, 10)),
			completed("loading", "op-1", tracking.OutcomeSucceeded, at(6, 40)), // a point of trimmed events
			started("sorting", "op-2", at(7, 0)),                               // completed after the cutoff
			started("customs", "op-3", at(7, 5)),                               // completed after retention
			ev(tracking.TypeExceptionRaised, at(7, 10), `{"exceptionId":"EX-9","code":"delay","severity":"low"}`),
			milestone("picked_up", at(7, 20), at(7, 0)),
		}},
		{acme, "OLD-2", tracking.EntityPackage, []tracking.NewEvent{ // trimmed whole
			ev(tracking.TypeEntityRegistered, at(6, 0), `{}`),
			ev(tracking.TypeLocationReported, at(6, 30), `{"lat":51,"lon":4,"siteId":"RTM"}`),
			milestone("departed", at(6, 45), time.Time{}),
		}},
		{globex, "MIX-1", tracking.EntityContainer, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(6, 0), `{}`),
		}},
	})
	e.captureEPCIS(acme, 2) // EPCIS events are trimmed like the others, and from the EPCIS index
	time.Sleep(2 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(2 * time.Millisecond)
	e.captureEPCIS(acme, 1)
	e.record([]step{
		{acme, "OLD-1", "", []tracking.NewEvent{
			completed("sorting", "op-2", tracking.OutcomeFailed, at(8, 0)), // its start is trimmed
			milestone("in_transit", at(8, 30), at(8, 0)),
		}},
		{globex, "MIX-1", "", []tracking.NewEvent{milestone("arrived", at(9, 0), at(9, 30))}},
		{globex, "NEW-1", tracking.EntityVehicle, []tracking.NewEvent{
			started("transit", "op-7", at(8, 0)), completed("transit", "op-7", tracking.OutcomeSucceeded, at(8, 20)),
		}},
	})
	e.catchUp(e.mgr)

	const maxAge = 24 * time.Hour
	rep, err := retention.Run(e.ctx, deps, retention.Policy{MaxAge: maxAge}, cutoff.Add(maxAge), false)
	if err != nil {
		t.Fatal(err)
	}
	// The 11 old events go (each stream got a snapshot at its version),
	// and the 2 old EPCIS events; the 5 recent stay, and the recent EPCIS
	// event.
	if rep.EventsDeleted != 13 || rep.TimelineRowsDeleted != 11 || rep.EPCISEventsDeleted != 2 {
		t.Fatalf("retention: %+v, want 13 events, 11 timeline rows and 2 EPCIS index entries deleted", rep)
	}
	e.recorded -= rep.EventsDeleted
	// After retention, more events: onto a trimmed stream's snapshot.
	e.record([]step{
		{acme, "OLD-1", "", []tracking.NewEvent{completed("customs", "op-3", tracking.OutcomeSucceeded, at(9, 0))}},
		{acme, "OLD-2", "", []tracking.NewEvent{milestone("delivered", at(10, 0), time.Time{})}},
		{acme, "NEW-2", tracking.EntityPackage, []tracking.NewEvent{ev(tracking.TypeEntityRegistered, at(10, 0), `{}`)}},
	})
	// OLD-1's newest snapshot is ahead of the projections when the rebuild
	// begins: the live metrics have not yet seen op-3 complete.
	if err := e.svc.Snapshot(e.ctx, acme, "OLD-1"); err != nil {
		t.Fatal(err)
	}
	e.rebuildAll(m)
	for _, name := range tracking.Projections() { // the live projections alone catch up
		for e.applyBatch(name) > 0 {
		}
	}
	live := e.dump()
	e.wantRows(map[string]int{"rm_timeline": 8, "rm_entities": 5, "rm_operation_starts": 0, "rm_metric_points": 8, "rm_epcis_events": 1, "rm_epcis_ids": 1})
	if st := e.entity(acme, "OLD-1"); st.Version != 10 || st.Status != tracking.StatusInTransit || len(st.OpenExceptions) != 1 {
		t.Fatalf("live OLD-1 = v%d %s, %d open exceptions; want v10 in_transit, 1", st.Version, st.Status, len(st.OpenExceptions))
	}

	e.catchUp(m)
	sameDump(t, "rebuilt after retention vs live", e.dump(), live)
	for _, k := range []struct{ tenant, id string }{{acme, "OLD-1"}, {acme, "OLD-2"}, {globex, "MIX-1"}} {
		for _, name := range tracking.EntityProjections() {
			want := map[string]int64{"OLD-1": 10, "OLD-2": 4, "MIX-1": 2}[k.id]
			if v := e.projectedVersion(name, k.tenant, k.id); v != want {
				t.Errorf("%s: rebuilt %s of %s/%s at version %d, want %d", name, name, k.tenant, k.id, v, want)
			}
		}
	}
}

// testRetentionDuringRebuild: a retention run while every projection is
// being rebuilt deletes no event the rebuilds have yet to replay (their
// checkpoints hold it back), trims the timeline rows recorded before its
// cutoff from the live timeline, and the rebuilt timeline keeps none of
// them either (the timeline's horizon): once switched in, the rebuilds
// equal the live read models. The next run, with no rebuild in progress,
// deletes the events, and a rebuild after it, seeded with the snapshots,
// again equals the live read models.
func testRetentionDuringRebuild(t *testing.T, e *env) {
	deps, m := e.retainer()
	e.record([]step{
		{acme, "RET-1", tracking.EntityShipment, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(6, 0), `{"reference":"R-1"}`),
			started("loading", "op-1", at(6, 10)),
			milestone("picked_up", at(6, 20), at(6, 0)),
		}},
		{globex, "RET-2", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(6, 0), `{}`),
		}},
	})
	time.Sleep(2 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(2 * time.Millisecond)
	e.record([]step{
		{acme, "RET-1", "", []tracking.NewEvent{completed("loading", "op-1", tracking.OutcomeSucceeded, at(7, 0))}},
		{globex, "RET-2", "", []tracking.NewEvent{milestone("departed", at(7, 0), time.Time{})}},
	})
	e.catchUp(e.mgr)

	e.rebuildAll(m)
	const maxAge = 24 * time.Hour
	policy := retention.Policy{MaxAge: maxAge}
	rep, err := retention.Run(e.ctx, deps, policy, cutoff.Add(maxAge), false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.EventsDeleted != 0 || rep.TimelineRowsDeleted != 4 {
		t.Fatalf("retention while rebuilding: %+v, want no event and the 4 old timeline rows deleted", rep)
	}
	live := e.dump()
	e.catchUp(m)
	sameDump(t, "rebuilt while retention ran vs live", e.dump(), live)

	// No rebuild in progress: the old events go.
	if rep, err = retention.Run(e.ctx, deps, policy, cutoff.Add(maxAge), false); err != nil {
		t.Fatal(err)
	}
	if rep.EventsDeleted != 4 || rep.TimelineRowsDeleted != 0 {
		t.Fatalf("retention after the rebuild: %+v, want the 4 old events deleted", rep)
	}
	e.recorded -= rep.EventsDeleted
	e.rebuildAll(m)
	e.catchUp(m)
	sameDump(t, "rebuilt after retention vs live", e.dump(), live)
}

// testErasureDuringRebuild: an entity erased while the projections are
// being rebuilt, after the rebuilds had applied its events, is gone from
// the read models once the rebuilds are switched in.
func testErasureDuringRebuild(t *testing.T, e *env) {
	e.record(allData())
	e.catchUp(e.mgr)
	for _, name := range tracking.Projections() {
		if err := e.mgr.Rebuild(e.ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// The rebuilds replay the whole log, not yet switched in, and the
	// status shows each caught up with it. (On PostgreSQL the log's head
	// is what no open transaction of the server can still add to: it may
	// move on after a replay that reached it, so the replay goes on until
	// the status sees it at the head.)
	settled := func(st []projection.Status) bool {
		for _, s := range st {
			if s.Rebuild == nil || s.Rebuild.LagEvents != 0 || s.Rebuild.Checkpoint != s.Head {
				return false
			}
		}
		return true
	}
	st := e.until(settled, func() {
		for _, name := range tracking.Projections() {
			for {
				shadow := projection.Shadow(name)
				from := e.checkpoint(shadow)
				evs := e.readAll(from, 1000)
				if len(evs) == 0 {
					break
				}
				if err := e.rm.Apply(e.ctx, only(shadow, from), evs); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	if !settled(st) {
		for _, s := range st {
			t.Errorf("status of %s during its rebuild: %+v (rebuild %+v), want the rebuild at the head", s.Name, s, s.Rebuild)
		}
	}
	// PKG-A has rows in every table: timeline, entity, metric points, an
	// open operation, stream positions.
	n, err := e.store.Erase(e.ctx, acme, "PKG-A")
	if err != nil || n == 0 {
		t.Fatalf("erase PKG-A from the store: %d events, %v", n, err)
	}
	e.recorded -= n
	if err := e.rm.EraseEntity(e.ctx, acme, "PKG-A"); err != nil {
		t.Fatal(err)
	}
	switched := func(st []projection.Status) bool {
		for _, s := range st {
			if s.Rebuild != nil || s.LagEvents != 0 {
				return false
			}
		}
		return true
	}
	st = e.until(switched, func() { e.catchUp(e.mgr) })
	if r, err := e.rm.Rebuilding(e.ctx); err != nil || len(r) != 0 {
		t.Fatalf("rebuilds still in progress: %v, %v", r, err)
	}
	if !switched(st) {
		for _, s := range st {
			t.Errorf("status of %s after its rebuild was switched in: %+v (rebuild %+v)", s.Name, s, s.Rebuild)
		}
	}
	for table, rows := range e.dump() {
		for _, row := range rows {
			if strings.Contains(row, acme) && strings.Contains(row, "PKG-A") {
				t.Errorf("%s keeps a row of the erased entity after the rebuild: %s", table, row)
			}
		}
	}
	if _, err := e.rm.Entity(e.ctx, acme, "PKG-A"); !errors.Is(err, tracking.ErrNotFound) {
		t.Fatalf("erased entity after the rebuild: %v, want not found", err)
	}
}

// testRebuildUnderLoad: while a writer appends and readers read the entity
// list, entity states, timelines and metrics, every projection is rebuilt
// by the running runner. No read ever misses an entity recorded before the
// rebuild, or any of its timeline, or a metric point; the rebuilds are
// switched in (generation 1) once caught up; and the read models then
// equal a fold of the log from scratch.
func testRebuildUnderLoad(t *testing.T, e *env) {
	const perTenant = 20
	type entity struct {
		tenant, id string
		version    int64
	}
	var base []entity
	var steps []step
	for _, tenant := range []string{acme, globex} {
		for i := range perTenant {
			id := fmt.Sprintf("LOAD-%02d", i)
			steps = append(steps, step{tenant, id, tracking.EntityPackage, []tracking.NewEvent{
				ev(tracking.TypeEntityRegistered, at(8, 0), `{}`),
				started("loading", "op-1", at(8, 1)),
				completed("loading", "op-1", tracking.OutcomeSucceeded, at(8, 2+i)),
				milestone("picked_up", at(9, 0), at(9, i)),
			}})
			base = append(base, entity{tenant, id, 4})
		}
	}
	e.record(steps)
	e.catchUp(e.mgr)
	var samplesBefore int
	for _, tenant := range []string{acme, globex} {
		s, err := e.rm.MetricSamples(e.ctx, tracking.MetricsQuery{Tenant: tenant, Kind: tracking.MetricOperation, From: at(0, 0), To: at(24, 0)})
		if err != nil {
			t.Fatal(err)
		}
		samplesBefore += len(s)
	}
	if samplesBefore != 2*perTenant {
		t.Fatalf("%d operation samples before the rebuild, want %d", samplesBefore, 2*perTenant)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// The runner, as a server runs it; it tells the caches of each
	// generation it sees.
	var gensMu sync.Mutex
	gens := map[string]int64{}
	m := projection.NewManager(e.store, e.rm, e.rm, tracking.Projections(), projection.Options{BatchSize: 50, Interval: 50 * time.Millisecond,
		OnSwitched: func(name string, gen int64) { gensMu.Lock(); gens[name] = gen; gensMu.Unlock() }})
	wg.Add(1)
	go func() { defer wg.Done(); m.Run(ctx) }()

	// The writer: more events on the entities, and new entities. Each
	// append runs to its end (e.ctx), so that every event is counted.
	var written atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			b := base[i%len(base)]
			s := step{b.tenant, b.id, "", []tracking.NewEvent{ev(tracking.TypeLocationReported, at(10, i%60), `{"lat":1,"lon":2}`)}}
			if i%5 == 0 {
				s = step{b.tenant, fmt.Sprintf("NEW-%04d", i), tracking.EntityAsset, []tracking.NewEvent{ev(tracking.TypeEntityRegistered, at(10, 0), `{}`)}}
			}
			if _, err := e.svc.Record(e.ctx, tracking.RecordCommand{Tenant: s.tenant, EntityID: s.entity, EntityType: s.entityType,
				Expected: eventstore.Any, Events: s.events, Principal: "tester", Source: "projectiontest"}); err != nil {
				t.Errorf("record: %v", err)
				return
			}
			written.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// The readers: every read must be complete.
	var (
		reads    atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	readers := []func(r *rand.Rand) error{
		func(*rand.Rand) error { // the entity list
			for _, tenant := range []string{acme, globex} {
				page, err := e.rm.ListEntities(ctx, tracking.EntityQuery{Tenant: tenant, EntityType: tracking.EntityPackage, Limit: 1000})
				if err != nil {
					return err
				}
				var ids []string
				for _, it := range page.Items {
					ids = append(ids, it.EntityID)
				}
				for _, b := range base {
					if b.tenant == tenant && !slices.Contains(ids, b.id) {
						fail("entity list of %s misses %s (%d items)", tenant, b.id, len(ids))
					}
				}
			}
			return nil
		},
		func(r *rand.Rand) error { // an entity's state and its timeline
			b := base[r.IntN(len(base))]
			st, err := e.rm.Entity(ctx, b.tenant, b.id)
			if errors.Is(err, tracking.ErrNotFound) {
				fail("entity %s/%s not found", b.tenant, b.id)
				return nil
			}
			if err != nil {
				return err
			}
			if st.Version < b.version || st.Status == tracking.StatusRegistered {
				fail("entity %s/%s at v%d %s, recorded at v%d picked up", b.tenant, b.id, st.Version, st.Status, b.version)
			}
			page, err := e.rm.Timeline(ctx, tracking.TimelineQuery{Tenant: b.tenant, EntityID: b.id, Limit: 1000})
			if err != nil {
				return err
			}
			var versions []int64
			for _, en := range page.Entries {
				versions = append(versions, en.Version)
			}
			for v := int64(1); v <= b.version; v++ {
				if !slices.Contains(versions, v) {
					fail("timeline of %s/%s misses version %d: %v", b.tenant, b.id, v, versions)
					break
				}
			}
			return nil
		},
		func(*rand.Rand) error { // the metrics
			n := 0
			for _, tenant := range []string{acme, globex} {
				s, err := e.rm.MetricSamples(ctx, tracking.MetricsQuery{Tenant: tenant, Kind: tracking.MetricOperation, From: at(0, 0), To: at(24, 0)})
				if err != nil {
					return err
				}
				n += len(s)
			}
			if n < samplesBefore {
				fail("%d operation samples, %d before the rebuild", n, samplesBefore)
			}
			return nil
		},
	}
	for i, read := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				if err := read(r); err != nil {
					if ctx.Err() == nil {
						t.Errorf("read: %v", err)
					}
					return
				}
				reads.Add(1)
			}
		}()
	}

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Some load first, then the rebuilds, which the runner switches in.
	waitFor("load", func() bool { return written.Load() >= 10 && reads.Load() >= 10 })
	readsAtStart := reads.Load()
	for _, name := range tracking.Projections() {
		if err := m.Rebuild(e.ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("the rebuilds to be switched in", func() bool {
		r, err := e.rm.Rebuilding(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(r) == 0
	})
	readsDuring := reads.Load() - readsAtStart
	switchedAt := reads.Load()
	waitFor("reads after the switch", func() bool { return reads.Load() >= switchedAt+20 })
	// The runner tells the caches of a switch after its commit, which the
	// checkpoints show a moment earlier (or, where the switch's answer was
	// lost, at its next look at the checkpoints).
	waitFor("the runner to tell the caches of every switch", func() bool {
		gensMu.Lock()
		defer gensMu.Unlock()
		for _, name := range tracking.Projections() {
			if gens[name] != 1 {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("incomplete reads during the rebuild (%d reads while rebuilding):\n%s", readsDuring, failures)
	}
	if readsDuring == 0 {
		t.Fatal("no read was made while rebuilding")
	}
	for _, name := range tracking.Projections() {
		if cp, err := e.rm.Checkpoint(e.ctx, name); err != nil || cp.Generation != 1 {
			t.Fatalf("%s: generation %d, %v; want 1 after one rebuild", name, cp.Generation, err)
		}
		gensMu.Lock()
		gen, ok := gens[name]
		gensMu.Unlock()
		if !ok || gen != 1 {
			t.Fatalf("%s: the runner told the caches of generation %d (told: %v), want 1", name, gen, ok)
		}
	}
	// The read models equal a fold of the whole log from scratch.
	e.recorded += written.Load()
	e.waitReadable()
	e.catchUp(e.mgr)
	rebuilt := e.dump()
	e.resetAll()
	e.catchUp(e.mgr)
	sameDump(t, "rebuilt under load vs folded from scratch", rebuilt, e.dump())
}

// captureEPCIS captures an EPCIS document of n ObjectEvents for a tenant
// (each with EPCs of its own) and waits until the log has them.
func (e *env) captureEPCIS(tenant string, n int) {
	e.t.Helper()
	jobs, ok := e.rm.(epcis.Jobs)
	if !ok {
		e.t.Fatalf("%T keeps no capture jobs", e.rm)
	}
	var events []string
	for range n {
		e.epcisCaptured++
		events = append(events, fmt.Sprintf(`{"type": "ObjectEvent", "eventTime": "2026-01-01T10:00:00Z", "eventTimeZoneOffset": "+00:00",
			"epcList": ["urn:epc:id:sgtin:0614141.107346.%d"], "action": "OBSERVE", "bizStep": "shipping"}`, e.epcisCaptured))
	}
	doc, err := epcis.ParseDocument([]byte(`{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
		"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
		"epcisBody": {"eventList": [`+strings.Join(events, ",")+`]}}`), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	job, err := epcis.NewCapturer(e.store, jobs, epcis.HashStored, nil).Capture(e.ctx, epcis.Request{Tenant: tenant, Events: doc.Events})
	if err != nil || !job.Success || job.Captured != n {
		e.t.Fatalf("capture: %+v, %v", job, err)
	}
	e.recorded += int64(n)
	e.waitReadable()
}
