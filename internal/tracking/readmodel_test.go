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
		return OperationStart{Tenant: "acme", EntityID: "ENT-1", Kind: MetricDwell, OperationID: site, Operation: site, SiteID: site, StartedAt: at(min)}
	}
	operation := func(id string, min int) OperationStart {
		return OperationStart{Tenant: "acme", EntityID: "ENT-1", Kind: MetricOperation, OperationID: id, Operation: "loading", StartedAt: at(min)}
	}
	// Every point of these events happens at DC-1.
	point := func(kind, name string, seconds float64) MetricPoint {
		return MetricPoint{Tenant: "acme", EntityID: "ENT-1", Version: 9, EntityType: "package", Kind: kind, Name: name,
			Site: "DC-1", OccurredAt: at(60), Value: seconds}
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
			if got := metricsOf(t, tt.open, tt.ev); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MetricsOf =\n %s\nwant\n %s", show(got), show(tt.want))
			}
		})
	}
}

// metricsOf is MetricsOf of an event of acme's package ENT-1 at version
// 9, with the given starts open.
func metricsOf(t *testing.T, starts []OperationStart, x ev) MetricsChange {
	t.Helper()
	open := map[OperationKey]OperationStart{}
	for _, s := range starts {
		open[s.Key()] = s
	}
	rec := recorded(t, 9, x)
	rec.Tenant, rec.EntityType = "acme", "package"
	return MetricsOf(rec, func(k OperationKey) (OperationStart, bool) {
		s, ok := open[k]
		return s, ok
	})
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

// An operation's point is at its completion's site, else at its start's;
// an exception raised is a point of its code, counted per interval.
func TestMetricsOfSitesAndExceptions(t *testing.T) {
	started := func(site string) OperationStart {
		return OperationStart{Tenant: "acme", EntityID: "ENT-1", Kind: MetricOperation, OperationID: "OP-1", Operation: "loading",
			SiteID: site, StartedAt: at(20)}
	}
	completion := func(site string) ev {
		if site == "" {
			return complete(60, "loading", "OP-1")
		}
		return ev{TypeOperationCompleted, 60, `{"operation":"loading","operationId":"OP-1","outcome":"succeeded","siteId":"` + site + `"}`}
	}
	opKey := &OperationKey{"acme", "ENT-1", MetricOperation, "OP-1"}
	opPoint := func(site string) MetricsChange {
		return MetricsChange{Complete: opKey, Points: []MetricPoint{{Tenant: "acme", EntityID: "ENT-1", Version: 9, EntityType: "package",
			Kind: MetricOperation, Name: "loading", Outcome: OutcomeSucceeded, Site: site, OccurredAt: at(60), Value: 2400}}}
	}
	tests := []struct {
		name string
		open []OperationStart
		ev   ev
		want MetricsChange
	}{
		{"a start remembers its site", nil, ev{TypeOperationStarted, 20, `{"operation":"loading","operationId":"OP-1","siteId":"DC-7"}`},
			MetricsChange{Start: ptr(started("DC-7"))}},
		{"the completion's site", []OperationStart{started("DC-7")}, completion("DC-8"), opPoint("DC-8")},
		{"the start's site when the completion names none", []OperationStart{started("DC-7")}, completion(""), opPoint("DC-7")},
		{"no site at all", []OperationStart{started("")}, completion(""), opPoint("")},
		{"an exception raised", nil, ev{TypeExceptionRaised, 60, `{"exceptionId":"EX-1","code":"damage","severity":"high"}`},
			MetricsChange{Points: []MetricPoint{{Tenant: "acme", EntityID: "ENT-1", Version: 9, EntityType: "package",
				Kind: MetricException, Name: "damage", OccurredAt: at(60), Value: 1}}}},
		{"an exception resolved is no point", nil, ev{TypeExceptionResolved, 60, `{"exceptionId":"EX-1"}`}, MetricsChange{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricsOf(t, tt.open, tt.ev); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MetricsOf =\n %s\nwant\n %s", show(got), show(tt.want))
			}
		})
	}

	hour := time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)
	samples := []MetricSample{
		{OccurredAt: hour.Add(59 * time.Minute), Value: 1, Name: "delay"},
		{OccurredAt: hour.Add(-time.Second), Value: 1, Name: "damage"},
		{OccurredAt: hour, Value: 1, Name: "delay"},
		{OccurredAt: hour.Add(2 * time.Hour), Value: 1, Name: "damage"},
		{OccurredAt: hour.Add(30 * time.Minute), Value: 1, Name: "damage"},
	}
	want := []ExceptionBucket{
		{Start: hour.Add(-time.Hour), Count: 1, ByCode: map[string]int{"damage": 1}},
		{Start: hour, Count: 3, ByCode: map[string]int{"delay": 2, "damage": 1}},
		{Start: hour.Add(2 * time.Hour), Count: 1, ByCode: map[string]int{"damage": 1}},
	}
	if got := CountExceptions(samples, time.Hour); !reflect.DeepEqual(got, want) {
		t.Errorf("CountExceptions = %+v, want %+v", got, want)
	}
	if got := CountExceptions(nil, time.Hour); got == nil || len(got) != 0 {
		t.Errorf("CountExceptions of nothing = %#v, want an empty list", got)
	}
}
