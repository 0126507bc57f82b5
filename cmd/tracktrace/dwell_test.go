package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Arrivals at and departures from a site, reported for several entities,
// come back from GET /api/v1/metrics/operational?site= as dwell time
// buckets with hand-computed percentiles (site with an operation or a
// milestone filters those instead: TestMetricsPerSiteAndExceptions), and
// a bad site id is a 400 naming it. On both engines, every
// answer checked against the OpenAPI document.
func TestDwellMetrics(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	// Departures in the hour from base, and one in the next: both hours
	// over before now.
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	stamp := func(min int) string { return base.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	visit := func(milestone, site string, min int, extra string) map[string]any {
		return map[string]any{"type": "MilestoneReached", "occurredAt": stamp(min),
			"data": rawJSON(fmt.Sprintf(`{"milestone":%q,"siteId":%q%s}`, milestone, site, extra))}
	}
	const yard = "YARD-7"
	entities := []struct {
		id, entityType string
		events         []any
	}{
		{"S-1", "shipment", []any{visit("arrived", yard, -20, ""), visit("departed", yard, 10, "")}}, // 1800 s
		{"S-2", "shipment", []any{visit("arrived", yard, 0, ""), visit("departed", yard, 15, "")}},   // 900 s
		{"S-3", "shipment", []any{visit("arrived", yard, -60, ""), visit("arrived", yard, 5, ""),
			visit("departed", yard, 45, "")}}, // 2400 s: the second arrival replaced the first
		{"S-4", "shipment", []any{visit("arrived", yard, 20, ""),
			visit("departed", yard, 55, `,"plannedAt":"`+stamp(40)+`"`)}}, // 2100 s, and 900 s late
		{"S-5", "shipment", []any{visit("departed", yard, 30, "")}},                                        // never arrived: no dwell
		{"S-6", "shipment", []any{visit("arrived", yard, 60, ""), visit("departed", yard, 65, "")}},        // 300 s, next hour
		{"S-7", "shipment", []any{visit("arrived", "DOCK-1", 0, ""), visit("departed", "DOCK-1", 40, "")}}, // another site
		{"C-1", "container", []any{visit("arrived", yard, 0, ""), visit("departed", yard, 50, "")}},        // 3000 s
	}
	type bucket struct {
		Start                        time.Time
		Count                        int
		Avg, Min, Max, P50, P95, P99 float64
		OnTimeRate                   *float64
	}
	type answer struct {
		Kind    string
		Buckets []bucket
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			for _, e := range entities {
				r := srv.do(t, "POST", "/api/v1/entities/"+e.id+"/events", map[string]any{"entityType": e.entityType, "events": e.events})
				validate(t, r)
				if r.StatusCode != 201 {
					t.Fatalf("append %s: %d %s", e.id, r.StatusCode, r.Body)
				}
			}
			// The last append read back: every event is in the log the
			// projections follow (PostgreSQL's gap-safe reads may hold
			// them back a moment), then none lags.
			var last struct{ Version int64 }
			srv.do(t, "GET", "/api/v1/entities/C-1?minVersion=2", nil).JSON(t, &last)
			if last.Version != 2 {
				t.Fatalf("C-1 projected at version %d, want 2", last.Version)
			}
			waitProjections(t, srv)
			metrics := func(query string) answer {
				t.Helper()
				r := srv.do(t, "GET", "/api/v1/metrics/operational?interval=PT1H&from="+url.QueryEscape(stamp(-120))+
					"&to="+url.QueryEscape(stamp(120))+"&"+query, nil)
				validate(t, r)
				if r.StatusCode != 200 {
					t.Fatalf("%s: %d %s", query, r.StatusCode, r.Body)
				}
				var a answer
				r.JSON(t, &a)
				return a
			}
			near := func(a, b float64) bool { d := a - b; return d < 1e-6 && d > -1e-6 }
			check := func(query string, want []bucket) {
				t.Helper()
				got := metrics(query)
				ok := got.Kind == "dwell" && len(got.Buckets) == len(want)
				for i := 0; ok && i < len(want); i++ {
					g, w := got.Buckets[i], want[i]
					ok = g.Start.Equal(w.Start) && g.Count == w.Count && g.OnTimeRate == nil &&
						near(g.Avg, w.Avg) && near(g.Min, w.Min) && near(g.Max, w.Max) &&
						near(g.P50, w.P50) && near(g.P95, w.P95) && near(g.P99, w.P99)
				}
				if !ok {
					t.Errorf("%s: kind %q, buckets %+v\nwant kind dwell, buckets %+v", query, got.Kind, got.Buckets, want)
				}
			}
			next := base.Add(time.Hour)
			// [900 1800 2100 2400]: p50 = 1800 + 0.5*300, p95 = 2100 + 0.85*300, p99 = 2100 + 0.97*300
			check("site="+yard+"&entityType=shipment", []bucket{
				{Start: base, Count: 4, Avg: 1800, Min: 900, Max: 2400, P50: 1950, P95: 2355, P99: 2391},
				{Start: next, Count: 1, Avg: 300, Min: 300, Max: 300, P50: 300, P95: 300, P99: 300},
			})
			// With the container's 3000: p50 = 2100, p95 = 2400 + 0.8*600, p99 = 2400 + 0.96*600
			check("site="+yard, []bucket{
				{Start: base, Count: 5, Avg: 2040, Min: 900, Max: 3000, P50: 2100, P95: 2880, P99: 2976},
				{Start: next, Count: 1, Avg: 300, Min: 300, Max: 300, P50: 300, P95: 300, P99: 300},
			})
			check("site=DOCK-1", []bucket{{Start: base, Count: 1, Avg: 2400, Min: 2400, Max: 2400, P50: 2400, P95: 2400, P99: 2400}})
			check("site=NOWHERE", []bucket{})
			// The departure's punctuality is still there.
			if m := metrics("milestone=departed"); m.Kind != "milestone" || len(m.Buckets) != 1 || m.Buckets[0].Count != 1 ||
				m.Buckets[0].Avg != 900 || m.Buckets[0].OnTimeRate == nil {
				t.Errorf("departed punctuality: %+v, want one bucket: S-4 900 s late", m)
			}

			for _, bad := range []string{"site=", "site=" + strings.Repeat("s", 201), "site=a&site=b"} {
				r := srv.do(t, "GET", "/api/v1/metrics/operational?"+bad, nil)
				validate(t, r)
				if r.StatusCode != 400 {
					t.Errorf("%s: %d %s, want 400", bad, r.StatusCode, r.Body)
					continue
				}
				wantProblem("site")(t, r)
			}
		})
	}
}
