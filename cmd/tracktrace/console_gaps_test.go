package main

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 20's gaps, on both engines: an entity's page lists what is inside
// it (the first 50, with a link to the list of them all, which pages on);
// the performance page filters operation durations by site and counts the
// exceptions raised per interval and code.
func TestConsoleChildrenSitesExceptions(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			const tenant = "acme"
			base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
			at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
			associated := func(parent string, min int) map[string]any {
				return event("EntityAssociated", at(min), `{"parentId": "`+parent+`"}`)
			}
			appendEvents(t, srv, tenant, "CNT-K1", "container", event("EntityRegistered", at(0), `{}`))
			appendEvents(t, srv, tenant, "PKG-K1", "package", associated("CNT-K1", 1),
				event("ExceptionRaised", at(5), `{"exceptionId": "EX-1", "code": "delay", "severity": "high"}`),
				event("ExceptionRaised", at(10), `{"exceptionId": "EX-2", "code": "damage", "severity": "low"}`))
			appendEvents(t, srv, tenant, "PKG-K2", "package", associated("CNT-K1", 1),
				event("ExceptionRaised", at(70), `{"exceptionId": "EX-1", "code": "delay", "severity": "high"}`))
			appendEvents(t, srv, tenant, "PKG-K3", "package", associated("CNT-K1", 1),
				event("EntityDissociated", at(2), `{"parentId": "CNT-K1"}`))
			// 51 packages in CNT-K2.
			var items []map[string]any
			for i := range 51 {
				items = append(items, map[string]any{"entityId": fmt.Sprintf("PKG-M%02d", i), "entityType": "package",
					"events": []map[string]any{associated("CNT-K2", 1)}})
			}
			if r := srv.do(t, "POST", "/api/v1/events/batch", map[string]any{"items": items}, "X-Tenant-ID", tenant); r.StatusCode != http.StatusOK {
				t.Fatalf("batch: %d %s", r.StatusCode, r.Body)
			}
			appendEvents(t, srv, tenant, "CNT-K2", "container", event("EntityRegistered", at(0), `{}`))
			// Loading at HUB (the completion's site, else the start's):
			// 600, 1800; at DOCK: 300; sorting at HUB: 120.
			operation := func(name, id, startSite, endSite string, from, to int) []map[string]any {
				site := func(s string) string {
					if s == "" {
						return ""
					}
					return `, "siteId": "` + s + `"`
				}
				return []map[string]any{
					event("OperationStarted", at(from), `{"operation": "`+name+`", "operationId": "`+id+`"`+site(startSite)+`}`),
					event("OperationCompleted", at(to), `{"operation": "`+name+`", "operationId": "`+id+`", "outcome": "succeeded"`+site(endSite)+`}`),
				}
			}
			appendEvents(t, srv, tenant, "PKG-OPS", "package", slices.Concat(
				operation("load_k", "op-1", "HUB", "", 0, 10),
				operation("load_k", "op-2", "HUB", "HUB", 0, 30),
				operation("load_k", "op-3", "HUB", "DOCK", 30, 35),
				operation("sort_k", "op-4", "HUB", "", 40, 42))...)
			// The last append read back: every event is in the log the
			// projections follow (PostgreSQL's gap-safe reads may hold
			// them back a moment), then none lags.
			var last struct{ Version int64 }
			srv.do(t, "GET", "/api/v1/entities/PKG-OPS?minVersion=8", nil, "X-Tenant-ID", tenant).JSON(t, &last)
			if last.Version != 8 {
				t.Fatalf("PKG-OPS at version %d, want 8", last.Version)
			}
			waitProjections(t, srv)

			t.Run("what is inside an entity", func(t *testing.T) {
				page := consolePage(t, srv, tenant, "/console/entities/CNT-K1", http.StatusOK)
				if got := dataAttrs(page, "child-id"); !slices.Equal(got, []string{"PKG-K1", "PKG-K2"}) {
					t.Errorf("CNT-K1 holds %v, want [PKG-K1 PKG-K2] (PKG-K3 was taken out)", got)
				}
				if strings.Contains(page, "parentId=CNT-K1") {
					t.Error("CNT-K1's page links to a list of its contents, though it shows them all")
				}
				if page := consolePage(t, srv, tenant, "/console/entities/PKG-K1", http.StatusOK); strings.Contains(page, "data-child-id") {
					t.Error("a package's page lists contents")
				}

				page = consolePage(t, srv, tenant, "/console/entities/CNT-K2", http.StatusOK)
				if got := dataAttrs(page, "child-id"); len(got) != 50 || got[0] != "PKG-M00" || got[49] != "PKG-M49" {
					t.Errorf("CNT-K2's page shows %d children (%v…), want the first 50", len(got), got[:min(len(got), 3)])
				}
				const all = "/console/entities?parentId=CNT-K2"
				if !strings.Contains(page, `href="`+all+`"`) {
					t.Fatalf("CNT-K2's page does not link to %s", all)
				}
				list := consolePage(t, srv, tenant, all, http.StatusOK)
				if n := strings.Count(list, `<tr data-entity-id="PKG-M`); n != 50 || !strings.Contains(list, `inside <a href="/console/entities/CNT-K2">CNT-K2</a>`) ||
					!strings.Contains(list, `name="parentId" value="CNT-K2"`) {
					t.Errorf("the list of CNT-K2's contents has %d rows, or does not say it is of CNT-K2's", n)
				}
				next := consolePage(t, srv, tenant, all+"&after=PKG-M49", http.StatusOK)
				if got := dataAttrs(next, "entity-id"); !slices.Equal(got, []string{"PKG-M50"}) {
					t.Errorf("the next page of CNT-K2's contents: %v, want [PKG-M50]", got)
				}
				consolePage(t, srv, tenant, "/console/entities?parentId=bad%20id", http.StatusBadRequest)
				if page := consolePage(t, srv, "other", "/console/entities?parentId=CNT-K2", http.StatusOK); strings.Contains(page, "PKG-M") {
					t.Error("another tenant's list shows the tenant's contents of CNT-K2")
				}
			})

			t.Run("durations per site", func(t *testing.T) {
				stats := func(path string) map[string]string {
					page := consolePage(t, srv, tenant, path, http.StatusOK)
					out := map[string]string{}
					for _, name := range []string{"count", "p50", "p95", "p99"} {
						if got := dataAttrs(page, name); len(got) > 0 {
							out[name] = got[0]
						}
					}
					if !strings.Contains(page, `id="m-site"`) {
						t.Errorf("%s has no site selector", path)
					}
					return out
				}
				near := func(s string, want float64) bool {
					v, err := strconv.ParseFloat(s, 64)
					return err == nil && math.Abs(v-want) < 1e-9
				}
				// [600 1800]: p50 1200, p95 = 600 + 0.95*1200, p99 = 600 + 0.99*1200
				if s := stats("/console/metrics?operation=load_k&site=HUB"); s["count"] != "2" || !near(s["p50"], 1200) ||
					!near(s["p95"], 1740) || !near(s["p99"], 1788) {
					t.Errorf("load_k at HUB: %v, want 2 operations, p50 1200, p95 1740, p99 1788", s)
				}
				if s := stats("/console/metrics?operation=load_k&site=DOCK"); s["count"] != "1" || !near(s["p50"], 300) {
					t.Errorf("load_k at DOCK: %v, want the one of 300 s", s)
				}
				// [120 600 1800]: p50 600
				if s := stats("/console/metrics?site=HUB"); s["count"] != "3" || !near(s["p50"], 600) {
					t.Errorf("every operation at HUB: %v, want 3, p50 600", s)
				}
				consolePage(t, srv, tenant, "/console/metrics?site="+strings.Repeat("s", 201), http.StatusBadRequest)
			})

			t.Run("exception counts", func(t *testing.T) {
				page := consolePage(t, srv, tenant, "/console/metrics", http.StatusOK)
				// Codes alphabetically: damage, delay.
				if got := dataAttrs(page, "exceptions"); !slices.Equal(got, []string{"2", "1"}) {
					t.Errorf("exceptions per interval %v, want [2 1]", got)
				}
				if got := dataAttrs(page, "code"); !slices.Equal(got, []string{"damage", "delay", "damage", "delay"}) {
					t.Errorf("codes %v", got)
				}
				if got := dataAttrs(page, "raised"); !slices.Equal(got, []string{"1", "1", "0", "1"}) {
					t.Errorf("raised per interval and code %v, want [1 1 0 1]", got)
				}
				if page := consolePage(t, srv, tenant, "/console/metrics?entityType=shipment", http.StatusOK); strings.Contains(page, "data-exceptions") ||
					!strings.Contains(page, "No exception raised in this range.") {
					t.Error("shipments raised no exception, the page shows some")
				}
				if page := consolePage(t, srv, "other", "/console/metrics", http.StatusOK); strings.Contains(page, "data-exceptions") {
					t.Error("another tenant's performance page counts the tenant's exceptions")
				}
			})
		})
	}
}
