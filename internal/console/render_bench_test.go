package console

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/tracking"
)

// BenchmarkMapDraw draws a vehicle's journey of 300 positions from
// Rotterdam to Lyon over its two hubs: the entity page's map at its
// largest.
func BenchmarkMapDraw(b *testing.B) {
	bm, err := loadBasemap()
	if err != nil {
		b.Fatal(err)
	}
	var sites []mapSite
	for _, g := range []string{`[4.48,51.92]`, `[4.84,45.76]`} {
		s, _ := parseSite(alerting.Site{ID: "HUB", Geometry: json.RawMessage(`{"type":"Point","coordinates":` + g + `,"radius":2000}`)})
		sites = append(sites, s)
	}
	points := make([]trackPoint, 300)
	for k := range points {
		f := float64(k) / 300
		points[k] = trackPoint{Lat: 51.92 + f*(45.76-51.92) + 0.3*math.Sin(float64(k)/7), Lon: 4.48 + f*(4.84-4.48), Version: int64(k + 1)}
	}
	b.ReportAllocs()
	for b.Loop() {
		bm.draw(points, sites)
	}
}

// BenchmarkChart draws the metrics page's two charts of 30 daily buckets.
func BenchmarkChart(b *testing.B) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	buckets := make([]tracking.MetricBucket, 30)
	for i := range buckets {
		r := 0.9
		buckets[i] = tracking.MetricBucket{Start: day.Add(time.Duration(i) * 24 * time.Hour), Count: 100, P50: 60, P95: 300, P99: 500, OnTimeRate: &r}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := chart("Duration", "seconds", buckets, 24*time.Hour, 0, percentileSeries()); err != nil {
			b.Fatal(err)
		}
		if _, err := chart("On time", "percent", buckets, 24*time.Hour, 100, onTimeSeries()); err != nil {
			b.Fatal(err)
		}
	}
}

// vehicleReadModels is a read side holding one vehicle whose journey is
// the entity page at its largest: registered, 300 positions, milestones.
type vehicleReadModels struct {
	state    tracking.EntityState
	timeline []tracking.TimelineEntry
}

func newVehicleReadModels() *vehicleReadModels {
	start := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	rm := &vehicleReadModels{state: tracking.EntityState{EntityID: "VEH-000001", EntityType: "vehicle", Status: "in_transit", Version: 306, UpdatedAt: start}}
	add := func(typ, data string) {
		v := int64(len(rm.timeline) + 1)
		at := start.Add(time.Duration(v) * time.Minute)
		rm.timeline = append(rm.timeline, tracking.TimelineEntry{Version: v, Type: typ, OccurredAt: at, RecordedAt: at.Add(time.Second), Data: json.RawMessage(data)})
	}
	add(tracking.TypeEntityRegistered, `{"entityType":"vehicle","reference":"truck 12","attributes":{"plate":"NL-12-AB"}}`)
	add(tracking.TypeMilestoneReached, `{"milestone":"picked_up","location":{"lat":51.92,"lon":4.48},"siteId":"HUB-01","plannedAt":"2026-11-20T08:00:00Z"}`)
	for k := range 300 {
		f := float64(k) / 300
		add(tracking.TypeLocationReported, fmt.Sprintf(`{"lat":%.5f,"lon":%.5f,"speedKmh":72.5}`, 51.92+f*(45.76-51.92)+0.3*math.Sin(float64(k)/7), 4.48+f*(4.84-4.48)))
	}
	for range 4 {
		add(tracking.TypeMilestoneReached, `{"milestone":"arrived","location":{"lat":45.76,"lon":4.84},"siteId":"HUB-02"}`)
	}
	return rm
}

func (rm *vehicleReadModels) Entity(context.Context, string, string) (tracking.EntityState, error) {
	return rm.state, nil
}
func (rm *vehicleReadModels) ListEntities(context.Context, tracking.EntityQuery) (tracking.EntityPage, error) {
	return tracking.EntityPage{}, nil
}
func (rm *vehicleReadModels) Timeline(context.Context, tracking.TimelineQuery) (tracking.TimelinePage, error) {
	return tracking.TimelinePage{Entries: rm.timeline}, nil
}
func (rm *vehicleReadModels) ProjectedVersion(context.Context, string, string, string) (int64, error) {
	return rm.state.Version, nil
}
func (rm *vehicleReadModels) MetricSamples(context.Context, tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	return nil, nil
}

// BenchmarkVehiclePage serves the entity page of a vehicle with 306
// timeline rows and 302 map points (the read side held in memory): the
// console's rendering at its heaviest.
func BenchmarkVehiclePage(b *testing.B) {
	h, err := New(Deps{ReadModels: newVehicleReadModels(), Authenticate: Anonymous("default")}, Options{Unauthenticated: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, Prefix+"/entities/VEH-000001", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
