package projectiontest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/tracking"
)

// atSite is a MilestoneReached at a site; planned may be zero.
func atSite(name, site string, t, planned time.Time) tracking.NewEvent {
	if planned.IsZero() {
		return ev(tracking.TypeMilestoneReached, t, fmt.Sprintf(`{"milestone":%q,"siteId":%q}`, name, site))
	}
	return ev(tracking.TypeMilestoneReached, t, fmt.Sprintf(`{"milestone":%q,"siteId":%q,"plannedAt":%q}`,
		name, site, planned.Format(time.RFC3339)))
}

// dwellData: 21 events. Dwell at DC-1 (departure's hour): packages 1800
// (D1), 1800 (D2, whose second arrival replaced the first), 3300 (D7)
// (08h), 300 (D4) (09h); container 5400 (09h); D3 departs without
// arriving, D5 departs from DC-1 while at DC-2 (no point), D6 stays.
// DC-2: 3600 (D5, 09h). globex DC-1: 600 (08h). Besides: D1's operation
// with operationId "DC-1", 600 s, open during its visit to DC-1; departed
// punctuality 600 (D3, 08h) and 300 (D4, 09h), D4's on the same event as
// its dwell point.
func dwellData() []step {
	const dc1, dc2 = "DC-1", "DC-2"
	arrived, departed := tracking.MilestoneArrived, tracking.MilestoneDeparted
	var none time.Time
	return []step{
		{acme, "PKG-D1", tracking.EntityPackage, []tracking.NewEvent{
			atSite(arrived, dc1, at(8, 0), none),
			started("loading", dc1, at(8, 5)),
		}},
		{acme, "PKG-D2", tracking.EntityPackage, []tracking.NewEvent{atSite(arrived, dc1, at(8, 10), none)}},
		{acme, "PKG-D1", "", []tracking.NewEvent{completed("loading", dc1, tracking.OutcomeSucceeded, at(8, 15))}}, // 600 s
		{acme, "PKG-D2", "", []tracking.NewEvent{atSite(arrived, dc1, at(8, 20), none)}},                           // replaces 08:10
		{acme, "CNT-D1", tracking.EntityContainer, []tracking.NewEvent{atSite(arrived, dc1, at(8, 0), none)}},
		{acme, "PKG-D7", tracking.EntityPackage, []tracking.NewEvent{atSite(arrived, dc1, at(7, 50), none)}},
		{acme, "PKG-D5", tracking.EntityPackage, []tracking.NewEvent{
			atSite(arrived, dc2, at(8, 0), none),
			atSite(departed, dc1, at(8, 20), none), // never arrived at DC-1
		}},
		{acme, "PKG-D1", "", []tracking.NewEvent{atSite(departed, dc1, at(8, 30), none)}}, // 1800 s
		{acme, "PKG-D3", tracking.EntityPackage, []tracking.NewEvent{
			atSite(departed, dc1, at(8, 40), at(8, 30)), // no arrival: punctuality 600 s only
		}},
		{acme, "PKG-D7", "", []tracking.NewEvent{atSite(departed, dc1, at(8, 45), none)}}, // 3300 s
		{acme, "PKG-D2", "", []tracking.NewEvent{atSite(departed, dc1, at(8, 50), none)}}, // 1800 s
		{acme, "PKG-D4", tracking.EntityPackage, []tracking.NewEvent{
			atSite(arrived, dc1, at(9, 0), none),
			atSite(departed, dc1, at(9, 5), at(9, 0)), // dwell 300 s and punctuality 300 s
		}},
		{acme, "PKG-D5", "", []tracking.NewEvent{atSite(departed, dc2, at(9, 0), none)}},  // 3600 s
		{acme, "CNT-D1", "", []tracking.NewEvent{atSite(departed, dc1, at(9, 30), none)}}, // 5400 s
		{acme, "PKG-D6", tracking.EntityPackage, []tracking.NewEvent{
			atSite(departed, dc1, at(9, 40), none),
			atSite(arrived, dc1, at(10, 0), none), // stays
		}},
		{globex, "PKG-D1", tracking.EntityPackage, []tracking.NewEvent{
			atSite(arrived, dc1, at(8, 0), none),
			atSite(departed, dc1, at(8, 10), none), // 600 s
		}},
	}
}

// testDwell: arrivals and departures at sites make dwell points per site,
// apart from operations (an operationId equal to a site id included) and
// beside the departures' punctuality; a rebuild from the log, and one built
// beside the live read models, give the same tables.
func testDwell(t *testing.T, e *env) {
	e.record(dwellData())
	e.catchUp(e.mgr)
	// 7 dwell points, 2 punctuality points, 1 operation; D6's visit open.
	e.wantRows(map[string]int{"rm_timeline": 21, "rm_entities": 9, "rm_operation_starts": 1, "rm_metric_points": 10})
	if rows := e.dump()["rm_operation_starts"]; len(rows) != 1 || !strings.Contains(rows[0], "PKG-D6") ||
		!strings.Contains(rows[0], tracking.MetricDwell) || !strings.Contains(rows[0], "DC-1") {
		t.Fatalf("open starts %v, want PKG-D6's visit to DC-1", rows)
	}

	dwell, op, ms := tracking.MetricDwell, tracking.MetricOperation, tracking.MetricMilestone
	cases := []struct {
		name     string
		q        tracking.MetricsQuery
		samples  []float64
		expected []bucket
	}{
		{"DC-1 packages, hourly",
			tracking.MetricsQuery{Tenant: acme, Kind: dwell, EntityType: "package", Name: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{300, 1800, 1800, 3300},
			[]bucket{
				// [1800 1800 3300]: p95 = 1800 + 0.9*1500, p99 = 1800 + 0.98*1500
				{at(8, 0), 3, 2300, 1800, 3300, 1800, 3150, 3270, -1},
				{at(9, 0), 1, 300, 300, 300, 300, 300, 300, -1},
			}},
		{"DC-1 of any entity type",
			tracking.MetricsQuery{Tenant: acme, Kind: dwell, Name: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{300, 1800, 1800, 3300, 5400},
			[]bucket{
				{at(8, 0), 3, 2300, 1800, 3300, 1800, 3150, 3270, -1},
				// [300 5400]: p50 = 300 + 0.5*5100, p95 = 300 + 0.95*5100, p99 = 300 + 0.99*5100
				{at(9, 0), 2, 2850, 300, 5400, 2850, 5145, 5349, -1},
			}},
		{"DC-2",
			tracking.MetricsQuery{Tenant: acme, Kind: dwell, Name: "DC-2", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{3600},
			[]bucket{{at(9, 0), 1, 3600, 3600, 3600, 3600, 3600, 3600, -1}}},
		{"globex DC-1",
			tracking.MetricsQuery{Tenant: globex, Kind: dwell, Name: "DC-1", From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{600},
			[]bucket{{at(8, 0), 1, 600, 600, 600, 600, 600, 600, -1}}},
		{"a site without visits",
			tracking.MetricsQuery{Tenant: acme, Kind: dwell, Name: "DC-3", From: at(0, 0), To: at(24, 0), Interval: time.Hour}, nil, nil},
		{"the operation whose id is a site id",
			tracking.MetricsQuery{Tenant: acme, Kind: op, From: at(0, 0), To: at(24, 0), Interval: 24 * time.Hour},
			[]float64{600},
			[]bucket{{at(0, 0), 1, 600, 600, 600, 600, 600, 600, -1}}},
		{"departed punctuality",
			tracking.MetricsQuery{Tenant: acme, Kind: ms, Name: tracking.MilestoneDeparted, From: at(8, 0), To: at(11, 0), Interval: time.Hour},
			[]float64{300, 600},
			[]bucket{
				{at(8, 0), 1, 600, 600, 600, 600, 600, 600, 1},
				{at(9, 0), 1, 300, 300, 300, 300, 300, 300, 1},
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkMetrics(t, e, tc.q, tc.samples, tc.expected) })
	}

	e.sameAfterRebuildAndReset("dwell")
}

// sameAfterRebuildAndReset checks that a rebuild of every projection
// beside the live read models, then a fold from scratch, give the tables
// the live projections hold.
func (e *env) sameAfterRebuildAndReset(what string) {
	e.t.Helper()
	live := e.dump()
	e.rebuildAll(e.mgr)
	e.catchUp(e.mgr)
	sameDump(e.t, what+" rebuilt beside the live read models", e.dump(), live)
	e.resetAll()
	e.catchUp(e.mgr)
	sameDump(e.t, what+" folded again from the log", e.dump(), live)
}

// trimAll runs retention with a cutoff after every event recorded
// so far (each stream gets a snapshot at its version) and checks that it
// deleted n events.
func (e *env) trimAll(deps retention.Deps, n int64) {
	e.t.Helper()
	time.Sleep(2 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(2 * time.Millisecond)
	const maxAge = 24 * time.Hour
	rep, err := retention.Run(e.ctx, deps, retention.Policy{MaxAge: maxAge}, cutoff.Add(maxAge), false)
	if err != nil {
		e.t.Fatal(err)
	}
	if rep.EventsDeleted != n {
		e.t.Fatalf("retention: %+v, want the %d events deleted", rep, n)
	}
	e.recorded -= rep.EventsDeleted
}

// testDwellAfterRetention: a visit whose arrival retention trimmed still
// yields its dwell point when the departure comes after, live and in a
// rebuild seeded with the stream's snapshot, which keeps the open visit
// apart from an open operation whose id is the site's.
func testDwellAfterRetention(t *testing.T, e *env) {
	deps, m := e.retainer()
	e.record([]step{{acme, "RET-D1", tracking.EntityPackage, []tracking.NewEvent{
		atSite(tracking.MilestoneArrived, "DC-9", at(6, 0), time.Time{}),
		started("unloading", "DC-9", at(6, 10)),
	}}})
	e.catchUp(e.mgr)
	e.trimAll(deps, 2)
	e.record([]step{{acme, "RET-D1", "", []tracking.NewEvent{
		completed("unloading", "DC-9", tracking.OutcomeSucceeded, at(6, 40)), // 1800 s
		atSite(tracking.MilestoneDeparted, "DC-9", at(7, 0), time.Time{}),    // 3600 s
	}}})
	e.catchUp(e.mgr)
	e.wantRows(map[string]int{"rm_timeline": 2, "rm_entities": 1, "rm_metric_points": 2})
	checkMetrics(t, e, tracking.MetricsQuery{Tenant: acme, Kind: tracking.MetricDwell, Name: "DC-9", From: at(0, 0), To: at(24, 0), Interval: time.Hour},
		[]float64{3600}, []bucket{{at(7, 0), 1, 3600, 3600, 3600, 3600, 3600, 3600, -1}})
	live := e.dump()

	e.rebuildAll(m)
	e.catchUp(m)
	sameDump(t, "dwell rebuilt after retention vs live", e.dump(), live)
}

// CheckDwellUpgrade checks read models just migrated to dwell points from
// a schema before them that held a punctuality point of acme/PKG-1 at
// version 3 (departed, 600 s, occurred at 08:30 of the scenarios' day) and
// the start of its operation "loading" with operationId "DC-1" (08:00),
// and a rebuild of the metrics in progress: the two rows are kept (the
// start as an operation's), the rebuild is abandoned, and a dwell point
// of the same event and a visit to site DC-1 are stored beside them.
func CheckDwellUpgrade(t *testing.T, rm ReadModels) {
	t.Helper()
	ctx := t.Context()
	cps, err := rm.Engine().Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for n := range cps {
		if _, rebuilding := projection.ShadowOf(n); rebuilding {
			t.Errorf("checkpoint %s after the upgrade, want the metrics' rebuild abandoned", n)
		}
	}
	op := tracking.OperationStart{Tenant: acme, EntityID: "PKG-1", Kind: tracking.MetricOperation, OperationID: "DC-1",
		Operation: "loading", StartedAt: at(8, 0)}
	visit := tracking.OperationStart{Tenant: acme, EntityID: "PKG-1", Kind: tracking.MetricDwell, OperationID: "DC-1",
		Operation: "DC-1", StartedAt: at(8, 10)}
	err = rm.Engine().Update(ctx, false, func(tx readmodel.Tx) error {
		got, err := tx.OperationStarts(ctx, readmodel.TableOperationStarts, []tracking.OperationKey{op.Key(), visit.Key()})
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0] != op {
			t.Errorf("starts after the upgrade %+v, want the operation's %+v", got, op)
		}
		if err := tx.UpsertOperationStarts(ctx, readmodel.TableOperationStarts, []tracking.OperationStart{visit}); err != nil {
			return err
		}
		return tx.InsertMetricPoints(ctx, readmodel.TableMetricPoints, []tracking.MetricPoint{{Tenant: acme, EntityID: "PKG-1",
			Version: 3, EntityType: tracking.EntityPackage, Kind: tracking.MetricDwell, Name: "DC-1", OccurredAt: at(8, 30), Value: 1200}}, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, rm: rm}
	e.wantRows(map[string]int{"rm_operation_starts": 2, "rm_metric_points": 2})
	checkMetrics(t, e, tracking.MetricsQuery{Tenant: acme, Kind: tracking.MetricMilestone, Name: tracking.MilestoneDeparted,
		From: at(8, 0), To: at(9, 0), Interval: time.Hour}, []float64{600}, []bucket{{at(8, 0), 1, 600, 600, 600, 600, 600, 600, 1}})
	checkMetrics(t, e, tracking.MetricsQuery{Tenant: acme, Kind: tracking.MetricDwell, Name: "DC-1",
		From: at(8, 0), To: at(9, 0), Interval: time.Hour}, []float64{1200}, []bucket{{at(8, 0), 1, 1200, 1200, 1200, 1200, 1200, 1200, -1}})
}
