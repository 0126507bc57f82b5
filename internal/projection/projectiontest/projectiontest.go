// Package projectiontest is the conformance suite of read-model engines:
// every engine's read models (PostgreSQL, SQLite) must pass Run. Expectations
// are written by hand as literals, never recomputed with the code under test.
package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// ReadModels is what an engine's read models offer.
type ReadModels interface {
	projection.Target
	projection.Leader
	Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error)
	ListEntities(ctx context.Context, q tracking.EntityQuery) (tracking.EntityPage, error)
	Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error)
	ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error)
	MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error)
	// ApplyEvents applies events without a global-log checkpoint, skipping
	// those at or below each stream's applied version (Kafka-fed mode).
	ApplyEvents(ctx context.Context, name string, events []eventstore.Recorded) error
	// MoveCheckpoint moves a bare checkpoint by compare-and-set.
	MoveCheckpoint(ctx context.Context, name string, from, to eventstore.Cursor) error
	// Dump returns every row of the read-model tables (rm_timeline,
	// rm_entities, rm_operation_starts, rm_metric_points and the stream
	// positions, rm_positions_*) as comparable strings in key order.
	Dump(ctx context.Context) (map[string][]string, error)
	// Secret returns the random key stored under name, made by the first
	// caller.
	Secret(ctx context.Context, name string) ([]byte, error)
	// ClaimIdempotencyKey and ReleaseIdempotencyKey bind a tenant's
	// Idempotency-Key to the first request's fingerprint.
	ClaimIdempotencyKey(ctx context.Context, tenant, key string, fingerprint []byte) ([]byte, error)
	ReleaseIdempotencyKey(ctx context.Context, tenant, key string, fingerprint []byte) error
	// Engine returns the engine under the read models: the suite wraps it
	// to make one projection's writes fail inside a real transaction.
	Engine() readmodel.Engine
	// Reset empties a projection's read models and checkpoint: the suite
	// folds the log from scratch with it, to compare.
	Reset(ctx context.Context, name string) error
	// TrimTimeline is retention's trim of the timeline (TrimEPCIS of the
	// EPCIS index, TrimIdempotencyKeys of the keys).
	TrimTimeline(ctx context.Context, before time.Time, dryRun bool) (int64, error)
	TrimEPCIS(ctx context.Context, before time.Time, dryRun bool) (int64, error)
	TrimCaptureJobs(ctx context.Context, before time.Time, dryRun bool) (int64, error)
	TrimIdempotencyKeys(ctx context.Context, now time.Time, dryRun bool) (int64, error)
	// EraseEntity deletes every read-model row of an entity.
	EraseEntity(ctx context.Context, tenant, id string) error
	// EPCISEvents runs an EPCIS query on the EPCIS index; the capture jobs
	// (epcis.Jobs) are kept beside it.
	EPCISEvents(ctx context.Context, tenant string, q epcis.Query, page string, perPage int) (epcis.Page, error)
	// EPCISMatching returns the positions of those of events (a page of
	// the log) that are the tenant's EPCIS events q selects.
	EPCISMatching(ctx context.Context, tenant string, q epcis.Query, events []eventstore.Recorded) ([]int64, error)
	epcis.Jobs
}

// batchSize is small so that every scenario crosses batch boundaries.
const batchSize = 7

// Harness is what an engine gives one subtest: a fresh, empty event store
// and the read models beside it (a new file or database), closed at the
// test's cleanup.
type Harness struct {
	Store      eventstore.Store
	ReadModels ReadModels
	// Sever breaks the read models' connection to their database in the
	// middle of the next reply, for good: what is being read and whatever
	// is read afterwards fails. An engine without a connection to lose
	// (SQLite) closes its database instead.
	Sever func()
}

// Run runs the suite; open returns each subtest's Harness. Subtests run in
// parallel.
func Run(t *testing.T, open func(t *testing.T) Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Timeline", testTimeline},
		{"EntityState", testEntityState},
		{"ListEntities", testListEntities},
		{"TenantIsolation", testTenantIsolation},
		{"Metrics", testMetrics},
		{"DwellPerSite", testDwell},
		{"DwellAfterRetentionAndRebuild", testDwellAfterRetention},
		{"ChildrenOfAnEntity", testChildren},
		{"MetricsPerSiteAndExceptionCounts", testMetricsPerSite},
		{"SiteAfterRetentionAndRebuild", testSiteAfterRetention},
		{"ExactlyOnce", testExactlyOnce},
		{"WideBatchEqualsNarrowOnes", testWideBatch},
		{"CrashRestartEqualsRebuild", testCrashRestart},
		{"ResetAndStatus", testResetAndStatus},
		{"ConcurrentApply", testConcurrentApply},
		{"OneReadOneTransaction", testOneReadOneTransaction},
		{"FailingProjectionHoldsBackNoOther", testFailingProjection},
		{"RebuildOneWhileOthersFollow", testRebuildWhileOthersFollow},
		{"RetentionThenRebuild", testRetentionThenRebuild},
		{"RetentionDuringRebuild", testRetentionDuringRebuild},
		{"ErasureDuringRebuild", testErasureDuringRebuild},
		{"RebuildUnderLoadServesCompleteReads", testRebuildUnderLoad},
		{"TryLead", testTryLead},
		{"RedeliveredStreamsApplyOnce", testRedelivery},
		{"MoveCheckpoint", testMoveCheckpoint},
		{"LimitMustBePositive", testLimitMustBePositive},
		{"ConnectionLostMidRead", testConnectionLost},
		{"SecretsAreMadeOnce", testSecrets},
		{"IdempotencyKeysBindTheFirstRequest", testIdempotencyKeys},
		{"EPCISQuery", testEPCISQuery},
		{"EPCISQueryPaging", testEPCISPaging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := open(t)
			e := newEnv(t, h.Store, h.ReadModels)
			e.sever = h.Sever
			tc.fn(t, e)
		})
	}
}

// Tenants of the scenarios.
const (
	acme    = "acme"
	globex  = "globex"
	initech = "initech" // never has an event
)

// day is the business day of every scenario; at(h, m) is a time on it.
var day = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// env is one subtest's store, read models, service and manager.
type env struct {
	t        *testing.T
	ctx      context.Context
	store    eventstore.Store
	rm       ReadModels
	svc      *tracking.Service
	mgr      *projection.Manager
	recorded int64 // events recorded so far
	// epcisCaptured numbers the EPCIS events captureEPCIS made.
	epcisCaptured int
	sever         func()
}

func newEnv(t *testing.T, store eventstore.Store, rm ReadModels) *env {
	return &env{
		t: t, ctx: t.Context(), store: store, rm: rm,
		svc: tracking.NewService(store, tracking.ServiceOptions{}),
		mgr: newManager(store, rm, rm, projection.Options{}),
	}
}

func newManager(store projection.Feed, target projection.Target, leader projection.Leader, opts projection.Options) *projection.Manager {
	opts.BatchSize = batchSize
	return projection.NewManager(store, target, leader, tracking.Projections(), opts)
}

// step is one command: events about one entity.
type step struct {
	tenant, entity, entityType string
	events                     []tracking.NewEvent
}

func ev(typ string, occurred time.Time, data string) tracking.NewEvent {
	return tracking.NewEvent{Type: typ, OccurredAt: occurred, Data: []byte(data)}
}

func (e *env) record(steps []step) {
	e.t.Helper()
	for _, s := range steps {
		_, err := e.svc.Record(e.ctx, tracking.RecordCommand{
			Tenant: s.tenant, EntityID: s.entity, EntityType: s.entityType, Expected: eventstore.Any,
			Events: s.events, Principal: "tester", Source: "projectiontest",
		})
		if err != nil {
			e.t.Fatalf("record %s/%s: %v", s.tenant, s.entity, err)
		}
		e.recorded += int64(len(s.events))
	}
	e.waitReadable()
}

// waitReadable waits until every recorded event is readable in the global
// log. An engine may hold back committed events while an earlier
// transaction is in flight (PostgreSQL's gap-safe cursor, whose horizon is
// the whole server's oldest running transaction).
func (e *env) waitReadable() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := e.store.Backlog(e.ctx, eventstore.Cursor{})
		if err != nil {
			e.t.Fatalf("backlog: %v", err)
		}
		if b.Events == e.recorded {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of %d recorded events readable after 30s", b.Events, e.recorded)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// catchUp brings every projection to the head of the log.
func (e *env) catchUp(m *projection.Manager) {
	e.t.Helper()
	for _, name := range tracking.Projections() {
		if err := m.CatchUp(e.ctx, name); err != nil {
			e.t.Fatalf("catch up %s: %v", name, err)
		}
	}
}

// until runs step and reads the manager's status until done holds of it,
// for at most ten seconds, and returns the last status read. It is for what
// holds once the projections have caught up with a head that may still move:
// on PostgreSQL the log's head waits for every open transaction of the
// server (in any database), so a catch-up can end short of an event that
// committed just before it.
func (e *env) until(done func([]projection.Status) bool, step func()) []projection.Status {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		step()
		st, err := e.mgr.Status(e.ctx)
		if err != nil {
			e.t.Fatalf("status: %v", err)
		}
		if done(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resetAll resets every projection.
func (e *env) resetAll() {
	e.t.Helper()
	for _, name := range tracking.Projections() {
		if err := e.rm.Reset(e.ctx, name); err != nil {
			e.t.Fatalf("reset %s: %v", name, err)
		}
	}
}

func (e *env) dump() map[string][]string {
	e.t.Helper()
	d, err := e.rm.Dump(e.ctx)
	if err != nil {
		e.t.Fatalf("dump: %v", err)
	}
	return d
}

// rowCounts returns the number of rows of each read-model table but the
// stream positions.
func (e *env) rowCounts() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for table, rows := range e.dump() {
		if !strings.HasPrefix(table, "rm_positions_") {
			out[table] = len(rows)
		}
	}
	return out
}

// wantRows checks the rows of the read-model tables: those want names have
// the given counts, every other table is empty.
func (e *env) wantRows(want map[string]int) {
	e.t.Helper()
	got := e.rowCounts()
	for table, n := range got {
		if _, named := want[table]; !named && n == 0 {
			delete(got, table)
		}
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Fatalf("rows per table = %v, want %v", got, want)
	}
}

func (e *env) checkpoint(name string) eventstore.Cursor {
	e.t.Helper()
	cp, err := e.rm.Checkpoint(e.ctx, name)
	if err != nil {
		e.t.Fatalf("checkpoint %s: %v", name, err)
	}
	return cp.Cursor
}

func (e *env) readAll(after eventstore.Cursor, limit int) []eventstore.Recorded {
	e.t.Helper()
	evs, err := e.store.ReadAll(e.ctx, after, limit)
	if err != nil {
		e.t.Fatalf("read all: %v", err)
	}
	return evs
}

// applyBatch applies the next batch of a projection by hand, as a runner
// would, and returns its size.
func (e *env) applyBatch(name string) int {
	e.t.Helper()
	from := e.checkpoint(name)
	evs := e.readAll(from, batchSize)
	if err := e.rm.Apply(e.ctx, only(name, from), evs); err != nil {
		e.t.Fatalf("apply %s from %s: %v", name, from, err)
	}
	return len(evs)
}

// only is the checkpoint of one projection, for Apply.
func only(name string, from eventstore.Cursor) map[string]eventstore.Cursor {
	return map[string]eventstore.Cursor{name: from}
}

func (e *env) entity(tenant, id string) tracking.EntityState {
	e.t.Helper()
	st, err := e.rm.Entity(e.ctx, tenant, id)
	if err != nil {
		e.t.Fatalf("entity %s/%s: %v", tenant, id, err)
	}
	return st
}

func (e *env) projectedVersion(name, tenant, id string) int64 {
	e.t.Helper()
	v, err := e.rm.ProjectedVersion(e.ctx, name, tenant, id)
	if err != nil {
		e.t.Fatalf("projected version %s %s/%s: %v", name, tenant, id, err)
	}
	return v
}

// sameDump fails the test when two dumps differ, naming the first difference.
func sameDump(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	for table, w := range want {
		g := got[table]
		for i := range max(len(g), len(w)) {
			var gi, wi string
			if i < len(g) {
				gi = g[i]
			}
			if i < len(w) {
				wi = w[i]
			}
			if gi != wi {
				t.Fatalf("%s: %s row %d differs (%d vs %d rows):\n got: %s\nwant: %s", what, table, i, len(g), len(w), gi, wi)
			}
		}
	}
	t.Fatalf("%s: dumps differ: got tables %v, want %v", what, keys(got), keys(want))
}

func keys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ---- Datasets. Each names its entities apart, so they can be combined. ----

// timelineData: 7 events. SHP-1's events arrive out of business order:
// by (occurredAt, version) its timeline is v1 08:00, v5 08:05, v2 08:10,
// v4 08:20, v3 08:30, v6 08:30.
func timelineData() []step {
	return []step{
		{acme, "SHP-1", tracking.EntityShipment, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(8, 0), `{"reference":"S-1"}`),
			ev(tracking.TypeMilestoneReached, at(8, 10), `{"milestone":"picked_up"}`),
		}},
		{acme, "SHP-2", tracking.EntityShipment, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(8, 0), `{}`),
		}},
		{acme, "SHP-1", "", []tracking.NewEvent{
			ev(tracking.TypeLocationReported, at(8, 30), `{"lat":52.1,"lon":5.1}`),
			ev(tracking.TypeMilestoneReached, at(8, 20), `{"milestone":"departed"}`),
			ev("x-note", at(8, 5), `{"text":"late note"}`),
		}},
		{acme, "SHP-1", "", []tracking.NewEvent{
			ev(tracking.TypeLocationReported, at(8, 30), `{"lat":52.2,"lon":5.2}`),
		}},
	}
}

// entityData: 20 events; PKG-1 gets 12 of them, several late.
func entityData() []step {
	return []step{
		{acme, "PKG-1", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(8, 0), `{"reference":"R-1","origin":"Amsterdam","destination":"Utrecht"}`), // v1
			ev(tracking.TypeMilestoneReached, at(9, 0), `{"milestone":"out_for_delivery","siteId":"AMS","location":{"lat":52,"lon":4}}`),
		}},
		{acme, "CNT-1", tracking.EntityContainer, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(8, 0), `{}`),
		}},
		{acme, "PKG-1", "", []tracking.NewEvent{
			ev(tracking.TypeLocationReported, at(9, 30), `{"lat":51.5,"lon":3.5,"siteId":"RTM"}`), // v3
			ev(tracking.TypeLocationReported, at(9, 10), `{"lat":50.5,"lon":2.5,"siteId":"OLD"}`), // v4, late scan
			ev(tracking.TypeMilestoneReached, at(8, 30), `{"milestone":"picked_up"}`),             // v5, late
		}},
		{acme, "PKG-2", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(8, 0), `{}`),
			ev(tracking.TypeMilestoneReached, at(10, 0), `{"milestone":"delivered"}`),
		}},
		{acme, "PKG-1", "", []tracking.NewEvent{
			ev(tracking.TypeExceptionRaised, at(9, 40), `{"exceptionId":"EX-1","code":"delay","severity":"high"}`), // v6
			ev(tracking.TypeExceptionRaised, at(9, 45), `{"exceptionId":"EX-2","code":"damage","severity":"low","description":"dented box"}`),
		}},
		{acme, "PKG-3", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeEntityRegistered, at(8, 0), `{}`),
		}},
		{acme, "PKG-1", "", []tracking.NewEvent{
			ev(tracking.TypeExceptionResolved, at(9, 50), `{"exceptionId":"EX-1"}`),                 // v8
			ev(tracking.TypeEtaUpdated, at(9, 20), `{"eta":"2025-03-10T12:00:00Z","source":"tms"}`), // v9
		}},
		{acme, "PKG-2", "", []tracking.NewEvent{
			ev(tracking.TypeMilestoneReached, at(9, 0), `{"milestone":"out_for_delivery"}`), // late
		}},
		{acme, "PKG-4", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeMilestoneReached, at(9, 0), `{"milestone":"out_for_delivery"}`),
		}},
		{acme, "PKG-1", "", []tracking.NewEvent{
			ev(tracking.TypeEtaUpdated, at(9, 5), `{"eta":"2025-03-10T11:00:00Z"}`), // v10, late
			ev(tracking.TypeEntityAssociated, at(9, 15), `{"parentId":"CNT-1"}`),    // v11
			ev(tracking.TypeEntityDissociated, at(9, 12), `{"parentId":"CNT-1"}`),   // v12, older than v11
		}},
		{acme, "SHP-5", tracking.EntityShipment, []tracking.NewEvent{
			ev(tracking.TypeMilestoneReached, at(8, 0), `{"milestone":"departed"}`),
		}},
		{globex, "PKG-1", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeMilestoneReached, at(10, 0), `{"milestone":"delivered"}`),
		}},
	}
}

func started(op, id string, t time.Time) tracking.NewEvent {
	return ev(tracking.TypeOperationStarted, t, fmt.Sprintf(`{"operation":%q,"operationId":%q}`, op, id))
}

func completed(op, id, outcome string, t time.Time) tracking.NewEvent {
	return ev(tracking.TypeOperationCompleted, t, fmt.Sprintf(`{"operation":%q,"operationId":%q,"outcome":%q}`, op, id, outcome))
}

func milestone(name string, t, planned time.Time) tracking.NewEvent {
	if planned.IsZero() {
		return ev(tracking.TypeMilestoneReached, t, fmt.Sprintf(`{"milestone":%q}`, name))
	}
	return ev(tracking.TypeMilestoneReached, t, fmt.Sprintf(`{"milestone":%q,"plannedAt":%q}`, name, planned.Format(time.RFC3339)))
}

// metricsStarts: 6 events, the starts of operations completed in
// metricsRest (so that their completions find the starts in the table).
func metricsStarts() []step {
	return []step{
		{acme, "PKG-A", tracking.EntityPackage, []tracking.NewEvent{started("loading", "op-1", at(8, 0))}},
		{acme, "PKG-B", tracking.EntityPackage, []tracking.NewEvent{
			started("loading", "op-1", at(8, 20)),
			started("sorting", "op-2", at(8, 30)),
			started("loading", "op-3", at(9, 10)),
		}},
		{acme, "PKG-C", tracking.EntityPackage, []tracking.NewEvent{started("loading", "op-1", at(8, 40))}},
		{acme, "CNT-M", tracking.EntityContainer, []tracking.NewEvent{started("loading", "op-1", at(8, 0))}},
	}
}

// metricsRest: 24 events. Operation durations (completion's hour):
// package loading 60, 120, 180, 240 (failed), 600 (08h); 300, 900 (09h);
// 600 (10h); package sorting 300 (08h); container loading 3000 (08h); one
// loading of PKG-C stays open. Delivered delays: -600, 900, 1800, 3540
// (08h); departed 600 (09h). globex: loading 420, delivered 1800.
func metricsRest() []step {
	const ok, failed = tracking.OutcomeSucceeded, tracking.OutcomeFailed
	return []step{
		{acme, "PKG-A", "", []tracking.NewEvent{
			completed("loading", "op-1", ok, at(8, 1)), // 60 s
			started("loading", "op-2", at(8, 10)),
			completed("loading", "op-2", ok, at(8, 12)), // 120 s
		}},
		{acme, "PKG-A", "", []tracking.NewEvent{
			started("loading", "op-3", at(9, 0)),
			completed("loading", "op-3", ok, at(9, 5)), // 300 s
		}},
		{acme, "PKG-B", "", []tracking.NewEvent{
			completed("loading", "op-1", ok, at(8, 23)), // 180 s
			completed("sorting", "op-2", ok, at(8, 35)), // 300 s
			completed("loading", "op-3", ok, at(9, 25)), // 900 s
		}},
		{acme, "PKG-C", "", []tracking.NewEvent{
			completed("loading", "op-1", failed, at(8, 44)), // 240 s
			started("loading", "op-2", at(8, 45)),
			completed("loading", "op-2", ok, at(8, 55)), // 600 s
			started("loading", "op-3", at(10, 0)),
			completed("loading", "op-3", ok, at(10, 10)), // 600 s
		}},
		{acme, "PKG-C", "", []tracking.NewEvent{started("loading", "op-4", at(10, 20))}},      // stays open
		{acme, "CNT-M", "", []tracking.NewEvent{completed("loading", "op-1", ok, at(8, 50))}}, // 3000 s
		{acme, "PKG-M1", tracking.EntityPackage, []tracking.NewEvent{
			milestone("delivered", at(8, 30), at(8, 40)), // -600 s
			milestone("departed", at(9, 10), at(9, 0)),   // 600 s
			milestone("arrived", at(9, 20), time.Time{}), // not planned: no point
		}},
		{acme, "PKG-M2", tracking.EntityPackage, []tracking.NewEvent{milestone("delivered", at(8, 45), at(8, 30))}}, // 900 s
		{acme, "PKG-M3", tracking.EntityPackage, []tracking.NewEvent{milestone("delivered", at(8, 50), at(8, 20))}}, // 1800 s
		{acme, "PKG-M4", tracking.EntityPackage, []tracking.NewEvent{milestone("delivered", at(8, 59), at(8, 0))}},  // 3540 s
		{globex, "PKG-A", tracking.EntityPackage, []tracking.NewEvent{
			started("loading", "op-1", at(8, 0)),
			completed("loading", "op-1", ok, at(8, 7)), // 420 s
		}},
		{globex, "PKG-A", "", []tracking.NewEvent{milestone("delivered", at(8, 30), at(8, 0))}}, // 1800 s
	}
}

// allData is every dataset: 7 + 20 + 6 + 24 = 57 events.
func allData() []step {
	return slices.Concat(timelineData(), entityData(), metricsStarts(), metricsRest())
}

// ---- Timeline ----

func testTimeline(t *testing.T, e *env) {
	e.record(timelineData())
	e.catchUp(e.mgr)

	page, err := e.rm.Timeline(e.ctx, tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-1", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		version    int64
		typ        string
		occurredAt time.Time
		data       string
	}{
		{1, tracking.TypeEntityRegistered, at(8, 0), `{"reference":"S-1"}`},
		{5, "x-note", at(8, 5), `{"text":"late note"}`},
		{2, tracking.TypeMilestoneReached, at(8, 10), `{"milestone":"picked_up"}`},
		{4, tracking.TypeMilestoneReached, at(8, 20), `{"milestone":"departed"}`},
		{3, tracking.TypeLocationReported, at(8, 30), `{"lat":52.1,"lon":5.1}`},
		{6, tracking.TypeLocationReported, at(8, 30), `{"lat":52.2,"lon":5.2}`},
	}
	if len(page.Entries) != len(want) || page.Next != nil {
		t.Fatalf("timeline: %d entries, next %v; want %d, no next", len(page.Entries), page.Next, len(want))
	}
	ids := map[string]bool{}
	for i, w := range want {
		g := page.Entries[i]
		if g.Version != w.version || g.Type != w.typ || !g.OccurredAt.Equal(w.occurredAt) || !eventstore.JSONEqual(g.Data, []byte(w.data)) {
			t.Errorf("entry %d = v%d %s %s %s, want v%d %s %s %s", i, g.Version, g.Type, g.OccurredAt, g.Data, w.version, w.typ, w.occurredAt, w.data)
		}
		if g.OccurredAt.Location() != time.UTC || g.RecordedAt.IsZero() || g.RecordedAt.Location() != time.UTC {
			t.Errorf("entry %d: occurredAt %v, recordedAt %v: want UTC times", i, g.OccurredAt, g.RecordedAt)
		}
		if g.Metadata.Principal != "tester" || g.Metadata.Source != "projectiontest" {
			t.Errorf("entry %d: metadata %+v", i, g.Metadata)
		}
		ids[g.EventID.String()] = true
	}
	if len(ids) != len(want) {
		t.Errorf("event ids not distinct: %v", ids)
	}

	// The entries are the stored events.
	stored, err := e.store.ReadStream(e.ctx, acme, "SHP-1", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stored {
		if !ids[s.ID.String()] {
			t.Errorf("stored event v%d %s is not on the timeline", s.Version, s.ID)
		}
		for _, g := range page.Entries {
			if g.EventID == s.ID && (g.Version != s.Version || !g.RecordedAt.Equal(s.RecordedAt) || g.Metadata != s.Metadata) {
				t.Errorf("entry %s = v%d recorded %s %+v, stored v%d recorded %s %+v",
					g.EventID, g.Version, g.RecordedAt, g.Metadata, s.Version, s.RecordedAt, s.Metadata)
			}
		}
	}

	cases := []struct {
		name     string
		from, to time.Time
		limit    int
		pages    [][]int64 // versions of each page
	}{
		{"all", time.Time{}, time.Time{}, 100, [][]int64{{1, 5, 2, 4, 3, 6}}},
		{"from and to", at(8, 5), at(8, 30), 100, [][]int64{{5, 2, 4}}},
		{"from only", at(8, 10), time.Time{}, 100, [][]int64{{2, 4, 3, 6}}},
		{"to only, exclusive", time.Time{}, at(8, 5), 100, [][]int64{{1}}},
		{"empty range", at(8, 10), at(8, 10), 100, [][]int64{{}}},
		{"after the last event", at(8, 31), time.Time{}, 100, [][]int64{{}}},
		{"pages of 2", time.Time{}, time.Time{}, 2, [][]int64{{1, 5}, {2, 4}, {3, 6}}},
		{"pages of 3, exact fit", time.Time{}, time.Time{}, 3, [][]int64{{1, 5, 2}, {4, 3, 6}}},
		{"pages of 4 in a range", at(8, 5), at(8, 31), 4, [][]int64{{5, 2, 4, 3}, {6}}},
		{"pages of 1", time.Time{}, time.Time{}, 1, [][]int64{{1}, {5}, {2}, {4}, {3}, {6}}},
		{"pages of 1 through a tie", at(8, 30), time.Time{}, 1, [][]int64{{3}, {6}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-1", From: tc.from, To: tc.to, Limit: tc.limit}
			if got := timelinePages(t, e, q); !reflect.DeepEqual(got, tc.pages) {
				t.Fatalf("pages = %v, want %v", got, tc.pages)
			}
		})
	}

	// The cursor of a page is its last entry.
	p1, err := e.rm.Timeline(e.ctx, tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-1", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p1.Next == nil || !p1.Next.OccurredAt.Equal(at(8, 5)) || p1.Next.Version != 5 {
		t.Fatalf("next of the first page of 2 = %+v, want 08:05 v5", p1.Next)
	}

	for _, tc := range []struct {
		name, tenant, id string
		want             int64
	}{
		{tracking.ProjectionTimeline, acme, "SHP-1", 6},
		{tracking.ProjectionEntities, acme, "SHP-1", 6},
		{tracking.ProjectionTimeline, acme, "SHP-2", 1},
		{tracking.ProjectionEntities, acme, "SHP-2", 1},
		{tracking.ProjectionTimeline, acme, "NOPE", 0},
		{tracking.ProjectionEntities, globex, "SHP-1", 0},
		{tracking.ProjectionMetrics, acme, "SHP-1", 6},
	} {
		if got := e.projectedVersion(tc.name, tc.tenant, tc.id); got != tc.want {
			t.Errorf("projected version %s %s/%s = %d, want %d", tc.name, tc.tenant, tc.id, got, tc.want)
		}
	}
	if _, err := e.rm.ProjectedVersion(e.ctx, "nope", acme, "SHP-1"); !errors.Is(err, projection.ErrUnknownProjection) {
		t.Errorf("projected version of an unknown projection: %v, want ErrUnknownProjection", err)
	}
	e.wantRows(map[string]int{"rm_timeline": 7, "rm_entities": 2, "rm_operation_starts": 0, "rm_metric_points": 0})
}

// timelinePages follows Next to the end and returns each page's versions.
func timelinePages(t *testing.T, e *env, q tracking.TimelineQuery) [][]int64 {
	t.Helper()
	var out [][]int64
	for range 50 {
		page, err := e.rm.Timeline(e.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		vs := []int64{}
		for _, en := range page.Entries {
			vs = append(vs, en.Version)
		}
		out = append(out, vs)
		if page.Next == nil {
			return out
		}
		if last := page.Entries[len(page.Entries)-1]; !page.Next.OccurredAt.Equal(last.OccurredAt) || page.Next.Version != last.Version {
			t.Fatalf("next %+v is not the page's last entry (%s v%d)", page.Next, last.OccurredAt, last.Version)
		}
		q.After = page.Next
	}
	t.Fatalf("timeline paging does not end: %v", out)
	return nil
}

// ---- Entity state ----

func testEntityState(t *testing.T, e *env) {
	e.record(entityData())
	e.catchUp(e.mgr)

	got := e.entity(acme, "PKG-1")
	eta := at(12, 0)
	registered := at(8, 0)
	want := tracking.EntityState{
		EntityID: "PKG-1", EntityType: tracking.EntityPackage, Version: 12,
		Status:       tracking.StatusOutForDelivery, // the late picked_up (v5) does not win
		LastLocation: &tracking.LastLocation{Lat: 51.5, Lon: 3.5, SiteID: "RTM", OccurredAt: at(9, 30)},
		OpenExceptions: []tracking.OpenException{
			{ExceptionID: "EX-2", Code: "damage", Severity: "low", Description: "dented box", RaisedAt: at(9, 45)},
		},
		ETA:          &eta,    // the late 11:00 estimate (v10) does not win
		ParentID:     "CNT-1", // the dissociation (v12) is older than the association
		UpdatedAt:    got.UpdatedAt,
		RegisteredAt: &registered,
		Reference:    "R-1", Origin: "Amsterdam", Destination: "Utrecht",
	}
	if got.UpdatedAt.IsZero() {
		t.Errorf("updatedAt is zero")
	}
	if !sameState(got, want) {
		t.Fatalf("PKG-1 =\n %+v\nwant\n %+v", got, want)
	}

	for _, tc := range []struct {
		tenant, id, typ, status string
		version                 int64
		parent                  string
	}{
		{acme, "CNT-1", tracking.EntityContainer, tracking.StatusRegistered, 1, ""},
		{acme, "PKG-2", tracking.EntityPackage, tracking.StatusDelivered, 3, ""}, // late out_for_delivery ignored
		{acme, "PKG-3", tracking.EntityPackage, tracking.StatusRegistered, 1, ""},
		{acme, "PKG-4", tracking.EntityPackage, tracking.StatusOutForDelivery, 1, ""},
		{acme, "SHP-5", tracking.EntityShipment, tracking.StatusInTransit, 1, ""},
		{globex, "PKG-1", tracking.EntityPackage, tracking.StatusDelivered, 1, ""},
	} {
		st := e.entity(tc.tenant, tc.id)
		if st.EntityID != tc.id || st.EntityType != tc.typ || st.Status != tc.status || st.Version != tc.version ||
			st.ParentID != tc.parent || st.OpenExceptions == nil || len(st.OpenExceptions) != 0 || st.LastLocation != nil {
			t.Errorf("%s/%s = %+v, want type %s status %s version %d", tc.tenant, tc.id, st, tc.typ, tc.status, tc.version)
		}
	}
	for _, k := range []struct{ tenant, id string }{{acme, "NOPE"}, {initech, "PKG-1"}, {globex, "CNT-1"}} {
		if _, err := e.rm.Entity(e.ctx, k.tenant, k.id); !errors.Is(err, tracking.ErrNotFound) {
			t.Errorf("entity %s/%s: %v, want ErrNotFound", k.tenant, k.id, err)
		}
	}
	e.wantRows(map[string]int{"rm_timeline": 20, "rm_entities": 7, "rm_operation_starts": 0, "rm_metric_points": 2})

	// Applied one batch at a time, from scratch, the result is the same.
	before := e.dump()
	if err := e.rm.Reset(e.ctx, tracking.ProjectionEntities); err != nil {
		t.Fatal(err)
	}
	for e.applyBatch(tracking.ProjectionEntities) > 0 {
	}
	sameDump(t, "entities rebuilt batch by batch", e.dump(), before)
}

// sameState compares states as values (times with Equal).
func sameState(a, b tracking.EntityState) bool {
	norm := func(s tracking.EntityState) tracking.EntityState {
		utc := func(p *time.Time) *time.Time {
			if p == nil {
				return nil
			}
			u := p.UTC()
			return &u
		}
		s.UpdatedAt = s.UpdatedAt.UTC()
		s.ETA, s.RegisteredAt = utc(s.ETA), utc(s.RegisteredAt)
		s.PlannedDeparture, s.PlannedArrival = utc(s.PlannedDeparture), utc(s.PlannedArrival)
		if s.LastLocation != nil {
			l := *s.LastLocation
			l.OccurredAt = l.OccurredAt.UTC()
			s.LastLocation = &l
		}
		ex := slices.Clone(s.OpenExceptions)
		for i := range ex {
			ex[i].RaisedAt = ex[i].RaisedAt.UTC()
		}
		s.OpenExceptions = ex
		return s
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func testListEntities(t *testing.T, e *env) {
	e.record(entityData())
	e.catchUp(e.mgr)

	cases := []struct {
		name  string
		q     tracking.EntityQuery
		pages [][]string
	}{
		{"all", tracking.EntityQuery{Tenant: acme, Limit: 10},
			[][]string{{"CNT-1", "PKG-1", "PKG-2", "PKG-3", "PKG-4", "SHP-5"}}},
		{"packages by 3", tracking.EntityQuery{Tenant: acme, EntityType: tracking.EntityPackage, Limit: 3},
			[][]string{{"PKG-1", "PKG-2", "PKG-3"}, {"PKG-4"}}},
		{"packages by 2, exact fit", tracking.EntityQuery{Tenant: acme, EntityType: tracking.EntityPackage, Limit: 2},
			[][]string{{"PKG-1", "PKG-2"}, {"PKG-3", "PKG-4"}}},
		{"all by 4", tracking.EntityQuery{Tenant: acme, Limit: 4},
			[][]string{{"CNT-1", "PKG-1", "PKG-2", "PKG-3"}, {"PKG-4", "SHP-5"}}},
		{"out for delivery by 1", tracking.EntityQuery{Tenant: acme, Status: tracking.StatusOutForDelivery, Limit: 1},
			[][]string{{"PKG-1"}, {"PKG-4"}}},
		{"registered", tracking.EntityQuery{Tenant: acme, Status: tracking.StatusRegistered, Limit: 10},
			[][]string{{"CNT-1", "PKG-3"}}},
		{"registered packages", tracking.EntityQuery{Tenant: acme, EntityType: tracking.EntityPackage, Status: tracking.StatusRegistered, Limit: 10},
			[][]string{{"PKG-3"}}},
		{"delivered", tracking.EntityQuery{Tenant: acme, Status: tracking.StatusDelivered, Limit: 10},
			[][]string{{"PKG-2"}}},
		{"in transit", tracking.EntityQuery{Tenant: acme, Status: tracking.StatusInTransit, Limit: 10},
			[][]string{{"SHP-5"}}},
		{"no vehicles", tracking.EntityQuery{Tenant: acme, EntityType: tracking.EntityVehicle, Limit: 10},
			[][]string{{}}},
		{"after a cursor", tracking.EntityQuery{Tenant: acme, After: "PKG-2", Limit: 10},
			[][]string{{"PKG-3", "PKG-4", "SHP-5"}}},
		{"globex", tracking.EntityQuery{Tenant: globex, Limit: 10},
			[][]string{{"PKG-1"}}},
		{"initech", tracking.EntityQuery{Tenant: initech, Limit: 10},
			[][]string{{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := entityPages(t, e, tc.q); !reflect.DeepEqual(got, tc.pages) {
				t.Fatalf("pages = %v, want %v", got, tc.pages)
			}
		})
	}

	// Items are the entities' states.
	page, err := e.rm.ListEntities(e.ctx, tracking.EntityQuery{Tenant: acme, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range page.Items {
		if st := e.entity(acme, it.EntityID); !sameState(it, st) {
			t.Errorf("listed %s = %+v, entity = %+v", it.EntityID, it, st)
		}
	}
}

// entityPages follows Next to the end and returns each page's entity ids.
func entityPages(t *testing.T, e *env, q tracking.EntityQuery) [][]string {
	t.Helper()
	var out [][]string
	for range 50 {
		page, err := e.rm.ListEntities(e.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, it := range page.Items {
			ids = append(ids, it.EntityID)
		}
		out = append(out, ids)
		if page.Next == "" {
			return out
		}
		if last := ids[len(ids)-1]; page.Next != last {
			t.Fatalf("next %q is not the page's last item %q", page.Next, last)
		}
		q.After = page.Next
	}
	t.Fatalf("entity paging does not end: %v", out)
	return nil
}

func testTenantIsolation(t *testing.T, e *env) {
	e.record(timelineData())
	e.record(metricsStarts())
	e.record(metricsRest())
	// globex has an SHP-1 of its own.
	e.record([]step{{globex, "SHP-1", tracking.EntityShipment, []tracking.NewEvent{
		ev(tracking.TypeMilestoneReached, at(9, 0), `{"milestone":"delivered"}`),
	}}})
	e.catchUp(e.mgr)

	for _, tc := range []struct {
		tenant   string
		timeline []int64
		status   string // of SHP-1; "" = not found
		entities int
		ops      int // operation points in [08:00, 11:00)
		miles    int
	}{
		{acme, []int64{1, 5, 2, 4, 3, 6}, tracking.StatusInTransit, 10, 10, 5},
		{globex, []int64{1}, tracking.StatusDelivered, 2, 1, 1},
		{initech, []int64{}, "", 0, 0, 0},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			if got := timelinePages(t, e, tracking.TimelineQuery{Tenant: tc.tenant, EntityID: "SHP-1", Limit: 100}); !reflect.DeepEqual(got, [][]int64{tc.timeline}) {
				t.Errorf("timeline of SHP-1 = %v, want %v", got, tc.timeline)
			}
			if got := e.projectedVersion(tracking.ProjectionTimeline, tc.tenant, "SHP-1"); got != int64(len(tc.timeline)) {
				t.Errorf("projected timeline version = %d, want %d", got, len(tc.timeline))
			}
			st, err := e.rm.Entity(e.ctx, tc.tenant, "SHP-1")
			switch {
			case tc.status == "" && !errors.Is(err, tracking.ErrNotFound):
				t.Errorf("entity SHP-1: %v, want ErrNotFound", err)
			case tc.status != "" && (err != nil || st.Status != tc.status):
				t.Errorf("entity SHP-1: %+v, %v; want status %s", st, err, tc.status)
			}
			page, err := e.rm.ListEntities(e.ctx, tracking.EntityQuery{Tenant: tc.tenant, Limit: 100})
			if err != nil || len(page.Items) != tc.entities {
				t.Errorf("list: %d entities, %v; want %d", len(page.Items), err, tc.entities)
			}
			for kind, want := range map[string]int{tracking.MetricOperation: tc.ops, tracking.MetricMilestone: tc.miles} {
				s, err := e.rm.MetricSamples(e.ctx, tracking.MetricsQuery{Tenant: tc.tenant, Kind: kind, From: at(8, 0), To: at(11, 0), Interval: time.Hour})
				if err != nil || len(s) != want {
					t.Errorf("%s samples: %d, %v; want %d", kind, len(s), err, want)
				}
			}
		})
	}
}

// ---- Metrics ----

// bucket is an expected metric bucket; onTime < 0 means "no on-time rate".
type bucket struct {
	start                        time.Time
	count                        int
	avg, min, max, p50, p95, p99 float64
	onTime                       float64
}

func testMetrics(t *testing.T, e *env) {
	// The starts are applied first: their completions, later, find them in
	// the table (and, with batches of 7, some in an earlier batch).
	e.record(metricsStarts())
	e.catchUp(e.mgr)
	e.wantRows(map[string]int{"rm_timeline": 6, "rm_entities": 4, "rm_operation_starts": 6, "rm_metric_points": 0})
	e.record(metricsRest())
	e.catchUp(e.mgr)
	// 10 operations and 5 milestones in acme, 2 points in globex; PKG-C's
	// op-4 is still open.
	e.wantRows(map[string]int{"rm_timeline": 30, "rm_entities": 9, "rm_operation_starts": 1, "rm_metric_points": 17})

	op, ms := tracking.MetricOperation, tracking.MetricMilestone
	cases := []struct {
		name     string
		q        tracking.MetricsQuery
		samples  []float64 // sorted values
		expected []bucket
	}{
		{"package loading, hourly",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "package", Name: "loading", From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{60, 120, 180, 240, 300, 600, 900},
			[]bucket{
				// [60 120 180 240 600]: p95 = 240 + 0.8*(600-240), p99 = 240 + 0.96*360
				{at(8, 0), 5, 240, 60, 600, 180, 528, 585.6, -1},
				// [300 900]: p50 = 300 + 0.5*600, p95 = 300 + 0.95*600, p99 = 300 + 0.99*600
				{at(9, 0), 2, 600, 300, 900, 600, 870, 894, -1},
			}},
		{"package loading, up to noon",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "package", Name: "loading", From: at(8, 0), To: at(12, 0), Interval: time.Hour},
			[]float64{60, 120, 180, 240, 300, 600, 600, 900},
			[]bucket{
				{at(8, 0), 5, 240, 60, 600, 180, 528, 585.6, -1},
				{at(9, 0), 2, 600, 300, 900, 600, 870, 894, -1},
				{at(10, 0), 1, 600, 600, 600, 600, 600, 600, -1},
			}},
		{"package loading, two-hour buckets",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "package", Name: "loading", From: at(8, 0), To: at(10, 0), Interval: 2 * time.Hour},
			[]float64{60, 120, 180, 240, 300, 600, 900},
			[]bucket{
				// 7 values, sum 2400; p95 = 600 + 0.7*300, p99 = 600 + 0.94*300
				{at(8, 0), 7, 2400.0 / 7, 60, 900, 240, 810, 882, -1},
			}},
		{"loading of any entity type",
			tracking.MetricsQuery{Tenant: acme, Kind: op, Name: "loading", From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{60, 120, 180, 240, 300, 600, 900, 3000},
			[]bucket{
				// [60 120 180 240 600 3000]: p50 = 180 + 0.5*60, p95 = 600 + 0.75*2400, p99 = 600 + 0.95*2400
				{at(8, 0), 6, 700, 60, 3000, 210, 2400, 2880, -1},
				{at(9, 0), 2, 600, 300, 900, 600, 870, 894, -1},
			}},
		{"package sorting",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "package", Name: "sorting", From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{300},
			[]bucket{{at(8, 0), 1, 300, 300, 300, 300, 300, 300, -1}}},
		{"every package operation",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "package", From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{60, 120, 180, 240, 300, 300, 600, 900},
			[]bucket{
				// [60 120 180 240 300 600]: p50 = 180 + 0.5*60, p95 = 300 + 0.75*300, p99 = 300 + 0.95*300
				{at(8, 0), 6, 250, 60, 600, 210, 525, 585, -1},
				{at(9, 0), 2, 600, 300, 900, 600, 870, 894, -1},
			}},
		{"container operations",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "container", From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{3000},
			[]bucket{{at(8, 0), 1, 3000, 3000, 3000, 3000, 3000, 3000, -1}}},
		{"delivered punctuality",
			tracking.MetricsQuery{Tenant: acme, Kind: ms, EntityType: "package", Name: "delivered", From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{-600, 900, 1800, 3540},
			[]bucket{
				// sum 5640; p50 = 900 + 0.5*900, p95 = 1800 + 0.85*1740, p99 = 1800 + 0.97*1740;
				// on time (delay <= 900 s): -600 and 900
				{at(8, 0), 4, 1410, -600, 3540, 1350, 3279, 3487.8, 0.5},
			}},
		{"every milestone",
			tracking.MetricsQuery{Tenant: acme, Kind: ms, From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{-600, 600, 900, 1800, 3540},
			[]bucket{
				{at(8, 0), 4, 1410, -600, 3540, 1350, 3279, 3487.8, 0.5},
				{at(9, 0), 1, 600, 600, 600, 600, 600, 600, 1},
			}},
		{"globex",
			tracking.MetricsQuery{Tenant: globex, Kind: op, From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{420},
			[]bucket{{at(8, 0), 1, 420, 420, 420, 420, 420, 420, -1}}},
		{"globex punctuality",
			tracking.MetricsQuery{Tenant: globex, Kind: ms, From: at(8, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{1800},
			[]bucket{{at(8, 0), 1, 1800, 1800, 1800, 1800, 1800, 1800, 0}}},
		{"initech", tracking.MetricsQuery{Tenant: initech, Kind: op, From: at(0, 0), To: at(24, 0), Interval: time.Hour}, nil, nil},
		{"initech punctuality", tracking.MetricsQuery{Tenant: initech, Kind: ms, From: at(0, 0), To: at(24, 0), Interval: time.Hour}, nil, nil},
		{"no vehicles", tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: "vehicle", From: at(0, 0), To: at(24, 0), Interval: time.Hour}, nil, nil},
		{"before the day", tracking.MetricsQuery{Tenant: acme, Kind: op, From: at(-24, 0), To: at(8, 1), Interval: time.Hour}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkMetrics(t, e, tc.q, tc.samples, tc.expected) })
	}
}

// checkMetrics checks the values of the points q selects (sorted) and
// their buckets.
func checkMetrics(t *testing.T, e *env, q tracking.MetricsQuery, values []float64, expected []bucket) {
	t.Helper()
	samples, err := e.rm.MetricSamples(e.ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	vals := []float64{}
	for _, s := range samples {
		vals = append(vals, s.Value)
	}
	slices.Sort(vals)
	if !floatsEqual(vals, values) {
		t.Fatalf("samples = %v, want %v", vals, values)
	}
	got := tracking.Buckets(samples, q.Interval, q.Kind == tracking.MetricMilestone, 15*time.Minute)
	if len(got) != len(expected) {
		t.Fatalf("%d buckets %+v, want %d", len(got), got, len(expected))
	}
	for i, w := range expected {
		checkBucket(t, i, got[i], w)
	}
}

func checkBucket(t *testing.T, i int, g tracking.MetricBucket, w bucket) {
	t.Helper()
	ok := g.Start.Equal(w.start) && g.Count == w.count
	for _, p := range [][2]float64{{g.Avg, w.avg}, {g.Min, w.min}, {g.Max, w.max}, {g.P50, w.p50}, {g.P95, w.p95}, {g.P99, w.p99}} {
		ok = ok && near(p[0], p[1])
	}
	switch {
	case w.onTime < 0:
		ok = ok && g.OnTimeRate == nil
	default:
		ok = ok && g.OnTimeRate != nil && near(*g.OnTimeRate, w.onTime)
	}
	if !ok {
		rate := "nil"
		if g.OnTimeRate != nil {
			rate = fmt.Sprint(*g.OnTimeRate)
		}
		t.Errorf("bucket %d = %+v (on time %s), want %+v", i, g, rate, w)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

func floatsEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

// ---- Exactly once ----

// testWideBatch: batches of hundreds of entities of two tenants (an
// engine may read and write them many rows per statement) make the same
// read models as batches of seven. The first wide batch creates every
// entity; the second adds to each, so that every projection reads back
// what the first wrote for all of them at once: positions, states (a
// location and a parent only the first batch reports) and starts (every
// entity leaves the site the first batch saw it arrive at, some complete
// an operation started then).
func testWideBatch(t *testing.T, e *env) {
	const entities = 730
	round := func(r int) int {
		var cmds []tracking.RecordCommand
		n := 0
		for i := range entities {
			tenant := acme
			if i%25 == 0 {
				tenant = globex
			}
			id := fmt.Sprintf("urn:epc:id:sgtin:0614141.107346.%d", i)
			var events []tracking.NewEvent
			site := fmt.Sprintf(`"siteId":"urn:epc:id:sgln:0614141.00777.%d"`, i%3)
			switch r {
			case 1: // arrives at a site, where it is seen; some start loading, some are put on pallets
				events = append(events, ev(tracking.TypeMilestoneReached, at(8, i%60), `{"milestone":"arrived",`+site+`}`),
					ev(tracking.TypeLocationReported, at(8, 59), fmt.Sprintf(`{"lat":52.%d,"lon":5.1}`, i)))
				if i%50 == 1 {
					events = append(events, started("loading", fmt.Sprintf("op-%d", i), at(9, 0)))
				}
				if i%7 == 0 {
					events = append(events, ev(tracking.TypeEntityAssociated, at(9, 5), fmt.Sprintf(`{"parentId":"PALLET-%d"}`, i%4)))
				}
			case 2: // leaves it (a dwell ends), loading completed
				if i%50 == 1 {
					events = append(events, completed("loading", fmt.Sprintf("op-%d", i), "succeeded", at(9, 20)))
				}
				events = append(events, ev(tracking.TypeMilestoneReached, at(11, i%60), `{"milestone":"departed",`+site+`}`))
			}
			cmds = append(cmds, tracking.RecordCommand{Tenant: tenant, EntityID: id, EntityType: tracking.EntityPackage,
				Expected: eventstore.Any, Events: events, Principal: "tester", Source: "projectiontest"})
			n += len(events)
		}
		for i, out := range e.svc.RecordBatch(e.ctx, cmds) {
			if out.Err != nil {
				t.Fatalf("record %s: %v", cmds[i].EntityID, out.Err)
			}
		}
		e.recorded += int64(n)
		e.waitReadable()
		return n
	}
	first := round(1)
	total := first + round(2)
	all := e.readAll(eventstore.Cursor{}, 10*total)
	if len(all) != total {
		t.Fatalf("%d events in the log, want %d", len(all), total)
	}
	from := map[string]eventstore.Cursor{}
	for _, name := range tracking.Projections() {
		from[name] = eventstore.Cursor{}
	}
	for _, batch := range [][]eventstore.Recorded{all[:first], all[first:]} {
		if err := e.rm.Apply(e.ctx, from, batch); err != nil {
			t.Fatal(err)
		}
		for name := range from {
			from[name] = batch[len(batch)-1].Cursor
		}
	}
	wide := e.dump()
	if counts := e.rowCounts(); counts["rm_entities"] != entities || counts["rm_timeline"] != total {
		t.Fatalf("after two wide batches: %v, want %d entities and %d timeline rows", counts, entities, total)
	}
	if st := e.entity(acme, "urn:epc:id:sgtin:0614141.107346.301"); st.Version != 6 || st.ParentID != "PALLET-1" || st.LastLocation == nil {
		t.Fatalf("an entity with six events, a location and a parent: %+v", st)
	}
	e.resetAll()
	e.catchUp(e.mgr) // batches of seven
	sameDump(t, "two wide batches vs batches of seven", wide, e.dump())
}

func testExactlyOnce(t *testing.T, e *env) {
	e.record(allData())
	var zero eventstore.Cursor

	// The same batch twice: the second Apply, from the old checkpoint, is
	// refused and changes nothing.
	for _, name := range tracking.Projections() {
		batch := e.readAll(zero, batchSize)
		if err := e.rm.Apply(e.ctx, only(name, zero), batch); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
		if got := e.checkpoint(name); got != batch[len(batch)-1].Cursor {
			t.Fatalf("%s: checkpoint %s after a batch ending at %s", name, got, batch[len(batch)-1].Cursor)
		}
		before := e.dump()
		if err := e.rm.Apply(e.ctx, only(name, zero), batch); !errors.Is(err, projection.ErrCheckpointMoved) {
			t.Fatalf("%s: second apply of a batch: %v, want ErrCheckpointMoved", name, err)
		}
		// A stale runner with the next batch is refused too.
		if err := e.rm.Apply(e.ctx, only(name, zero), e.readAll(batch[len(batch)-1].Cursor, batchSize)); !errors.Is(err, projection.ErrCheckpointMoved) {
			t.Fatalf("%s: apply from a stale checkpoint: %v, want ErrCheckpointMoved", name, err)
		}
		sameDump(t, name+": refused applies", e.dump(), before)
		if got := e.checkpoint(name); got != batch[len(batch)-1].Cursor {
			t.Fatalf("%s: checkpoint moved to %s by refused applies", name, got)
		}
	}

	e.catchUp(e.mgr)
	full := e.dump()
	e.wantRows(map[string]int{"rm_timeline": 57, "rm_entities": 18, "rm_operation_starts": 1, "rm_metric_points": 19})

	// Re-delivery: events already applied, offered again from the current
	// checkpoint (the whole log, its start, a slice with operation starts
	// whose completions were applied), change nothing, nor the checkpoint.
	all := e.readAll(zero, 1000)
	if len(all) != 57 {
		t.Fatalf("%d events in the log, want 57", len(all))
	}
	for _, name := range tracking.Projections() {
		cp := e.checkpoint(name)
		if cp != all[len(all)-1].Cursor {
			t.Fatalf("%s: checkpoint %s after catching up, head %s", name, cp, all[len(all)-1].Cursor)
		}
		for _, redelivered := range [][]eventstore.Recorded{all, all[:batchSize], all[27:36], all[len(all)-1:]} {
			if err := e.rm.Apply(e.ctx, only(name, cp), redelivered); err != nil {
				t.Fatalf("%s: re-delivery: %v", name, err)
			}
			sameDump(t, name+": re-delivery", e.dump(), full)
			if got := e.checkpoint(name); got != cp {
				t.Fatalf("%s: re-delivery moved the checkpoint from %s to %s", name, cp, got)
			}
		}
	}

	// A batch that overlaps what was applied applies only the new events.
	e.record([]step{
		{acme, "PKG-C", "", []tracking.NewEvent{completed("loading", "op-4", tracking.OutcomeSucceeded, at(10, 30))}},
		{acme, "SHP-1", "", []tracking.NewEvent{ev(tracking.TypeMilestoneReached, at(10, 0), `{"milestone":"delivered"}`)}},
	})
	for _, name := range tracking.Projections() {
		cp := e.checkpoint(name)
		fresh := e.readAll(cp, 100)
		if len(fresh) != 2 {
			t.Fatalf("%d new events, want 2", len(fresh))
		}
		if err := e.rm.Apply(e.ctx, only(name, cp), slices.Concat(all[len(all)-3:], fresh)); err != nil {
			t.Fatalf("%s: overlapping batch: %v", name, err)
		}
		if got := e.checkpoint(name); got != fresh[1].Cursor {
			t.Fatalf("%s: checkpoint %s after an overlapping batch, want %s", name, got, fresh[1].Cursor)
		}
	}
	// op-4 completed after 10 minutes; SHP-1 was delivered.
	e.wantRows(map[string]int{"rm_timeline": 59, "rm_entities": 18, "rm_operation_starts": 0, "rm_metric_points": 20})
	if st := e.entity(acme, "SHP-1"); st.Status != tracking.StatusDelivered || st.Version != 7 {
		t.Fatalf("SHP-1 = %s v%d, want delivered v7", st.Status, st.Version)
	}
	after := e.dump()
	e.resetAll()
	e.catchUp(e.mgr)
	sameDump(t, "rebuild after overlapping batches", e.dump(), after)
}

// ---- Crash and restart ----

func testCrashRestart(t *testing.T, e *env) {
	e.record(timelineData())
	e.catchUp(e.mgr)

	// More events; the runner "crashes" after two batches of each projection.
	e.record(entityData())
	for _, name := range tracking.Projections() {
		ctx, cancel := context.WithCancel(e.ctx)
		batches := 0
		crashing := newManager(e.store, e.rm, e.rm, projection.Options{OnApplied: func(string, []eventstore.Recorded) {
			if batches++; batches == 2 {
				cancel()
			}
		}})
		err := crashing.CatchUp(ctx, name) // stops at the first step after the cancel
		cancel()
		if err == nil {
			t.Fatalf("%s: catch-up canceled after two batches returned no error", name)
		}
	}
	head := e.readAll(eventstore.Cursor{}, 1000)
	for _, name := range tracking.Projections() {
		cp := e.checkpoint(name)
		// 7 events, then two batches of 7, of 27 in all.
		if want := head[20].Cursor; cp != want {
			t.Fatalf("%s: checkpoint after the crash %s, want %s (21 events applied)", name, cp, want)
		}
	}

	// Yet more events, and one batch applied by hand.
	e.record(metricsStarts())
	e.record(metricsRest())
	for _, name := range tracking.Projections() {
		if n := e.applyBatch(name); n != batchSize {
			t.Fatalf("%s: applied %d, want %d", name, n, batchSize)
		}
	}

	// Restart: a new manager catches up.
	restarted := newManager(e.store, e.rm, e.rm, projection.Options{})
	e.catchUp(restarted)
	caughtUp := e.dump()
	e.wantRows(map[string]int{"rm_timeline": 57, "rm_entities": 18, "rm_operation_starts": 1, "rm_metric_points": 19})

	// Rebuild from scratch: the same tables. Until the rebuilds are
	// switched in, the live read models are untouched.
	for _, name := range tracking.Projections() {
		if err := restarted.Rebuild(e.ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	sameDump(t, "live read models while rebuilding", e.dump(), caughtUp)
	e.catchUp(restarted)
	sameDump(t, "rebuild after a crash", e.dump(), caughtUp)
}

// ---- Reset and status ----

func testResetAndStatus(t *testing.T, e *env) {
	e.record(timelineData()) // 7 events
	e.record(metricsStarts())
	e.record(metricsRest()) // 30 more
	checkLag := func(want map[string]int64) {
		t.Helper()
		st, err := e.mgr.Status(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, s := range st {
			got[s.Name] = s.LagEvents
			if s.LagSeconds < 0 || s.LagEvents == 0 && s.LagSeconds != 0 {
				t.Errorf("%s: lag %d events, %f seconds", s.Name, s.LagEvents, s.LagSeconds)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("lag = %v, want %v", got, want)
		}
	}
	tl, en, me, ep := tracking.ProjectionTimeline, tracking.ProjectionEntities, tracking.ProjectionMetrics, tracking.ProjectionEPCIS
	checkLag(map[string]int64{tl: 37, en: 37, me: 37, ep: 37})
	if err := e.mgr.CatchUp(e.ctx, tl); err != nil {
		t.Fatal(err)
	}
	checkLag(map[string]int64{tl: 0, en: 37, me: 37, ep: 37})
	e.catchUp(e.mgr)
	checkLag(map[string]int64{tl: 0, en: 0, me: 0, ep: 0})
	full := e.dump()
	e.wantRows(map[string]int{"rm_timeline": 37, "rm_entities": 11, "rm_operation_starts": 1, "rm_metric_points": 17})

	// Each reset empties its own tables and checkpoint only.
	if err := e.rm.Reset(e.ctx, tl); err != nil {
		t.Fatal(err)
	}
	if e.checkpoint(tl) != (eventstore.Cursor{}) {
		t.Fatalf("timeline checkpoint %s after reset", e.checkpoint(tl))
	}
	e.wantRows(map[string]int{"rm_timeline": 0, "rm_entities": 11, "rm_operation_starts": 1, "rm_metric_points": 17})
	if p := timelinePages(t, e, tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-1", Limit: 10}); !reflect.DeepEqual(p, [][]int64{{}}) {
		t.Fatalf("timeline after reset: %v", p)
	}
	if v := e.projectedVersion(tl, acme, "SHP-1"); v != 0 {
		t.Fatalf("projected timeline version after reset: %d", v)
	}
	if v := e.projectedVersion(en, acme, "SHP-1"); v != 6 {
		t.Fatalf("projected entity version after timeline reset: %d, want 6", v)
	}
	checkLag(map[string]int64{tl: 37, en: 0, me: 0, ep: 0})

	if err := e.rm.Reset(e.ctx, en); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rm.Entity(e.ctx, acme, "SHP-1"); !errors.Is(err, tracking.ErrNotFound) {
		t.Fatalf("entity after reset: %v", err)
	}
	if p := entityPages(t, e, tracking.EntityQuery{Tenant: acme, Limit: 10}); !reflect.DeepEqual(p, [][]string{{}}) {
		t.Fatalf("entities after reset: %v", p)
	}
	if err := e.rm.Reset(e.ctx, me); err != nil {
		t.Fatal(err)
	}
	if s, err := e.rm.MetricSamples(e.ctx, tracking.MetricsQuery{Tenant: acme, Kind: tracking.MetricOperation, From: at(0, 0), To: at(24, 0)}); err != nil || len(s) != 0 {
		t.Fatalf("metric samples after reset: %v, %v", s, err)
	}
	if err := e.rm.Reset(e.ctx, ep); err != nil {
		t.Fatal(err)
	}
	e.wantRows(map[string]int{"rm_timeline": 0, "rm_entities": 0, "rm_operation_starts": 0, "rm_metric_points": 0})
	for _, name := range tracking.Projections() {
		if cp := e.checkpoint(name); cp != (eventstore.Cursor{}) {
			t.Fatalf("%s: checkpoint %s after reset", name, cp)
		}
	}
	checkLag(map[string]int64{tl: 37, en: 37, me: 37, ep: 37})
	if err := e.rm.Reset(e.ctx, "nope"); !errors.Is(err, projection.ErrUnknownProjection) {
		t.Fatalf("reset of an unknown projection: %v", err)
	}

	e.catchUp(e.mgr)
	checkLag(map[string]int64{tl: 0, en: 0, me: 0, ep: 0})
	sameDump(t, "caught up again after reset", e.dump(), full)
}

// ---- Concurrent runners ----

// countingTarget records which events each successful Apply applied to
// each projection, and the projections of each refused Apply. For each
// projection, the first two Applies that include it meet before either goes
// on, so that two runners apply a batch from the same checkpoint: the
// contention the checkpoints' compare-and-set must settle happens in every
// round.
type countingTarget struct {
	ReadModels
	mu      sync.Mutex
	applied map[string]map[eventstore.Cursor]int
	refused map[string]int
	arrived map[string]int
	met     map[string]chan struct{}
}

func newCountingTarget(rm ReadModels) *countingTarget {
	c := &countingTarget{ReadModels: rm, applied: map[string]map[eventstore.Cursor]int{},
		refused: map[string]int{}, arrived: map[string]int{}, met: map[string]chan struct{}{}}
	for _, name := range tracking.Projections() {
		c.applied[name] = map[eventstore.Cursor]int{}
		c.met[name] = make(chan struct{})
	}
	return c
}

func (c *countingTarget) Apply(ctx context.Context, from map[string]eventstore.Cursor, events []eventstore.Recorded) error {
	var meet []chan struct{}
	c.mu.Lock()
	for name := range from {
		c.arrived[name]++
		switch c.arrived[name] {
		case 1:
			meet = append(meet, c.met[name])
		case 2:
			close(c.met[name])
		}
	}
	c.mu.Unlock()
	for _, met := range meet {
		select {
		case <-met:
		case <-time.After(30 * time.Second): // the other runner never came: the test says so below
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := c.ReadModels.Apply(ctx, from, events)
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, cp := range from {
		switch {
		case err == nil:
			for _, ev := range events {
				if cp.Less(ev.Cursor) {
					c.applied[name][ev.Cursor]++
				}
			}
		case errors.Is(err, projection.ErrCheckpointMoved):
			c.refused[name]++
		}
	}
	return err
}

// testConcurrentApply: two runners catch up at once, each reading batches
// for every projection (and, in one round, one runner per projection
// beside a runner of all): no event is applied twice to a projection.
func testConcurrentApply(t *testing.T, e *env) {
	e.record(allData())
	all := e.readAll(eventstore.Cursor{}, 1000)
	rounds := []struct {
		name    string
		runners [][]string // the projections each runner catches up
	}{
		{"two runners of all", [][]string{nil, nil}},
		{"a runner of all and one per projection", [][]string{nil,
			{tracking.ProjectionTimeline}, {tracking.ProjectionEntities}, {tracking.ProjectionMetrics}}},
		{"two runners of all again", [][]string{nil, nil}},
	}
	for _, round := range rounds {
		ct := newCountingTarget(e.rm)
		var wg sync.WaitGroup
		errs := make(chan error, len(round.runners))
		for _, names := range round.runners {
			m := newManager(e.store, ct, e.rm, projection.Options{})
			wg.Go(func() { errs <- m.CatchUp(e.ctx, names...) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("%s: concurrent catch-up: %v", round.name, err)
			}
		}
		// The runners met on each projection's first batch: one applied
		// it, the checkpoint refused the other; and every event was
		// applied exactly once to each projection.
		for _, name := range tracking.Projections() {
			if ct.refused[name] == 0 {
				t.Fatalf("%s: %s: no apply was refused by the checkpoint, though two runners applied the same batch", round.name, name)
			}
			if len(ct.applied[name]) != len(all) {
				t.Fatalf("%s: %s: %d distinct events applied, want %d", round.name, name, len(ct.applied[name]), len(all))
			}
			for _, ev := range all {
				if n := ct.applied[name][ev.Cursor]; n != 1 {
					t.Fatalf("%s: %s: event %s applied %d times", round.name, name, ev.Cursor, n)
				}
			}
		}
		concurrent := e.dump()
		e.wantRows(map[string]int{"rm_timeline": 57, "rm_entities": 18, "rm_operation_starts": 1, "rm_metric_points": 19})
		e.resetAll()
		e.catchUp(newManager(e.store, e.rm, e.rm, projection.Options{}))
		sameDump(t, round.name+": single runner after concurrent runners", e.dump(), concurrent)
		e.resetAll()
	}
}

// ---- One reader for every projection ----

// countingFeed counts the events read from the log.
type countingFeed struct {
	projection.Feed
	read atomic.Int64
}

func (f *countingFeed) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	evs, err := f.Feed.ReadAll(ctx, after, limit)
	f.read.Add(int64(len(evs)))
	return evs, err
}

// appliedLog records, in order, what OnApplied reports.
type appliedLog struct {
	mu      sync.Mutex
	entries []applied
}

type applied struct {
	name    string
	cursors []eventstore.Cursor
}

func (l *appliedLog) add(name string, events []eventstore.Recorded) {
	a := applied{name: name}
	for _, e := range events {
		a.cursors = append(a.cursors, e.Cursor)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, a)
}

// all returns what was applied, in order.
func (l *appliedLog) all() []applied {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// cursors returns every cursor applied to a projection, in order.
func (l *appliedLog) cursors(name string) []eventstore.Cursor {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []eventstore.Cursor
	for _, a := range l.entries {
		if a.name == name {
			out = append(out, a.cursors...)
		}
	}
	return out
}

func cursorsOf(events []eventstore.Recorded) []eventstore.Cursor {
	out := make([]eventstore.Cursor, len(events))
	for i, e := range events {
		out[i] = e.Cursor
	}
	return out
}

// testOneReadOneTransaction: the runner reads each event from the log once
// for all projections, and a batch and the checkpoints of every
// projection it serves commit together: when one projection's writes fail,
// nothing of the batch is kept, in any projection.
func testOneReadOneTransaction(t *testing.T, e *env) {
	e.record(allData())
	all := e.readAll(eventstore.Cursor{}, 1000)

	// One transaction: the metrics projection's writes fail after the
	// entities projection's (projections apply in name order), before the
	// timeline's.
	failing := readmodel.New(failingEngine{Engine: e.rm.Engine(), projection: tracking.ProjectionMetrics}, "failing")
	from := map[string]eventstore.Cursor{}
	for _, name := range tracking.Projections() {
		from[name] = eventstore.Cursor{}
	}
	if err := failing.Apply(e.ctx, from, all[:30]); !errors.Is(err, errInjected) {
		t.Fatalf("apply with failing metrics writes: %v, want the injected error", err)
	}
	for _, name := range tracking.Projections() {
		if cp := e.checkpoint(name); cp != (eventstore.Cursor{}) {
			t.Fatalf("%s: checkpoint %s after a failed batch, want it unmoved", name, cp)
		}
		if v := e.projectedVersion(name, acme, "SHP-1"); v != 0 {
			t.Fatalf("%s: projected version %d after a failed batch", name, v)
		}
	}
	e.wantRows(map[string]int{"rm_timeline": 0, "rm_entities": 0, "rm_operation_starts": 0, "rm_metric_points": 0})

	// One read: catching up every projection reads each event once and
	// applies it once to each.
	feed := &countingFeed{Feed: e.store}
	var log appliedLog
	m := newManager(feed, e.rm, e.rm, projection.Options{OnApplied: log.add})
	if err := m.CatchUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := feed.read.Load(); n != int64(len(all)) {
		t.Fatalf("%d events read from the log to catch up %d projections on %d events, want each read once", n, len(tracking.Projections()), len(all))
	}
	for _, name := range tracking.Projections() {
		if got := log.cursors(name); !slices.Equal(got, cursorsOf(all)) {
			t.Fatalf("%s: applied %v, want every event once, in order", name, got)
		}
		if cp := e.checkpoint(name); cp != all[len(all)-1].Cursor {
			t.Fatalf("%s: checkpoint %s, want the head %s", name, cp, all[len(all)-1].Cursor)
		}
	}
	e.wantRows(map[string]int{"rm_timeline": 57, "rm_entities": 18, "rm_operation_starts": 1, "rm_metric_points": 19})
}

// errInjected is the failure failingEngine injects.
var errInjected = errors.New("projectiontest: injected failure")

// failingEngine is a real engine whose transactions fail as soon as one
// projection writes its own tables.
type failingEngine struct {
	readmodel.Engine
	projection string
}

func (f failingEngine) Update(ctx context.Context, derived bool, fn func(readmodel.Tx) error) error {
	return f.Engine.Update(ctx, derived, func(tx readmodel.Tx) error { return fn(failingTx{tx, f.projection}) })
}

type failingTx struct {
	readmodel.Tx
	projection string
}

func (t failingTx) fail(name string) error {
	if name == t.projection {
		return errInjected
	}
	return nil
}

func (t failingTx) InsertTimeline(ctx context.Context, table string, events []eventstore.Recorded, fresh bool) error {
	if err := t.fail(tracking.ProjectionTimeline); err != nil {
		return err
	}
	return t.Tx.InsertTimeline(ctx, table, events, fresh)
}

func (t failingTx) UpsertEntities(ctx context.Context, table string, rows []readmodel.EntityRow) error {
	if err := t.fail(tracking.ProjectionEntities); err != nil {
		return err
	}
	return t.Tx.UpsertEntities(ctx, table, rows)
}

func (t failingTx) UpsertOperationStarts(ctx context.Context, table string, starts []tracking.OperationStart) error {
	if err := t.fail(tracking.ProjectionMetrics); err != nil {
		return err
	}
	return t.Tx.UpsertOperationStarts(ctx, table, starts)
}

func (t failingTx) InsertMetricPoints(ctx context.Context, table string, points []tracking.MetricPoint, fresh bool) error {
	if err := t.fail(tracking.ProjectionMetrics); err != nil {
		return err
	}
	return t.Tx.InsertMetricPoints(ctx, table, points, fresh)
}

// testFailingProjection: a projection whose every batch fails holds back
// none of the others (they follow the head), its status says why, and
// once it works again it catches up to the same tables as a rebuild.
func testFailingProjection(t *testing.T, e *env) {
	e.record(slices.Concat(metricsStarts(), metricsRest(), timelineData(), entityData())) // a metrics write in every batch
	broken := tracking.ProjectionMetrics
	failing := readmodel.New(failingEngine{Engine: e.rm.Engine(), projection: broken}, "failing")
	m := newManager(e.store, failing, e.rm, projection.Options{MaxBackoff: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	head := e.readAll(eventstore.Cursor{}, 1000)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := m.Status(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for _, s := range st {
			if s.Name == broken {
				ok = ok && s.LastError != "" && s.LagEvents == int64(len(head)) && s.Active
			} else {
				ok = ok && s.LastError == "" && s.LagEvents == 0 && s.Active
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %+v; want every projection but %s caught up, and %s reporting its error", st, broken, broken)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	if err := e.mgr.CatchUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	caughtUp := e.dump()
	e.resetAll()
	e.catchUp(e.mgr)
	sameDump(t, "caught up after a failing projection vs rebuilt", caughtUp, e.dump())
}

// testRebuildWhileOthersFollow: while one projection replays the log from
// the start, the others apply new events without waiting for it; once it
// has caught up, every batch is read once for all of them again.
func testRebuildWhileOthersFollow(t *testing.T, e *env) {
	e.record(allData())
	e.catchUp(e.mgr)

	rebuilt := tracking.ProjectionEntities
	if err := e.mgr.Rebuild(e.ctx, rebuilt); err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.Rebuild(e.ctx, rebuilt); !errors.Is(err, projection.ErrRebuildInProgress) {
		t.Fatalf("a second rebuild of %s: %v, want ErrRebuildInProgress", rebuilt, err)
	}
	// The live read models serve on, whole, while the rebuild is built beside them.
	e.wantRows(map[string]int{"rm_timeline": 57, "rm_entities": 18, "rm_operation_starts": 1, "rm_metric_points": 19})
	old := e.readAll(eventstore.Cursor{}, 1000)
	e.record([]step{
		{acme, "PKG-C", "", []tracking.NewEvent{completed("loading", "op-4", tracking.OutcomeSucceeded, at(10, 30))}},
		{acme, "SHP-1", "", []tracking.NewEvent{ev(tracking.TypeMilestoneReached, at(10, 0), `{"milestone":"delivered"}`)}},
	})
	fresh := e.readAll(old[len(old)-1].Cursor, 100)

	var log appliedLog
	m := newManager(e.store, e.rm, e.rm, projection.Options{OnApplied: log.add})
	if err := m.CatchUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(old, fresh)
	for _, name := range append(tracking.Projections(), projection.Shadow(rebuilt)) {
		want := cursorsOf(fresh)
		if name == projection.Shadow(rebuilt) {
			want = cursorsOf(all)
		}
		if got := log.cursors(name); !slices.Equal(got, want) {
			t.Fatalf("%s: applied %v, want %v", name, got, want)
		}
	}
	// The live projections had the new events before the rebuild had
	// replayed half of the log.
	var replayed int
	for _, a := range log.all() {
		if a.name == projection.Shadow(rebuilt) {
			replayed += len(a.cursors)
			continue
		}
		if replayed >= len(all)/2 {
			t.Fatalf("%s applied the new events after %d of %d events replayed into %s: the rebuild held it back", a.name, replayed, len(all), rebuilt)
		}
	}
	if st := e.entity(acme, "SHP-1"); st.Status != tracking.StatusDelivered || st.Version != 7 {
		t.Fatalf("rebuilt SHP-1 = %s v%d, want delivered v7", st.Status, st.Version)
	}
	// CatchUp switched the rebuild in: a new generation, none in progress.
	if r, err := e.rm.Rebuilding(e.ctx); err != nil || len(r) != 0 {
		t.Fatalf("rebuilds in progress after CatchUp: %v, %v", r, err)
	}
	if cp, err := e.rm.Checkpoint(e.ctx, rebuilt); err != nil || cp.Generation != 1 {
		t.Fatalf("%s generation after the rebuild: %d, %v; want 1", rebuilt, cp.Generation, err)
	}

	// Caught up, the projections share one read again: the runner reads
	// the next events once and applies them to all.
	e.record([]step{{globex, "PKG-9", tracking.EntityPackage, []tracking.NewEvent{
		ev(tracking.TypeEntityRegistered, at(11, 0), `{}`),
		ev(tracking.TypeMilestoneReached, at(11, 5), `{"milestone":"picked_up"}`),
	}}})
	next := e.readAll(fresh[len(fresh)-1].Cursor, 100)
	feed := &countingFeed{Feed: e.store}
	var merged appliedLog
	runner := newManager(feed, e.rm, e.rm, projection.Options{OnApplied: merged.add})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { runner.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer wcancel()
	if err := runner.WaitPast(wctx); err != nil {
		t.Fatalf("waiting for the runner: %v", err)
	}
	cancel()
	<-done // its OnApplied calls, which follow the commit WaitPast saw, are made
	if n := feed.read.Load(); n != int64(len(next)) {
		t.Fatalf("%d events read from the log for %d new ones: want each read once for every projection", n, len(next))
	}
	for _, name := range tracking.Projections() {
		if got := merged.cursors(name); !slices.Equal(got, cursorsOf(next)) {
			t.Fatalf("%s: applied %v, want %v", name, got, cursorsOf(next))
		}
	}

	// The same tables as a rebuild of everything.
	after := e.dump()
	e.resetAll()
	e.catchUp(e.mgr)
	sameDump(t, "rebuilt while the others followed vs rebuilt together", after, e.dump())
}

// ---- Leadership ----

func testTryLead(t *testing.T, e *env) {
	name := tracking.ProjectionTimeline
	lost, release, ok, err := e.rm.TryLead(e.ctx, name)
	if err != nil || !ok {
		t.Fatalf("first TryLead: ok %v, %v", ok, err)
	}
	for range 2 {
		if _, rel, ok, err := e.rm.TryLead(e.ctx, name); ok || err != nil {
			if ok {
				rel()
			}
			t.Fatalf("second TryLead while held: ok %v, %v; want false, nil", ok, err)
		}
	}
	// Another projection is led independently.
	_, relOther, ok, err := e.rm.TryLead(e.ctx, tracking.ProjectionMetrics)
	if err != nil || !ok {
		t.Fatalf("TryLead of another projection: ok %v, %v", ok, err)
	}
	relOther()
	if lost != nil {
		select {
		case <-lost:
			t.Fatal("leadership reported lost while held")
		default:
		}
	}
	release()

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, rel, ok, err := e.rm.TryLead(e.ctx, name)
		if err != nil {
			t.Fatalf("TryLead after release: %v", err)
		}
		if ok {
			rel()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TryLead still fails after release")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testRedelivery: a Kafka-fed projection gets each partition's events in
// stream order, but after a crash it gets a suffix again. Applying the log in
// overlapping windows through ApplyEvents must equal applying it once.
func testRedelivery(t *testing.T, e *env) {
	e.record(allData())
	var zero eventstore.Cursor
	all := e.readAll(zero, 1000)
	for _, name := range tracking.Projections() {
		for start := 0; start < len(all); start += 5 {
			end := min(len(all), start+9) // windows of 9 moving by 5: every event twice or more
			if err := e.rm.ApplyEvents(e.ctx, name, all[start:end]); err != nil {
				t.Fatalf("%s: apply events: %v", name, err)
			}
		}
		if err := e.rm.ApplyEvents(e.ctx, name, all); err != nil { // everything once more
			t.Fatalf("%s: apply events: %v", name, err)
		}
	}
	redelivered := e.dump()
	e.resetAll()
	e.catchUp(e.mgr)
	sameDump(t, "redelivered vs once", redelivered, e.dump())
}

func testMoveCheckpoint(t *testing.T, e *env) {
	a := eventstore.Cursor{TxID: 0, Position: 3}
	b := eventstore.Cursor{TxID: 0, Position: 9}
	if err := e.rm.MoveCheckpoint(e.ctx, "relay", eventstore.Cursor{}, a); err != nil {
		t.Fatalf("first move: %v", err)
	}
	if err := e.rm.MoveCheckpoint(e.ctx, "relay", eventstore.Cursor{}, b); !errors.Is(err, projection.ErrCheckpointMoved) {
		t.Fatalf("move from a stale cursor: %v, want ErrCheckpointMoved", err)
	}
	if err := e.rm.MoveCheckpoint(e.ctx, "relay", a, b); err != nil {
		t.Fatalf("second move: %v", err)
	}
	if got := e.checkpoint("relay"); got != b {
		t.Fatalf("checkpoint = %v, want %v", got, b)
	}
}

// A page of zero (or fewer) items is a caller's mistake, never a panic or
// an empty page that claims more follow.
func testLimitMustBePositive(t *testing.T, e *env) {
	e.record(timelineData())
	e.catchUp(e.mgr)
	for _, limit := range []int{0, -1} {
		if _, err := e.rm.ListEntities(e.ctx, tracking.EntityQuery{Tenant: acme, Limit: limit}); !errors.Is(err, tracking.ErrInvalid) {
			t.Errorf("ListEntities(limit %d) = %v, want ErrInvalid", limit, err)
		}
		if _, err := e.rm.Timeline(e.ctx, tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-1", Limit: limit}); !errors.Is(err, tracking.ErrInvalid) {
			t.Errorf("Timeline(limit %d) = %v, want ErrInvalid", limit, err)
		}
	}
}

// A connection lost in the middle of a reply is unavailability (a 503 the
// client retries), on every read path, never an unclassified error (a 500).
func testConnectionLost(t *testing.T, e *env) {
	if e.sever == nil {
		t.Fatal("the engine's harness has no Sever")
	}
	// A timeline whose reply spans many network packets.
	payload := `{"note": "` + strings.Repeat("x", 1000) + `"}`
	events := make([]tracking.NewEvent, 300)
	for i := range events {
		events[i] = ev("x-note", at(8, 0).Add(time.Duration(i)*time.Second), payload)
	}
	e.record([]step{{acme, "SHP-LONG", "shipment", append([]tracking.NewEvent{ev(tracking.TypeEntityRegistered, at(7, 0), `{}`)}, events...)}})
	e.catchUp(e.mgr)
	if page, err := e.rm.Timeline(e.ctx, tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-LONG", Limit: 1000}); err != nil || len(page.Entries) != 301 {
		t.Fatalf("timeline before the cut: %d entries, %v", len(page.Entries), err)
	}

	e.sever()
	reads := []struct {
		name string
		read func() error
	}{
		{"Timeline", func() error {
			_, err := e.rm.Timeline(e.ctx, tracking.TimelineQuery{Tenant: acme, EntityID: "SHP-LONG", Limit: 1000})
			return err
		}},
		{"ListEntities", func() error {
			_, err := e.rm.ListEntities(e.ctx, tracking.EntityQuery{Tenant: acme, Limit: 100})
			return err
		}},
		{"Entity", func() error { _, err := e.rm.Entity(e.ctx, acme, "SHP-LONG"); return err }},
		{"ProjectedVersion", func() error {
			_, err := e.rm.ProjectedVersion(e.ctx, tracking.ProjectionTimeline, acme, "SHP-LONG")
			return err
		}},
		{"MetricSamples", func() error {
			_, err := e.rm.MetricSamples(e.ctx, tracking.MetricsQuery{Tenant: acme, Kind: tracking.MetricOperation, From: day, To: day.Add(24 * time.Hour)})
			return err
		}},
		{"Checkpoint", func() error { _, err := e.rm.Checkpoint(e.ctx, tracking.ProjectionTimeline); return err }},
	}
	for _, r := range reads {
		if err := r.read(); !errors.Is(err, eventstore.ErrUnavailable) {
			t.Errorf("%s after the connection was lost = %v, want ErrUnavailable", r.name, err)
		}
	}
}

// testSecrets: callers racing for a key all get the one stored first, a
// later caller gets it again, and another name has its own key.
func testSecrets(t *testing.T, e *env) {
	const callers = 8
	keys := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { keys[i], errs[i] = e.rm.Secret(e.ctx, "cursor-key") })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if len(keys[i]) != 32 || !slices.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got key %x, caller 0 %x: every caller must get the first key stored", i, keys[i], keys[0])
		}
	}
	again, err := e.rm.Secret(e.ctx, "cursor-key")
	if err != nil || !slices.Equal(again, keys[0]) {
		t.Fatalf("asked again: %x, %v; want %x", again, err, keys[0])
	}
	other, err := e.rm.Secret(e.ctx, "another-key")
	if err != nil || len(other) != 32 || slices.Equal(other, keys[0]) {
		t.Fatalf("another name: %x, %v; want a key of its own", other, err)
	}
}

// testIdempotencyKeys: the first fingerprint claimed binds the key, per
// tenant, until released by its own fingerprint.
func testIdempotencyKeys(t *testing.T, e *env) {
	first, second := []byte("first request"), []byte("second request")
	claim := func(tenant string, fp []byte, want []byte) {
		t.Helper()
		got, err := e.rm.ClaimIdempotencyKey(e.ctx, tenant, "key-1", fp)
		if err != nil || string(got) != string(want) {
			t.Fatalf("claim %q by %s: bound to %q, %v; want %q", fp, tenant, got, err, want)
		}
	}
	claim(acme, first, first)
	claim(acme, second, first)
	claim(globex, second, second) // another tenant's key
	if err := e.rm.ReleaseIdempotencyKey(e.ctx, acme, "key-1", second); err != nil {
		t.Fatal(err)
	}
	claim(acme, second, first) // released by another request: still bound
	if err := e.rm.ReleaseIdempotencyKey(e.ctx, acme, "key-1", first); err != nil {
		t.Fatal(err)
	}
	claim(acme, second, second)
}
