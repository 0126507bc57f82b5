package console

import (
	"encoding/json"
	"math"
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
