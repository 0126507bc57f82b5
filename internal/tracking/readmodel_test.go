package tracking

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// visitEv is a MilestoneReached at a site (site "" for none), planned at
// plannedMin minutes after t0 when plannedMin ≥ 0.
func visitEv(min int, m, site string, plannedMin int) ev {
	data := fmt.Sprintf(`{"milestone":%q`, m)
	if site != "" {
		data += fmt.Sprintf(`,"siteId":%q`, site)
	}
	if plannedMin >= 0 {
		data += fmt.Sprintf(`,"plannedAt":%q`, at(plannedMin).Format(time.RFC3339))
	}
	return ev{TypeMilestoneReached, min, data + "}"}
}

func TestMetricsOfDwell(t *testing.T) {
	const noPlan = -1
	visit := func(site string, min int) OperationStart {
		return OperationStart{Tenant: "acme", EntityID: "ENT-1", Kind: MetricDwell, OperationID: site, Operation: site, StartedAt: at(min)}
	}
	operation := func(id string, min int) OperationStart {
		return OperationStart{Tenant: "acme", EntityID: "ENT-1", Kind: MetricOperation, OperationID: id, Operation: "loading", StartedAt: at(min)}
	}
	point := func(kind, name string, seconds float64) MetricPoint {
		return MetricPoint{Tenant: "acme", EntityID: "ENT-1", Version: 9, EntityType: "package", Kind: kind, Name: name,
			OccurredAt: at(60), Value: seconds}
	}
	dwellKey := &OperationKey{"acme", "ENT-1", MetricDwell, "DC-1"}
	tests := []struct {
		name string
		open []OperationStart
		ev   ev
		want MetricsChange
	}{
		{"an arrival at a site starts a visit", nil, visitEv(60, MilestoneArrived, "DC-1", noPlan),
			MetricsChange{Start: ptr(visit("DC-1", 60))}},
		{"a second arrival replaces the start", []OperationStart{visit("DC-1", 10)}, visitEv(60, MilestoneArrived, "DC-1", noPlan),
			MetricsChange{Start: ptr(visit("DC-1", 60))}},
		{"an arrival with a plan is punctual too", nil, visitEv(60, MilestoneArrived, "DC-1", 50),
			MetricsChange{Start: ptr(visit("DC-1", 60)), Points: []MetricPoint{point(MetricMilestone, MilestoneArrived, 600)}}},
		{"an arrival without a site starts nothing", nil, visitEv(60, MilestoneArrived, "", noPlan), MetricsChange{}},
		{"a departure ends the visit", []OperationStart{visit("DC-1", 15)}, visitEv(60, MilestoneDeparted, "DC-1", noPlan),
			MetricsChange{Complete: dwellKey, Points: []MetricPoint{point(MetricDwell, "DC-1", 2700)}}},
		{"a departure with a plan: dwell and punctuality", []OperationStart{visit("DC-1", 15)}, visitEv(60, MilestoneDeparted, "DC-1", 70),
			MetricsChange{Complete: dwellKey, Points: []MetricPoint{point(MetricMilestone, MilestoneDeparted, -600), point(MetricDwell, "DC-1", 2700)}}},
		{"a departure without an arrival", nil, visitEv(60, MilestoneDeparted, "DC-1", noPlan), MetricsChange{}},
		{"a departure without an arrival, planned", nil, visitEv(60, MilestoneDeparted, "DC-1", 55),
			MetricsChange{Points: []MetricPoint{point(MetricMilestone, MilestoneDeparted, 300)}}},
		{"a departure from another site", []OperationStart{visit("DC-2", 15)}, visitEv(60, MilestoneDeparted, "DC-1", noPlan), MetricsChange{}},
		{"a departure without a site", []OperationStart{visit("DC-1", 15)}, visitEv(60, MilestoneDeparted, "", noPlan), MetricsChange{}},
		{"an operation whose id is the site is no visit", []OperationStart{operation("DC-1", 15)}, visitEv(60, MilestoneDeparted, "DC-1", noPlan),
			MetricsChange{}},
		{"a visit is no operation", []OperationStart{visit("DC-1", 15)}, complete(60, "loading", "DC-1"), MetricsChange{}},
		{"the operation completes beside the visit", []OperationStart{visit("DC-1", 15), operation("DC-1", 20)}, complete(60, "loading", "DC-1"),
			MetricsChange{Complete: &OperationKey{"acme", "ENT-1", MetricOperation, "DC-1"},
				Points: []MetricPoint{{Tenant: "acme", EntityID: "ENT-1", Version: 9, EntityType: "package", Kind: MetricOperation,
					Name: "loading", Outcome: OutcomeSucceeded, OccurredAt: at(60), Value: 2400}}}},
		{"other milestones at a site", []OperationStart{visit("DC-1", 15)}, visitEv(60, MilestoneDelivered, "DC-1", noPlan), MetricsChange{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open := map[OperationKey]OperationStart{}
			for _, s := range tt.open {
				open[s.Key()] = s
			}
			rec := recorded(t, 9, tt.ev)
			rec.Tenant, rec.EntityType = "acme", "package"
			got := MetricsOf(rec, func(k OperationKey) (OperationStart, bool) {
				s, ok := open[k]
				return s, ok
			})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MetricsOf =\n %s\nwant\n %s", show(got), show(tt.want))
			}
		})
	}
}

func show(c MetricsChange) string {
	s := "start "
	if c.Start != nil {
		s += fmt.Sprintf("%+v", *c.Start)
	}
	s += ", complete "
	if c.Complete != nil {
		s += fmt.Sprintf("%+v", *c.Complete)
	}
	return s + fmt.Sprintf(", points %+v", c.Points)
}

// A batch folds visits in log order: the newest arrival is the start a
// departure ends; what the batch leaves open is stored, what it ends
// deleted; a snapshot of the entity holds the same open visits (a rebuild
// seeds them).
func TestFoldMetricsVisits(t *testing.T) {
	events := []ev{
		visitEv(0, MilestoneArrived, "DC-1", -1),
		visitEv(10, MilestoneArrived, "DC-1", -1), // replaces the start
		start(12, "loading", "DC-1"),              // an operation whose id is the site's
		visitEv(15, MilestoneArrived, "DC-2", -1),
		visitEv(40, MilestoneDeparted, "DC-1", -1), // 30 min after the second arrival
		visitEv(50, MilestoneArrived, "DC-3", -1),
		visitEv(55, MilestoneDeparted, "DC-3", -1),
	}
	recs := make([]eventstore.Recorded, len(events))
	for i, x := range events {
		recs[i] = recorded(t, int64(i+1), x)
		recs[i].Tenant = "acme"
	}
	b := FoldMetrics(recs, map[OperationKey]OperationStart{})
	var dwell []float64
	for _, p := range b.Points {
		if p.Kind != MetricDwell {
			t.Errorf("point %+v, want dwell points only", p)
		}
		dwell = append(dwell, p.Value)
	}
	if fmt.Sprint(dwell) != "[1800 300]" {
		t.Errorf("dwell %v, want [1800 300] (DC-1 from its second arrival, DC-3)", dwell)
	}
	openAfter := map[OperationKey]time.Time{}
	for _, s := range b.Open {
		openAfter[s.Key()] = s.StartedAt
	}
	want := map[OperationKey]time.Time{
		{"acme", "ENT-1", MetricOperation, "DC-1"}: at(12),
		{"acme", "ENT-1", MetricDwell, "DC-2"}:     at(15),
	}
	if !reflect.DeepEqual(openAfter, want) {
		t.Errorf("open after the batch %v, want %v", openAfter, want)
	}
	completed := map[OperationKey]bool{}
	for _, k := range b.Completed {
		completed[k] = true
	}
	if want := map[OperationKey]bool{{"acme", "ENT-1", MetricDwell, "DC-1"}: true, {"acme", "ENT-1", MetricDwell, "DC-3"}: true}; !reflect.DeepEqual(completed, want) {
		t.Errorf("completed %v, want the visits to DC-1 and DC-3", b.Completed)
	}

	ent := fold(t, events...)
	state, schema := ent.MarshalSnapshot()
	seeded := map[OperationKey]time.Time{}
	for _, s := range OpenOperationStarts(eventstore.Snapshot{Tenant: "acme", StreamID: "ENT-1", Version: int64(len(events)),
		SchemaVersion: schema, State: state}) {
		seeded[s.Key()] = s.StartedAt
	}
	if !reflect.DeepEqual(seeded, want) {
		t.Errorf("open in the snapshot %v, want %v", seeded, want)
	}
}
