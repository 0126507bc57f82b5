package main

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The children of an entity, from EPCIS aggregation and from REST
// associations: GET /api/v1/entities?parentId= lists the entities whose
// current parent it is, paged, with the other filters. On both engines,
// every answer checked against the OpenAPI document.
func TestEntityChildren(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	const (
		item1  = "urn:epc:id:sgtin:0614141.107346.1"
		item2  = "urn:epc:id:sgtin:0614141.107346.2"
		item3  = "urn:epc:id:sgtin:0614141.107346.3"
		pallet = "urn:epc:id:sscc:0614141.1234567890"
	)
	aggregation := func(n int, at, action string, children ...string) string {
		return fmt.Sprintf(`{"type": "AggregationEvent", "eventID": "urn:uuid:22222222-0000-4000-8000-00000000000%d", "eventTime": %q,
			"eventTimeZoneOffset": "+00:00", "action": %q, "bizStep": "packing", "parentID": %q, "childEPCs": ["%s"]}`,
			n, at, action, pallet, strings.Join(children, `", "`))
	}
	// Three items packed onto the pallet, item2 unpacked an hour later.
	doc := `{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"], "type": "EPCISDocument", "schemaVersion": "2.0",
		"creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": [` +
		aggregation(1, "2026-01-01T09:00:00Z", "ADD", item1, item2, item3) + `, ` +
		aggregation(2, "2026-01-01T10:00:00Z", "DELETE", item2) + `]}}`
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, append(eng.env(t), "ReadModels__RefreshInterval=00:00:00.2"))
			do := checked(srv, validate)
			if job := capture(t, do, "acme", "application/json", []byte(doc)); !job.Success || job.Captured != 2 {
				t.Fatalf("capture: %+v", job)
			}
			// A package put onto the pallet through the API, another put
			// on and taken off, and one of another tenant's.
			for _, a := range []struct{ tenant, id, events string }{
				{"acme", "PKG-R1", `[{"type": "EntityAssociated", "occurredAt": "2026-01-01T11:00:00Z", "data": {"parentId": "` + pallet + `"}}]`},
				{"acme", "PKG-R2", `[{"type": "EntityAssociated", "occurredAt": "2026-01-01T11:00:00Z", "data": {"parentId": "` + pallet + `"}},
					{"type": "EntityDissociated", "occurredAt": "2026-01-01T11:30:00Z", "data": {"parentId": "` + pallet + `"}}]`},
				{"other", "PKG-R3", `[{"type": "EntityAssociated", "occurredAt": "2026-01-01T11:00:00Z", "data": {"parentId": "` + pallet + `"}}]`},
			} {
				r := do(t, "POST", "/api/v1/entities/"+a.id+"/events", map[string]any{"entityType": "package", "events": rawJSON(a.events)},
					"X-Tenant-ID", a.tenant)
				if r.StatusCode != 201 {
					t.Fatalf("append %s: %d %s", a.id, r.StatusCode, r.Body)
				}
			}
			waitProjections(t, srv)
			type page struct {
				Items []struct {
					EntityID, EntityType, ParentID string
				}
				NextCursor string
			}
			list := func(query, tenant string) page {
				t.Helper()
				r := do(t, "GET", "/api/v1/entities?"+query, nil, "X-Tenant-ID", tenant)
				if r.StatusCode != 200 {
					t.Fatalf("%s: %d %s", query, r.StatusCode, r.Body)
				}
				var p page
				r.JSON(t, &p)
				return p
			}
			ids := func(p page) []string {
				out := []string{}
				for _, it := range p.Items {
					out = append(out, it.EntityID)
				}
				return out
			}
			children := "parentId=" + url.QueryEscape(pallet)
			// The EPCIS mapping follows the log: wait for its associations.
			want := []string{"PKG-R1", item1, item3}
			deadline := time.Now().Add(20 * time.Second)
			for got := ids(list(children, "acme")); !slices.Equal(got, want); got = ids(list(children, "acme")) {
				if time.Now().After(deadline) {
					t.Fatalf("children of the pallet %v, want %v", got, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, it := range list(children, "acme").Items {
				if it.ParentID != pallet {
					t.Errorf("child %s has parentId %q", it.EntityID, it.ParentID)
				}
			}
			first := list(children+"&limit=2", "acme")
			if got := ids(first); !slices.Equal(got, []string{"PKG-R1", item1}) || first.NextCursor == "" {
				t.Fatalf("first page of 2: %v, next %q", got, first.NextCursor)
			}
			if got := ids(list(children+"&limit=2&cursor="+url.QueryEscape(first.NextCursor), "acme")); !slices.Equal(got, []string{item3}) {
				t.Errorf("second page of 2: %v, want [%s]", got, item3)
			}
			for query, want := range map[string][]string{
				children + "&entityType=package":         {"PKG-R1", item1, item3},
				children + "&entityType=container":       {},
				"parentId=" + url.QueryEscape(item1):     {},
				"parentId=NOPE":                          {},
				"entityType=container&status=registered": {pallet},
			} {
				if got := ids(list(query, "acme")); !slices.Equal(got, want) {
					t.Errorf("%s: %v, want %v", query, got, want)
				}
			}
			// The other tenant's association is projected in its own time.
			for got := ids(list(children, "other")); !slices.Equal(got, []string{"PKG-R3"}); got = ids(list(children, "other")) {
				if time.Now().After(deadline) {
					t.Fatalf("the other tenant's children of the pallet: %v, want [PKG-R3]", got)
				}
				time.Sleep(50 * time.Millisecond)
			}

			for query, field := range map[string]string{
				"parentId=":         "parentId",
				"parentId=bad%20id": "parentId",
				// A cursor of the list of all entities is not one of the
				// pallet's children.
				children + "&cursor=" + url.QueryEscape(list("limit=1", "acme").NextCursor): "cursor",
			} {
				r := do(t, "GET", "/api/v1/entities?"+query, nil, "X-Tenant-ID", "acme")
				if r.StatusCode != 400 {
					t.Errorf("%s: %d %s, want 400", query, r.StatusCode, r.Body)
					continue
				}
				wantProblem(field)(t, r)
			}
		})
	}
}

// Operation durations per site (the completion's siteId, else the
// start's), dwell time at a site as before, and exceptions raised counted
// per interval and code, from GET /api/v1/metrics/operational with
// hand-computed expectations; contradictory parameters are 400s naming
// the parameter. On both engines, every answer checked against the
// OpenAPI document.
func TestMetricsPerSiteAndExceptions(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	stamp := func(min int) string { return base.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	e := func(typ string, min int, data string) map[string]any {
		return map[string]any{"type": typ, "occurredAt": stamp(min), "data": rawJSON(data)}
	}
	op := func(typ, name, id, site string, min int) map[string]any {
		data := fmt.Sprintf(`{"operation": %q, "operationId": %q`, name, id)
		if typ == "OperationCompleted" {
			data += `, "outcome": "succeeded"`
		}
		if site != "" {
			data += fmt.Sprintf(`, "siteId": %q`, site)
		}
		return e(typ, min, data+"}")
	}
	raise := func(id, code string, min int) map[string]any {
		return e("ExceptionRaised", min, fmt.Sprintf(`{"exceptionId": %q, "code": %q, "severity": "high"}`, id, code))
	}
	entities := []struct {
		id, entityType string
		events         []map[string]any
	}{
		{"PKG-O1", "package", []map[string]any{
			op("OperationStarted", "loading", "op-1", "HUB", 0), op("OperationCompleted", "loading", "op-1", "", 10), // 600 s at HUB
			op("OperationStarted", "loading", "op-2", "HUB", 20), op("OperationCompleted", "loading", "op-2", "DOCK", 25), // 300 s at DOCK
			raise("EX-1", "delay", 5), raise("EX-2", "damage", 50)}},
		{"PKG-O2", "package", []map[string]any{
			op("OperationStarted", "loading", "op-1", "HUB", 0), op("OperationCompleted", "loading", "op-1", "HUB", 30), // 1800 s at HUB
			op("OperationStarted", "sorting", "op-2", "HUB", 30), op("OperationCompleted", "sorting", "op-2", "", 32), // 120 s at HUB
			raise("EX-1", "delay", 65)}},
		{"PKG-O3", "package", []map[string]any{
			e("MilestoneReached", 0, `{"milestone": "arrived", "siteId": "HUB"}`),
			e("MilestoneReached", 40, `{"milestone": "departed", "siteId": "HUB"}`)}}, // dwell 2400 s
		{"SHP-O1", "shipment", []map[string]any{raise("EX-1", "delay", 10)}},
	}
	type answer struct {
		Kind    string
		Buckets []struct {
			Start                        time.Time
			Count                        int
			Avg, Min, Max, P50, P95, P99 float64
			ByCode                       map[string]int
		}
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			do := checked(srv, validate)
			for _, x := range entities {
				r := do(t, "POST", "/api/v1/entities/"+x.id+"/events", map[string]any{"entityType": x.entityType, "events": x.events})
				if r.StatusCode != 201 {
					t.Fatalf("append %s: %d %s", x.id, r.StatusCode, r.Body)
				}
			}
			var last struct{ Version int64 }
			do(t, "GET", "/api/v1/entities/SHP-O1?minVersion=1", nil).JSON(t, &last)
			waitProjections(t, srv)
			metrics := func(query string, tenant ...string) answer {
				t.Helper()
				headers := []string{}
				if len(tenant) > 0 {
					headers = []string{"X-Tenant-ID", tenant[0]}
				}
				r := do(t, "GET", "/api/v1/metrics/operational?interval=PT1H&from="+url.QueryEscape(stamp(-120))+
					"&to="+url.QueryEscape(stamp(120))+"&"+query, nil, headers...)
				if r.StatusCode != 200 {
					t.Fatalf("%s: %d %s", query, r.StatusCode, r.Body)
				}
				var a answer
				r.JSON(t, &a)
				return a
			}
			near := func(a, b float64) bool { d := a - b; return d < 1e-6 && d > -1e-6 }
			// One bucket at base: kind, count and avg/p50/p95/p99.
			durations := func(query, kind string, count int, avg, p50, p95, p99 float64) {
				t.Helper()
				a := metrics(query)
				if a.Kind != kind || len(a.Buckets) != 1 || !a.Buckets[0].Start.Equal(base) || a.Buckets[0].Count != count ||
					!near(a.Buckets[0].Avg, avg) || !near(a.Buckets[0].P50, p50) || !near(a.Buckets[0].P95, p95) || !near(a.Buckets[0].P99, p99) {
					t.Errorf("%s: %+v\nwant kind %s, one bucket at %s: %d, avg %v, p50 %v, p95 %v, p99 %v", query, a, kind, base, count, avg, p50, p95, p99)
				}
			}
			// [600 1800]: p95 = 600 + 0.95*1200, p99 = 600 + 0.99*1200
			durations("operation=loading&site=HUB", "operation", 2, 1200, 1200, 1740, 1788)
			// [120 600 1800]: p50 = 600, p95 = 600 + 0.9*1200, p99 = 600 + 0.98*1200
			durations("kind=operation&site=HUB", "operation", 3, 840, 600, 1680, 1776)
			durations("operation=loading&site=DOCK", "operation", 1, 300, 300, 300, 300)
			// [300 600 1800]: p95 = 600 + 0.9*1200, p99 = 600 + 0.98*1200
			durations("operation=loading", "operation", 3, 900, 600, 1680, 1776)
			durations("site=HUB", "dwell", 1, 2400, 2400, 2400, 2400)
			durations("kind=dwell&site=HUB", "dwell", 1, 2400, 2400, 2400, 2400)
			if a := metrics("operation=loading&site=NOWHERE"); a.Kind != "operation" || len(a.Buckets) != 0 {
				t.Errorf("loading at a site without operations: %+v", a)
			}

			type counts struct {
				start time.Time
				count int
				by    map[string]int
			}
			exceptions := func(query string, want []counts, tenant ...string) {
				t.Helper()
				a := metrics(query, tenant...)
				got := []counts{}
				for _, b := range a.Buckets {
					got = append(got, counts{b.Start, b.Count, b.ByCode})
				}
				if a.Kind != "exception" || !reflect.DeepEqual(got, want) {
					t.Errorf("%s: kind %s, %+v\nwant kind exception, %+v", query, a.Kind, got, want)
				}
			}
			next := base.Add(time.Hour)
			exceptions("kind=exception", []counts{{base, 3, map[string]int{"delay": 2, "damage": 1}}, {next, 1, map[string]int{"delay": 1}}})
			exceptions("code=delay", []counts{{base, 2, map[string]int{"delay": 2}}, {next, 1, map[string]int{"delay": 1}}})
			exceptions("kind=exception&entityType=shipment", []counts{{base, 1, map[string]int{"delay": 1}}})
			exceptions("kind=exception", []counts{}, "other")

			for query, field := range map[string]string{
				"kind=nope":                     "kind",
				"kind=exception&site=HUB":       "site",
				"code=delay&site=HUB":           "site",
				"kind=dwell&operation=loading":  "operation",
				"kind=milestone&code=delay":     "code",
				"operation=loading&code=delay":  "code",
				"code=nope":                     "code",
				"operation=loading&milestone=x": "milestone",
				"operation=loading&site=":       "site",
				"kind=operation&kind=exception": "kind",
			} {
				r := do(t, "GET", "/api/v1/metrics/operational?"+query, nil)
				if r.StatusCode != 400 {
					t.Errorf("%s: %d %s, want 400", query, r.StatusCode, r.Body)
					continue
				}
				wantProblem(field)(t, r)
			}
		})
	}
}
