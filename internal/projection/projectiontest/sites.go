package projectiontest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// startedAt and completedAt are an operation's start and completion at a
// site ("" for none).
func startedAt(op, id, site string, t time.Time) tracking.NewEvent {
	if site == "" {
		return started(op, id, t)
	}
	return ev(tracking.TypeOperationStarted, t, fmt.Sprintf(`{"operation":%q,"operationId":%q,"siteId":%q}`, op, id, site))
}

func completedAt(op, id, site string, t time.Time) tracking.NewEvent {
	if site == "" {
		return completed(op, id, tracking.OutcomeSucceeded, t)
	}
	return ev(tracking.TypeOperationCompleted, t, fmt.Sprintf(`{"operation":%q,"operationId":%q,"outcome":"succeeded","siteId":%q}`, op, id, site))
}

func raised(id, code string, t time.Time) tracking.NewEvent {
	return ev(tracking.TypeExceptionRaised, t, fmt.Sprintf(`{"exceptionId":%q,"code":%q,"severity":"high"}`, id, code))
}

// siteData: 25 events. Operation durations by site (the completion's,
// else the start's): loading at DC-1 600 (PKG-S1, 08h), 1800 (PKG-S1,
// whose completion names no site, 08h), 2400 (container, 08h); loading
// at DC-2 300 (PKG-S2, started nowhere, 08h), 1200 (PKG-S2, started at
// DC-1, completed at DC-2, 09h); sorting at DC-1 180 (08h); loading at no
// site 60 (09h); PKG-S4's loading at DC-1 stays open. Milestones:
// departed at DC-1 600 s late (09h), delivered nowhere 600 s early (09h).
// Exceptions raised: delay 08:15, damage 08:45, delay 09:05 (packages),
// delay 09:59 (container); globex delay 08:15. A resolution is no
// exception raised.
func siteData() []step {
	const dc1, dc2 = "DC-1", "DC-2"
	return []step{
		{acme, "PKG-S1", tracking.EntityPackage, []tracking.NewEvent{
			startedAt("loading", "op-1", dc1, at(8, 0)),
			completedAt("loading", "op-1", dc1, at(8, 10)), // 600 s at DC-1
			raised("EX-1", "delay", at(8, 15)),
			startedAt("loading", "op-2", dc1, at(8, 20)),
		}},
		{acme, "PKG-S2", tracking.EntityPackage, []tracking.NewEvent{
			startedAt("loading", "op-1", "", at(8, 0)),
			completedAt("loading", "op-1", dc2, at(8, 5)), // 300 s at DC-2
			raised("EX-1", "damage", at(8, 45)),
		}},
		{acme, "PKG-S1", "", []tracking.NewEvent{
			completedAt("loading", "op-2", "", at(8, 50)), // 1800 s at DC-1, the start's site
			ev(tracking.TypeExceptionResolved, at(9, 0), `{"exceptionId":"EX-1"}`),
		}},
		{acme, "PKG-S2", "", []tracking.NewEvent{
			startedAt("loading", "op-2", dc1, at(9, 0)),
			raised("EX-2", "delay", at(9, 5)),
			completedAt("loading", "op-2", dc2, at(9, 20)), // 1200 s at DC-2, the completion's site
		}},
		{acme, "PKG-S3", tracking.EntityPackage, []tracking.NewEvent{
			startedAt("sorting", "op-1", dc1, at(8, 30)),
			completedAt("sorting", "op-1", "", at(8, 33)), // 180 s at DC-1
			startedAt("loading", "op-2", "", at(9, 0)),
			completedAt("loading", "op-2", "", at(9, 1)), // 60 s, no site
		}},
		{acme, "CNT-S1", tracking.EntityContainer, []tracking.NewEvent{
			startedAt("loading", "op-1", dc1, at(8, 0)),
			completedAt("loading", "op-1", dc1, at(8, 40)), // 2400 s at DC-1
			raised("EX-1", "delay", at(9, 59)),
		}},
		{acme, "PKG-S4", tracking.EntityPackage, []tracking.NewEvent{
			ev(tracking.TypeMilestoneReached, at(9, 10), `{"milestone":"departed","siteId":"DC-1","plannedAt":"2025-03-10T09:00:00Z"}`),
			milestone(tracking.MilestoneDelivered, at(9, 30), at(9, 40)),
			startedAt("loading", "op-9", dc1, at(10, 0)), // stays open
		}},
		{globex, "PKG-S1", tracking.EntityPackage, []tracking.NewEvent{
			startedAt("loading", "op-1", dc1, at(8, 0)),
			completedAt("loading", "op-1", dc1, at(8, 7)), // 420 s
			raised("EX-1", "delay", at(8, 15)),
		}},
	}
}

// testMetricsPerSite: operation durations and milestone punctuality per
// site, and exceptions raised counted per interval and code; a rebuild
// beside the live read models, and a fold from scratch, give the same
// tables.
func testMetricsPerSite(t *testing.T, e *env) {
	e.record(siteData())
	e.catchUp(e.mgr)
	// 8 operations, 2 milestones, 5 exceptions; PKG-S4's loading open.
	e.wantRows(map[string]int{"rm_timeline": 25, "rm_entities": 6, "rm_operation_starts": 1, "rm_metric_points": 15})

	op, ms := tracking.MetricOperation, tracking.MetricMilestone
	cases := []struct {
		name     string
		q        tracking.MetricsQuery
		samples  []float64
		expected []bucket
	}{
		{"loading at DC-1",
			tracking.MetricsQuery{Tenant: acme, Kind: op, Name: "loading", Site: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{600, 1800, 2400},
			// p95 = 1800 + 0.9*600, p99 = 1800 + 0.98*600
			[]bucket{{at(8, 0), 3, 1600, 600, 2400, 1800, 2340, 2388, -1}}},
		{"package loading at DC-1",
			tracking.MetricsQuery{Tenant: acme, Kind: op, EntityType: tracking.EntityPackage, Name: "loading", Site: "DC-1",
				From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{600, 1800},
			// p95 = 600 + 0.95*1200, p99 = 600 + 0.99*1200
			[]bucket{{at(8, 0), 2, 1200, 600, 1800, 1200, 1740, 1788, -1}}},
		{"loading at DC-2",
			tracking.MetricsQuery{Tenant: acme, Kind: op, Name: "loading", Site: "DC-2", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{300, 1200},
			[]bucket{{at(8, 0), 1, 300, 300, 300, 300, 300, 300, -1}, {at(9, 0), 1, 1200, 1200, 1200, 1200, 1200, 1200, -1}}},
		{"every operation at DC-1",
			tracking.MetricsQuery{Tenant: acme, Kind: op, Site: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{180, 600, 1800, 2400},
			// [180 600 1800 2400]: p50 at 1.5, p95 at 2.85, p99 at 2.97
			[]bucket{{at(8, 0), 4, 1245, 180, 2400, 1200, 2310, 2382, -1}}},
		{"loading anywhere",
			tracking.MetricsQuery{Tenant: acme, Kind: op, Name: "loading", From: at(9, 0), To: at(10, 0), Interval: time.Hour},
			[]float64{60, 1200},
			[]bucket{{at(9, 0), 2, 630, 60, 1200, 630, 1143, 1188.6, -1}}},
		{"a site without operations",
			tracking.MetricsQuery{Tenant: acme, Kind: op, Site: "DC-3", From: at(0, 0), To: at(24, 0), Interval: time.Hour}, nil, nil},
		{"milestones at DC-1",
			tracking.MetricsQuery{Tenant: acme, Kind: ms, Site: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{600},
			[]bucket{{at(9, 0), 1, 600, 600, 600, 600, 600, 600, 1}}},
		{"globex loading at DC-1",
			tracking.MetricsQuery{Tenant: globex, Kind: op, Site: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{420},
			[]bucket{{at(8, 0), 1, 420, 420, 420, 420, 420, 420, -1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkMetrics(t, e, tc.q, tc.samples, tc.expected) })
	}

	ex := tracking.MetricException
	counts := []struct {
		name string
		q    tracking.MetricsQuery
		want []tracking.ExceptionBucket
	}{
		{"exceptions, hourly", tracking.MetricsQuery{Tenant: acme, Kind: ex, From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]tracking.ExceptionBucket{
				{Start: at(8, 0), Count: 2, ByCode: map[string]int{"delay": 1, "damage": 1}},
				{Start: at(9, 0), Count: 2, ByCode: map[string]int{"delay": 2}},
			}},
		{"delays, daily", tracking.MetricsQuery{Tenant: acme, Kind: ex, Name: "delay", From: at(0, 0), To: at(24, 0), Interval: 24 * time.Hour},
			[]tracking.ExceptionBucket{{Start: at(0, 0), Count: 3, ByCode: map[string]int{"delay": 3}}}},
		{"the container's", tracking.MetricsQuery{Tenant: acme, Kind: ex, EntityType: tracking.EntityContainer,
			From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]tracking.ExceptionBucket{{Start: at(9, 0), Count: 1, ByCode: map[string]int{"delay": 1}}}},
		{"the range's end is exclusive", tracking.MetricsQuery{Tenant: acme, Kind: ex, From: at(8, 15), To: at(9, 5), Interval: time.Hour},
			[]tracking.ExceptionBucket{{Start: at(8, 0), Count: 2, ByCode: map[string]int{"delay": 1, "damage": 1}}}},
		{"globex", tracking.MetricsQuery{Tenant: globex, Kind: ex, From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]tracking.ExceptionBucket{{Start: at(8, 0), Count: 1, ByCode: map[string]int{"delay": 1}}}},
		{"initech", tracking.MetricsQuery{Tenant: initech, Kind: ex, From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]tracking.ExceptionBucket{}},
	}
	for _, tc := range counts {
		t.Run(tc.name, func(t *testing.T) {
			samples, err := e.rm.MetricSamples(e.ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := tracking.CountExceptions(samples, tc.q.Interval); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("exception counts = %+v, want %+v", got, tc.want)
			}
		})
	}

	e.sameAfterRebuildAndReset("sites")
}

// testSiteAfterRetention: an operation whose start (the only event naming
// its site) retention trimmed still yields its point at that site when it
// completes after, live and in a rebuild seeded with the stream's
// snapshot.
func testSiteAfterRetention(t *testing.T, e *env) {
	deps, m := e.retainer()
	e.record([]step{{acme, "RET-S1", tracking.EntityPackage, []tracking.NewEvent{
		startedAt("unloading", "op-1", "DC-9", at(6, 0)),
		raised("EX-1", "delay", at(6, 5)),
	}}})
	e.catchUp(e.mgr)
	e.trimAll(deps, 2)
	e.record([]step{{acme, "RET-S1", "", []tracking.NewEvent{completedAt("unloading", "op-1", "", at(6, 30))}}}) // 1800 s
	e.catchUp(e.mgr)
	e.wantRows(map[string]int{"rm_timeline": 1, "rm_entities": 1, "rm_metric_points": 2})
	checkMetrics(t, e, tracking.MetricsQuery{Tenant: acme, Kind: tracking.MetricOperation, Site: "DC-9", From: at(0, 0), To: at(24, 0), Interval: time.Hour},
		[]float64{1800}, []bucket{{at(6, 0), 1, 1800, 1800, 1800, 1800, 1800, 1800, -1}})
	live := e.dump()

	e.rebuildAll(m)
	e.catchUp(m)
	sameDump(t, "sites rebuilt after retention vs live", e.dump(), live)
}

// Upgrade13Rows returns statements that fill read models of schema 12
// (before parents, sites and exception points) as the projections left
// them for acme's PKG-U1, whose timeline is: v1 loading op-1 started at
// DC-1 (08:00), v2 op-1 completed naming no site (08:10), v3 departed at
// DC-2 600 s late (08:30), v4 a damage raised (08:40), v5 sorting op-2
// started at DC-3 (08:50, open), v6 put into CNT-U1 (09:00); and PKG-U2,
// in no parent. A rebuild of the entities and one of the metrics are in
// progress. ts writes a time as the engine's SQL literal. See
// CheckUpgrade13.
func Upgrade13Rows(ts func(time.Time) string) []string {
	timeline := []struct {
		typ  string
		at   time.Time
		data string
	}{
		{tracking.TypeOperationStarted, at(8, 0), `{"operation":"loading","operationId":"op-1","siteId":"DC-1"}`},
		{tracking.TypeOperationCompleted, at(8, 10), `{"operation":"loading","operationId":"op-1","outcome":"succeeded"}`},
		{tracking.TypeMilestoneReached, at(8, 30), `{"milestone":"departed","siteId":"DC-2","plannedAt":"2025-03-10T08:20:00Z"}`},
		{tracking.TypeExceptionRaised, at(8, 40), `{"exceptionId":"EX-1","code":"damage","severity":"high"}`},
		{tracking.TypeOperationStarted, at(8, 50), `{"operation":"sorting","operationId":"op-2","siteId":"DC-3"}`},
		{tracking.TypeEntityAssociated, at(9, 0), `{"parentId":"CNT-U1"}`},
	}
	var out []string
	for i, e := range timeline {
		out = append(out, fmt.Sprintf(`INSERT INTO rm_timeline (tenant_id, entity_id, version, event_id, event_type, occurred_at, recorded_at, data, metadata)
			VALUES ('acme', 'PKG-U1', %d, '00000000-0000-4000-8000-00000000000%d', '%s', %s, %s, '%s', '{}')`,
			i+1, i+1, e.typ, ts(e.at), ts(e.at), e.data))
	}
	return append(out,
		`INSERT INTO rm_entities (tenant_id, entity_id, entity_type, status, version, updated_at, state, view)
			VALUES ('acme', 'PKG-U1', 'package', 'in_transit', 6, `+ts(at(9, 0))+`, '{}',
			'{"entityId":"PKG-U1","entityType":"package","version":6,"status":"in_transit","openExceptions":[],"parentId":"CNT-U1","updatedAt":"2025-03-10T09:00:00Z"}')`,
		`INSERT INTO rm_entities (tenant_id, entity_id, entity_type, status, version, updated_at, state, view)
			VALUES ('acme', 'PKG-U2', 'package', 'registered', 1, `+ts(at(9, 0))+`, '{}',
			'{"entityId":"PKG-U2","entityType":"package","version":1,"status":"registered","openExceptions":[],"updatedAt":"2025-03-10T09:00:00Z"}')`,
		`INSERT INTO rm_positions_metrics (tenant_id, entity_id, version) VALUES ('acme', 'PKG-U1', 6)`,
		`INSERT INTO rm_metric_points (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
			VALUES ('acme', 'PKG-U1', 2, 'operation', 'package', 'loading', 'succeeded', `+ts(at(8, 10))+`, 600)`,
		`INSERT INTO rm_metric_points (tenant_id, entity_id, version, kind, entity_type, name, outcome, occurred_at, value)
			VALUES ('acme', 'PKG-U1', 3, 'milestone', 'package', 'departed', '', `+ts(at(8, 30))+`, 600)`,
		`INSERT INTO rm_operation_starts (tenant_id, entity_id, kind, operation_id, operation, started_at)
			VALUES ('acme', 'PKG-U1', 'operation', 'op-2', 'sorting', `+ts(at(8, 50))+`)`,
		`CREATE TABLE rm_entities_rebuild AS SELECT * FROM rm_entities WHERE 1 = 0`,
		`CREATE TABLE rm_positions_entities_rebuild AS SELECT * FROM rm_positions_entities WHERE 1 = 0`,
		`CREATE TABLE rm_metric_points_rebuild AS SELECT * FROM rm_metric_points WHERE 1 = 0`,
		`CREATE TABLE rm_operation_starts_rebuild AS SELECT * FROM rm_operation_starts WHERE 1 = 0`,
		`CREATE TABLE rm_positions_metrics_rebuild AS SELECT * FROM rm_positions_metrics WHERE 1 = 0`,
		`INSERT INTO projection_checkpoints (name) VALUES ('entities@rebuild')`,
		`INSERT INTO projection_checkpoints (name) VALUES ('performance-metrics@rebuild')`,
	)
}

// CheckUpgrade13 checks read models filled by Upgrade13Rows, then
// migrated: PKG-U1 is a child of CNT-U1; its operation's point is at its
// start's site DC-1, its milestone's at DC-2; its damage is counted; its
// open operation remembers DC-3; the rebuilds are abandoned.
func CheckUpgrade13(t *testing.T, rm ReadModels) {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), rm: rm}
	cps, err := rm.Engine().Checkpoints(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for n := range cps {
		if _, rebuilding := projection.ShadowOf(n); rebuilding {
			t.Errorf("checkpoint %s after the upgrade, want the rebuilds abandoned", n)
		}
	}
	if got := entityPages(t, e, tracking.EntityQuery{Tenant: acme, Parent: "CNT-U1", Limit: 10}); !reflect.DeepEqual(got, [][]string{{"PKG-U1"}}) {
		t.Errorf("children of CNT-U1 after the upgrade = %v, want [[PKG-U1]]", got)
	}
	hour := func(kind, site string) tracking.MetricsQuery {
		return tracking.MetricsQuery{Tenant: acme, Kind: kind, Site: site, From: at(8, 0), To: at(9, 0), Interval: time.Hour}
	}
	checkMetrics(t, e, hour(tracking.MetricOperation, "DC-1"), []float64{600}, []bucket{{at(8, 0), 1, 600, 600, 600, 600, 600, 600, -1}})
	checkMetrics(t, e, hour(tracking.MetricMilestone, "DC-2"), []float64{600}, []bucket{{at(8, 0), 1, 600, 600, 600, 600, 600, 600, 1}})
	samples, err := rm.MetricSamples(e.ctx, hour(tracking.MetricException, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := []tracking.ExceptionBucket{{Start: at(8, 0), Count: 1, ByCode: map[string]int{"damage": 1}}}
	if got := tracking.CountExceptions(samples, time.Hour); !reflect.DeepEqual(got, want) {
		t.Errorf("exceptions after the upgrade = %+v, want %+v", got, want)
	}
	err = rm.Engine().Update(e.ctx, false, func(tx readmodel.Tx) error {
		key := tracking.OperationKey{Tenant: acme, EntityID: "PKG-U1", Kind: tracking.MetricOperation, OperationID: "op-2"}
		got, err := tx.OperationStarts(e.ctx, readmodel.TableOperationStarts, []tracking.OperationKey{key})
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].SiteID != "DC-3" {
			t.Errorf("open operation after the upgrade %+v, want op-2 started at DC-3", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
