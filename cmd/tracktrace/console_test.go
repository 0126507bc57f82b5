package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/httpapi/ssetest"
	"github.com/tlm/tracktrace/internal/subscription"
)

// consoleCSP is the Content-Security-Policy every console answer carries.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// consolePage gets a console page as a tenant and checks what every page
// answers with: the status, HTML, the CSP.
func consolePage(t *testing.T, srv *server, tenant, path string, status int) string {
	t.Helper()
	r := srv.do(t, "GET", path, nil, "X-Tenant-ID", tenant)
	if r.StatusCode != status {
		t.Fatalf("GET %s as %s: %d, want %d\n%s", path, tenant, r.StatusCode, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if csp := r.Header.Get("Content-Security-Policy"); csp != consoleCSP {
		t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, csp, consoleCSP)
	}
	return string(r.Body)
}

// appendEvents records events (maps of type, occurredAt, data) to an
// entity of a tenant.
func appendEvents(t *testing.T, srv *server, tenant, entityID, entityType string, events ...map[string]any) {
	t.Helper()
	r := srv.do(t, "POST", "/api/v1/entities/"+entityID+"/events",
		map[string]any{"entityType": entityType, "expectedVersion": "any", "events": events}, "X-Tenant-ID", tenant)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("append to %s: %d %s", entityID, r.StatusCode, r.Body)
	}
}

func event(typ string, at time.Time, data string) map[string]any {
	return map[string]any{"type": typ, "occurredAt": at.UTC().Format(time.RFC3339), "data": rawJSON(data)}
}

// dataAttrs returns the values of a data-* attribute in a page, in order.
func dataAttrs(page, name string) []string {
	var out []string
	for _, m := range regexp.MustCompile(` data-`+name+`="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// consolePercentiles are the hand-computed percentiles of seedConsole's
// sort_test durations. Sorted: 12 45 60 75 90 120 150 200 240 600;
// percentile_cont at p·(n−1): p50 at 4.5 → 90 + 0.5·30; p95 at 8.55 →
// 240 + 0.55·360; p99 at 8.91 → 240 + 0.91·360.
var consolePercentiles = map[string]float64{"p50": 105, "p95": 438, "p99": 567.6}

// seedConsole records what the console's tests look at, as tenant: a site
// HUB; entity, a shipment of six events (registered with a reference that
// is a script, four location reports, the third at HUB, and the open
// exception EX-1 between the last two); PKG-CONSOLE-OPS, ten sort_test
// operations in base's hour (consolePercentiles); PKG-CONSOLE-MILES, four
// in_transit milestones, three of them on time; and it waits until the
// read models have it all.
func seedConsole(t *testing.T, srv *server, tenant, entity string, base time.Time) {
	t.Helper()
	if r := srv.do(t, "PUT", "/api/v1/sites/HUB", map[string]any{"name": "Rotterdam <hub>",
		"geometry": map[string]any{"type": "Point", "coordinates": []float64{4.45, 51.92}, "radius": 2000}},
		"X-Tenant-ID", tenant); r.StatusCode != http.StatusCreated {
		t.Fatalf("put site: %d %s", r.StatusCode, r.Body)
	}
	appendEvents(t, srv, tenant, entity, "shipment",
		event("EntityRegistered", base, `{"reference": "<script>alert('ref')</script>"}`),
		event("LocationReported", base.Add(1*time.Minute), `{"lat": 52.37, "lon": 4.9}`),
		event("LocationReported", base.Add(2*time.Minute), `{"lat": 52.1, "lon": 4.6}`),
		event("LocationReported", base.Add(3*time.Minute), `{"lat": 51.92, "lon": 4.45, "siteId": "HUB"}`),
		event("ExceptionRaised", base.Add(4*time.Minute),
			`{"exceptionId": "EX-1", "code": "damage", "severity": "high", "description": "<script>alert('x')</script> crushed"}`),
		event("LocationReported", base.Add(5*time.Minute), `{"lat": 51.5, "lon": 3.9}`))
	// Operation durations of one hour's bucket (seconds), and
	// milestone delays against plannedAt (the tolerance is 15 min).
	durations := []int{600, 12, 45, 60, 75, 90, 120, 150, 200, 240}
	var ops []map[string]any
	for i, d := range durations {
		start := base.Add(time.Duration(i*4) * time.Minute)
		id := fmt.Sprintf(`{"operation": "sort_test", "operationId": "op-%d"}`, i)
		ops = append(ops, event("OperationStarted", start, id),
			event("OperationCompleted", start.Add(time.Duration(d)*time.Second),
				fmt.Sprintf(`{"operation": "sort_test", "operationId": "op-%d", "outcome": "succeeded"}`, i)))
	}
	appendEvents(t, srv, tenant, "PKG-CONSOLE-OPS", "package", ops...)
	var miles []map[string]any
	for i, delay := range []int{-60, 300, 900, 1800} {
		occurred := base.Add(time.Duration(10+i) * time.Minute)
		miles = append(miles, event("MilestoneReached", occurred, fmt.Sprintf(`{"milestone": "in_transit", "plannedAt": %q}`,
			occurred.Add(-time.Duration(delay)*time.Second).Format(time.RFC3339))))
	}
	appendEvents(t, srv, tenant, "PKG-CONSOLE-MILES", "package", miles...)
	waitProjected(t, srv, "PKG-CONSOLE-MILES", 4, "X-Tenant-ID", tenant)
}

// waitProjected waits until the read models have projected version of
// entity, and with it every event recorded before (one transaction applies
// a batch of the log to every projection). waitProjections alone is not
// enough on PostgreSQL: its lag counts the events below the log's read
// horizon, which other tests' transactions hold back.
func waitProjected(t *testing.T, srv *server, entity string, version int, headers ...string) {
	t.Helper()
	path := fmt.Sprintf("/api/v1/entities/%s?minVersion=%d", entity, version)
	if r := srv.do(t, "GET", path, nil, headers...); r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.StatusCode, r.Body)
	}
}

// Issue 20: the console, served by the binary on both engines: its pages
// render the tenant's data escaped, under a strict CSP, and nothing of
// another tenant's; an entity's map has a numbered point per reported
// location and its sites; the performance page's table holds the
// hand-computed percentiles of a seeded set; the live streams send an
// event as it is recorded, and the fragment a page then fetches shows it.
func TestConsole(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			const tenant, entity = "acme", "SHP-CONSOLE-1"
			base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)

			seedConsole(t, srv, tenant, entity, base)
			waitProjections(t, srv)

			t.Run("entity page", func(t *testing.T) {
				page := consolePage(t, srv, tenant, "/console/entities/"+entity, http.StatusOK)
				for _, want := range []string{"No authentication", "&lt;script&gt;alert(&#39;ref&#39;)&lt;/script&gt;",
					"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; crushed", `data-exception-id="EX-1"`, "damage",
					`data-site-id="HUB"`, "Rotterdam &lt;hub&gt;"} {
					if !strings.Contains(page, want) {
						t.Errorf("the entity page lacks %q", want)
					}
				}
				if strings.Contains(page, "<script>alert") {
					t.Error("the entity page has an unescaped <script> of the entity's data")
				}
				if n := strings.Count(page, `<g class="track-point"`); n != 4 {
					t.Errorf("the map has %d points, want the 4 location reports", n)
				}
				if got := dataAttrs(page, "index"); strings.Join(got, ",") != "1,2,3,4" {
					t.Errorf("the map's points are numbered %v", got)
				}
				if n := strings.Count(page, `<tr data-version=`); n != 6 {
					t.Errorf("the timeline has %d rows, want 6", n)
				}
				if strings.Contains(page, " style=") || regexp.MustCompile(`<script>|<style`).MatchString(page) {
					t.Error("the page has inline script or style, which its CSP forbids")
				}
			})

			t.Run("another tenant's entity is not found", func(t *testing.T) {
				for _, path := range []string{"/console/entities/" + entity, "/console/entities/" + entity + "/fragment"} {
					page := consolePage(t, srv, "other", path, http.StatusNotFound)
					if strings.Contains(page, "EX-1") || strings.Contains(page, "alert") {
						t.Errorf("%s shows another tenant's data", path)
					}
				}
				if page := consolePage(t, srv, "other", "/console/", http.StatusOK); strings.Contains(page, entity) {
					t.Error("another tenant's list shows the entity")
				}
				if page := consolePage(t, srv, tenant, "/console/?entityType=shipment", http.StatusOK); !strings.Contains(page, `data-entity-id="`+entity+`"`) {
					t.Error("the tenant's list of shipments lacks the entity")
				}
			})

			t.Run("search and bad input", func(t *testing.T) {
				r := srv.do(t, "GET", "/console/entities?id="+entity, nil, "X-Tenant-ID", tenant)
				if r.StatusCode != http.StatusOK || r.Request.URL.Path != "/console/entities/"+entity {
					t.Errorf("search by id: %d at %s, want the entity page", r.StatusCode, r.Request.URL.Path)
				}
				page := consolePage(t, srv, tenant, "/console/entities?id=%3Cscript%3Ealert(1)%3C/script%3E", http.StatusBadRequest)
				if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
					t.Error("the search's answer does not show the id it was given as text")
				}
				consolePage(t, srv, tenant, "/console/?status=lost", http.StatusBadRequest)
				consolePage(t, srv, tenant, "/console/metrics?range=1y", http.StatusBadRequest)
				consolePage(t, srv, tenant, "/console/no-such-page", http.StatusNotFound)
				consolePage(t, srv, tenant, "/console/entities/bad%20id", http.StatusNotFound)
			})

			t.Run("performance page", func(t *testing.T) {
				page := consolePage(t, srv, tenant, "/console/metrics?operation=sort_test", http.StatusOK)
				for name, want := range consolePercentiles {
					got := dataAttrs(page, name)
					if len(got) == 0 {
						t.Fatalf("no %s in the durations table:\n%s", name, page)
					}
					v, err := strconv.ParseFloat(got[0], 64)
					if err != nil || math.Abs(v-want) > 1e-9 {
						t.Errorf("%s = %s, want %v", name, got[0], want)
					}
				}
				if got := dataAttrs(page, "count"); len(got) < 1 || got[0] != "10" {
					t.Errorf("bucket counts %v, want the 10 operations in one", got)
				}
				// Delays −60, 300, 900, 1800 s: three within 15 minutes.
				if got := dataAttrs(page, "rate-on-time"); len(got) != 1 || got[0] != "0.75" {
					t.Errorf("on-time rates %v, want [0.75]", got)
				}
				if n := strings.Count(page, `src="data:image/svg`); n != 2 {
					t.Errorf("%d charts, want 2", n)
				}
			})

			t.Run("operations page", func(t *testing.T) {
				page := consolePage(t, srv, tenant, "/console/ops", http.StatusOK)
				for _, want := range []string{`data-projection="timeline"`, `data-projection="entities"`,
					`data-follower="alert rules"`, "This tenant has no subscription."} {
					if !strings.Contains(page, want) {
						t.Errorf("the operations page lacks %q", want)
					}
				}
			})

			t.Run("assets", func(t *testing.T) {
				page := consolePage(t, srv, tenant, "/console/", http.StatusOK)
				css := regexp.MustCompile(`href="(/console/static/console\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(page)
				if css == nil {
					t.Fatal("the page links no stylesheet")
				}
				r := srv.do(t, "GET", css[1], nil)
				if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") ||
					!strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
					t.Errorf("GET %s: %d %q %q", css[1], r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
				}
				if r := srv.do(t, "GET", "/console/static/nothing.js", nil); r.StatusCode != http.StatusNotFound {
					t.Errorf("an unknown asset: %d", r.StatusCode)
				}
			})

			t.Run("live", func(t *testing.T) {
				entityStream := consoleStream(t, srv, tenant, "/console/entities/"+entity+"/stream")
				listStream := consoleStream(t, srv, tenant, "/console/stream?entityType=shipment")
				other := consoleStream(t, srv, "other", "/console/stream")
				appendEvents(t, srv, tenant, "PKG-CONSOLE-OPS", "package", event("LocationReported", base.Add(50*time.Minute), `{"lat": 50, "lon": 5}`))
				appendEvents(t, srv, tenant, entity, "shipment", event("LocationReported", base.Add(6*time.Minute), `{"lat": 51.2, "lon": 3.5}`))
				appendEvents(t, srv, "other", "OTHER-1", "shipment", event("EntityRegistered", base, `{}`))
				for name, s := range map[string]*ssetest.Stream{"entity": entityStream, "list": listStream} {
					e := consoleEvent(t, s)
					if e.EntityID != entity || e.Type != "LocationReported" || e.Version != 7 {
						t.Errorf("the %s stream's first event: %s v%d of %s, want the shipment's LocationReported v7", name, e.Type, e.Version, e.EntityID)
					}
				}
				if e := consoleEvent(t, other); e.EntityID != "OTHER-1" {
					t.Errorf("another tenant's stream sent an event of %s", e.EntityID)
				}
				// What the page's script then fetches: it waits for the
				// projections to reach the version.
				page := consolePage(t, srv, tenant, "/console/entities/"+entity+"/fragment?v=7", http.StatusOK)
				if !strings.HasPrefix(page, `<div id="entity-live"`) || strings.Contains(page, "<html") {
					t.Errorf("the fragment is not the live part alone:\n%.200s", page)
				}
				if n := strings.Count(page, `<g class="track-point"`); n != 5 {
					t.Errorf("the fragment's map has %d points after the new location, want 5", n)
				}
				list := consolePage(t, srv, tenant, "/console/fragments/entities?entityType=shipment&entity="+entity+"&v=7", http.StatusOK)
				if !strings.Contains(list, `data-entity-id="`+entity+`" data-version="7"`) {
					t.Errorf("the list fragment does not show version 7 of the entity:\n%s", list)
				}
			})
		})
	}
}

// consoleStream opens a console live stream as a tenant.
func consoleStream(t *testing.T, srv *server, tenant, path string) *ssetest.Stream {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Tenant-ID", tenant)
	return ssetest.Open(t, http.DefaultClient, req)
}

// consoleEvent reads a console stream's next event: unnamed (EventSource
// hands it to onmessage), its id the event's position.
func consoleEvent(t *testing.T, s *ssetest.Stream) subscription.Event {
	t.Helper()
	m := s.Events(1)[0]
	var e subscription.Event
	if err := json.Unmarshal([]byte(m.Data), &e); err != nil {
		t.Fatalf("event data %q: %v", m.Data, err)
	}
	if m.Event != "" || m.ID != strconv.FormatInt(e.Position, 10) {
		t.Errorf("event named %q with id %q, want no name and the position %d", m.Event, m.ID, e.Position)
	}
	return e
}
