package main

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/tlm/tracktrace/internal/httpapi"
	"github.com/tlm/tracktrace/internal/tracking"
)

// openAPIValidator checks the served document with a real OpenAPI 3.1
// validator and returns a function that validates responses against it.
func openAPIValidator(t *testing.T) func(t *testing.T, r response) {
	t.Helper()
	doc, err := libopenapi.NewDocument(httpapi.OpenAPI)
	if err != nil {
		t.Fatalf("parse OpenAPI document: %v", err)
	}
	if doc.GetVersion() != "3.1.0" {
		t.Fatalf("OpenAPI version %s, want 3.1.0", doc.GetVersion())
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("build validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("OpenAPI document: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	var mu sync.Mutex // the validator is not documented as concurrency-safe
	return func(t *testing.T, r response) {
		t.Helper()
		req := r.Request.Clone(r.Request.Context())
		req.Body = io.NopCloser(bytes.NewReader(r.Sent))
		resp := *r.Response
		resp.Body = io.NopCloser(bytes.NewReader(r.Body))
		mu.Lock()
		ok, verrs := v.ValidateHttpResponse(req, &resp)
		if r.StatusCode < 300 {
			// What the service accepted must be what the document says it
			// accepts: the request, body included.
			req := r.Request.Clone(r.Request.Context())
			req.Body = io.NopCloser(bytes.NewReader(r.Sent))
			okReq, reqErrs := v.ValidateHttpRequest(req)
			ok, verrs = ok && okReq, append(verrs, reqErrs...)
		}
		mu.Unlock()
		if !ok {
			for _, e := range verrs {
				t.Errorf("%s %s → %d does not match the OpenAPI document: %s (%s)\n%s",
					r.Request.Method, r.Request.URL.Path, r.StatusCode, e.Message, e.Reason, r.Body)
			}
		}
	}
}

type apiCase struct {
	name    string
	method  string
	path    string
	body    any
	headers []string
	status  int
	// check, when set, asserts more of the response.
	check func(t *testing.T, r response)
}

var t0 = time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)

func at(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }

func ev(typ string, d time.Duration, data string) map[string]any {
	return map[string]any{"type": typ, "occurredAt": at(d), "data": rawJSON(data)}
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func wantProblem(field string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type = %q, want application/problem+json", ct)
		}
		var p struct {
			Type, Title, Detail string
			Status              int
			Errors              []struct{ Field, Message string }
		}
		r.JSON(t, &p)
		if p.Status != r.StatusCode || p.Title == "" || p.Type == "" {
			t.Errorf("problem %+v does not describe status %d", p, r.StatusCode)
		}
		if field != "" && !strings.Contains(string(r.Body), field) {
			t.Errorf("problem does not name %q: %s", field, r.Body)
		}
	}
}

// TestAPI runs the pinned contract's calls, their successes and their
// 400/404/409/413/415/422 answers, on both engines; every response is
// validated against the OpenAPI document.
func TestAPI(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, append(eng.env(t), "Server__MaxBodyBytes=64KiB", "EventStore__MaxEventBytes=8KiB"))
			id := "SHP-" + uuid.NewString()[:8]
			regID := uuid.New()
			register := map[string]any{"entityType": "shipment", "expectedVersion": "none", "events": []any{
				map[string]any{"eventId": regID, "type": "EntityRegistered", "occurredAt": at(0),
					"data": rawJSON(`{"reference":"PO-4711","origin":"AMS","destination":"FRA"}`)}}}
			cases := []apiCase{
				{name: "register", method: "POST", path: "/api/v1/entities/" + id + "/events", body: register, status: 201,
					check: func(t *testing.T, r response) {
						var body struct {
							EntityID string
							Version  int64
							Events   []struct {
								EventID  uuid.UUID
								Version  int64
								Position int64
							}
						}
						r.JSON(t, &body)
						if body.EntityID != id || body.Version != 1 || len(body.Events) != 1 || body.Events[0].EventID != regID {
							t.Errorf("body = %+v", body)
						}
						if r.Header.Get("ETag") != `"1"` || r.Header.Get("Location") != "/api/v1/entities/"+id {
							t.Errorf("ETag %q Location %q", r.Header.Get("ETag"), r.Header.Get("Location"))
						}
					}},
				{name: "replay answers the original result", method: "POST", path: "/api/v1/entities/" + id + "/events", body: register, status: 201,
					check: func(t *testing.T, r response) {
						if r.Header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(r.Body), `"version":1`) {
							t.Errorf("replay: %s %v", r.Body, r.Header)
						}
					}},
				{name: "milestones with If-Match", method: "POST", path: "/api/v1/entities/" + id + "/events", headers: []string{"If-Match", `"1"`},
					body: map[string]any{"events": []any{
						ev("MilestoneReached", time.Minute, `{"milestone":"picked_up","siteId":"AMS-1","location":{"lat":52.3,"lon":4.76}}`),
						ev("OperationStarted", 2*time.Minute, `{"operation":"loading","operationId":"op-1","siteId":"AMS-1"}`),
						ev("OperationCompleted", 20*time.Minute, `{"operation":"loading","operationId":"op-1","outcome":"succeeded"}`),
						ev("ExceptionRaised", 30*time.Minute, `{"exceptionId":"ex-1","code":"delay","severity":"medium","description":"traffic"}`),
						ev("MilestoneReached", 40*time.Minute, `{"milestone":"departed","location":{"lat":52.0,"lon":5.0}}`),
					}}, status: 201,
					check: func(t *testing.T, r response) {
						if r.Header.Get("ETag") != `"6"` {
							t.Errorf("ETag = %q, want \"6\"", r.Header.Get("ETag"))
						}
					}},
				{name: "late scan", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("LocationReported", 10*time.Minute, `{"lat":1,"lon":1}`)}}, status: 201},
				{name: "entity state", method: "GET", path: "/api/v1/entities/" + id + "?minVersion=7", status: 200,
					check: func(t *testing.T, r response) {
						var st struct {
							EntityType, Status string
							Version            int64
							LastLocation       struct{ Lat, Lon float64 }
							OpenExceptions     []struct{ ExceptionID string }
						}
						r.JSON(t, &st)
						if st.EntityType != "shipment" || st.Status != "in_transit" || st.Version != 7 ||
							st.LastLocation.Lat != 52.0 || len(st.OpenExceptions) != 1 || st.OpenExceptions[0].ExceptionID != "ex-1" {
							t.Errorf("state = %+v (the late scan must not move lastLocation)", st)
						}
					}},
				{name: "entity state consistent", method: "GET", path: "/api/v1/entities/" + id + "?consistent=true", status: 200},
				{name: "timeline", method: "GET", path: "/api/v1/entities/" + id + "/timeline?minVersion=7", status: 200,
					check: func(t *testing.T, r response) {
						var tl struct {
							Entries          []struct{ Version int64 }
							ProjectedVersion int64
						}
						r.JSON(t, &tl)
						var got []int64
						for _, e := range tl.Entries {
							got = append(got, e.Version)
						}
						if tl.ProjectedVersion != 7 || fmt.Sprint(got) != "[1 2 3 7 4 5 6]" {
							t.Errorf("timeline versions %v (projected %d), want [1 2 3 7 4 5 6] by occurredAt", got, tl.ProjectedVersion)
						}
					}},
				{name: "timeline page", method: "GET", path: "/api/v1/entities/" + id + "/timeline?limit=3&from=" + url.QueryEscape(at(time.Minute)), status: 200,
					check: func(t *testing.T, r response) {
						var tl struct {
							Entries    []struct{ Version int64 }
							NextCursor string
						}
						r.JSON(t, &tl)
						if len(tl.Entries) != 3 || tl.Entries[0].Version != 2 || tl.NextCursor == "" {
							t.Fatalf("first page: %s", r.Body)
						}
						var next struct{ Entries []struct{ Version int64 } }
						srv.do(t, "GET", "/api/v1/entities/"+id+"/timeline?limit=3&from="+url.QueryEscape(at(time.Minute))+"&cursor="+tl.NextCursor, nil).JSON(t, &next)
						if len(next.Entries) != 3 || next.Entries[0].Version != 4 {
							t.Errorf("second page: %+v", next)
						}
					}},
				{name: "wait for projections", method: "GET", path: "/api/v1/projections", status: 200,
					check: func(t *testing.T, r response) { waitProjections(t, srv) }},
				{name: "list entities", method: "GET", path: "/api/v1/entities?entityType=shipment&status=in_transit", status: 200,
					check: func(t *testing.T, r response) {
						if !strings.Contains(string(r.Body), `"entityId":"`+id+`"`) {
							t.Errorf("list lacks %s: %s", id, r.Body)
						}
					}},
				{name: "list other type", method: "GET", path: "/api/v1/entities?entityType=vehicle", status: 200,
					check: func(t *testing.T, r response) {
						if strings.Contains(string(r.Body), id) {
							t.Errorf("vehicle list holds the shipment: %s", r.Body)
						}
					}},
				{name: "metrics", method: "GET", path: "/api/v1/metrics/operational?operation=loading&interval=PT1H&from=" + url.QueryEscape(at(-time.Hour)) + "&to=" + url.QueryEscape(at(time.Hour)), status: 200,
					check: func(t *testing.T, r response) {
						var m struct {
							Buckets []struct {
								Count    int
								Avg, P99 float64
							}
						}
						r.JSON(t, &m)
						if len(m.Buckets) != 1 || m.Buckets[0].Count != 1 || m.Buckets[0].Avg != 1080 || m.Buckets[0].P99 != 1080 {
							t.Errorf("metrics: %s (want one bucket: loading took 18 min = 1080 s)", r.Body)
						}
					}},
				{name: "metrics bad interval", method: "GET", path: "/api/v1/metrics/operational?interval=often", status: 400, check: wantProblem("interval")},
				{name: "timeline of missing entity", method: "GET", path: "/api/v1/entities/nope-" + id + "/timeline", status: 404, check: wantProblem("")},
				{name: "bad timeline cursor", method: "GET", path: "/api/v1/entities/" + id + "/timeline?cursor=!!", status: 400, check: wantProblem("cursor")},
				{name: "rebuild unknown projection", method: "POST", path: "/api/v1/projections/nope/rebuild", status: 404, check: wantProblem("")},
				{name: "events page 1", method: "GET", path: "/api/v1/entities/" + id + "/events?limit=4", status: 200,
					check: func(t *testing.T, r response) {
						var page struct {
							Events []struct {
								Version  int64
								Type     string
								Metadata struct{ Principal string }
							}
							NextFromVersion int64
						}
						r.JSON(t, &page)
						if len(page.Events) != 4 || page.NextFromVersion != 5 || page.Events[0].Type != "EntityRegistered" || page.Events[0].Metadata.Principal == "" {
							t.Errorf("page = %+v", page)
						}
					}},
				{name: "events page 2", method: "GET", path: "/api/v1/entities/" + id + "/events?fromVersion=5&limit=100", status: 200,
					check: func(t *testing.T, r response) {
						if strings.Contains(string(r.Body), "nextFromVersion") || strings.Count(string(r.Body), `"eventId"`) != 3 {
							t.Errorf("last page: %s", r.Body)
						}
					}},
				{name: "batch", method: "POST", path: "/api/v1/events/batch", status: 200, body: map[string]any{"items": []any{
					map[string]any{"entityId": id + "-a", "entityType": "package", "events": []any{ev("EntityRegistered", 0, `{}`)}},
					map[string]any{"entityId": id, "expectedVersion": 1, "events": []any{ev("EtaUpdated", 0, `{"eta":"`+at(48*time.Hour)+`"}`)}},
					map[string]any{"entityId": id + "-b", "entityType": "container", "events": []any{ev("MilestoneReached", 0, `{"milestone":"teleported"}`)}},
				}}, check: func(t *testing.T, r response) {
					var b struct {
						Results []struct {
							EntityID string
							Status   int
							Version  int64
							Error    *struct{ CurrentVersion int64 }
						}
					}
					r.JSON(t, &b)
					if len(b.Results) != 3 || b.Results[0].Status != 201 || b.Results[0].Version != 1 ||
						b.Results[1].Status != 409 || b.Results[1].Error == nil || b.Results[1].Error.CurrentVersion != 7 ||
						b.Results[2].Status != 400 {
						t.Errorf("batch results: %s", r.Body)
					}
				}},
				// 400
				{name: "malformed JSON", method: "POST", path: "/api/v1/entities/" + id + "/events", body: `{"events": [`, status: 400, check: wantProblem("")},
				{name: "unknown field", method: "POST", path: "/api/v1/entities/" + id + "/events", body: `{"events": [], "colour": "red"}`, status: 400, check: wantProblem("colour")},
				{name: "trailing data", method: "POST", path: "/api/v1/entities/" + id + "/events", body: `{"events": []} {}`, status: 400, check: wantProblem("")},
				{name: "no events", method: "POST", path: "/api/v1/entities/" + id + "/events", body: `{"events": []}`, status: 400, check: wantProblem("events")},
				{name: "bad enum", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("MilestoneReached", 0, `{"milestone":"teleported"}`)}}, status: 400, check: wantProblem("milestone")},
				{name: "latitude out of range", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("LocationReported", 0, `{"lat":91,"lon":0}`)}}, status: 400, check: wantProblem("lat")},
				{name: "unknown field in data", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":0,"alt":3}`)}}, status: 400, check: wantProblem("alt")},
				{name: "future occurredAt", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body:   map[string]any{"events": []any{map[string]any{"type": "LocationReported", "occurredAt": time.Now().Add(time.Hour).Format(time.RFC3339), "data": rawJSON(`{"lat":1,"lon":1}`)}}},
					status: 400, check: wantProblem("occurredAt")},
				{name: "bad time", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: `{"events":[{"type":"LocationReported","occurredAt":"yesterday","data":{"lat":1,"lon":1}}]}`, status: 400, check: wantProblem("")},
				{name: "bad expectedVersion", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: `{"expectedVersion":"maybe","events":[]}`, status: 400, check: wantProblem("expectedVersion")},
				{name: "bad If-Match", method: "POST", path: "/api/v1/entities/" + id + "/events", headers: []string{"If-Match", "three"},
					body: map[string]any{"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, status: 400, check: wantProblem("If-Match")},
				{name: "new entity without type", method: "POST", path: "/api/v1/entities/NEW-" + id + "/events",
					body: map[string]any{"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, status: 400, check: wantProblem("entityType")},
				{name: "bad entity id", method: "POST", path: "/api/v1/entities/%20bad/events",
					body: map[string]any{"entityType": "shipment", "events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, status: 400, check: wantProblem("")},
				{name: "bad limit", method: "GET", path: "/api/v1/entities/" + id + "/events?limit=0", status: 400, check: wantProblem("limit")},
				{name: "unknown query parameter", method: "GET", path: "/api/v1/entities/" + id + "/events?lmit=5", status: 400, check: wantProblem("lmit")},
				{name: "bad tenant header", method: "GET", path: "/api/v1/entities/" + id, headers: []string{"X-Tenant-ID", "../etc"}, status: 400, check: wantProblem("X-Tenant-ID")},
				{name: "empty batch", method: "POST", path: "/api/v1/events/batch", body: `{"items":[]}`, status: 400, check: wantProblem("items")},
				// 404
				{name: "missing entity", method: "GET", path: "/api/v1/entities/nope-" + id, status: 404, check: wantProblem("")},
				{name: "missing entity events", method: "GET", path: "/api/v1/entities/nope-" + id + "/events", status: 404, check: wantProblem("")},
				{name: "other tenant", method: "GET", path: "/api/v1/entities/" + id, headers: []string{"X-Tenant-ID", "other"}, status: 404, check: wantProblem("")},
				// 409
				{name: "stale If-Match", method: "POST", path: "/api/v1/entities/" + id + "/events", headers: []string{"If-Match", `"2"`},
					body: map[string]any{"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, status: 409,
					check: func(t *testing.T, r response) {
						wantProblem("currentVersion")(t, r)
						if !strings.Contains(string(r.Body), `"currentVersion":7`) {
							t.Errorf("409 without currentVersion 7: %s", r.Body)
						}
					}},
				{name: "none on existing", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"expectedVersion": "none", "entityType": "shipment", "events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, status: 409, check: wantProblem("currentVersion")},
				{name: "event id reused with other content", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body:   map[string]any{"events": []any{map[string]any{"eventId": regID, "type": "LocationReported", "occurredAt": at(0), "data": rawJSON(`{"lat":1,"lon":1}`)}}},
					status: 409, check: wantProblem("")},
				// 413, 415
				{name: "body too large", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: `{"events":[{"type":"x-big","occurredAt":"` + at(0) + `","data":{"blob":"` + strings.Repeat("x", 70<<10) + `"}}]}`, status: 413, check: wantProblem("")},
				{name: "event too large", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body:   `{"events":[{"type":"LocationReported","occurredAt":"` + at(0) + `","data":{"lat":1,"lon":1}},{"type":"x-big","occurredAt":"` + at(0) + `","data":{"blob":"` + strings.Repeat("x", 9<<10) + `"}}]}`,
					status: 413, check: wantProblem("events/1/data")},
				{name: "batch item with an event too large", method: "POST", path: "/api/v1/events/batch",
					body:   `{"items":[{"entityId":"` + id + `","events":[{"type":"x-big","occurredAt":"` + at(0) + `","data":{"blob":"` + strings.Repeat("x", 9<<10) + `"}}]}]}`,
					status: 200, check: func(t *testing.T, r response) {
						if !strings.Contains(string(r.Body), `"status":413`) || !strings.Contains(string(r.Body), "events/0/data") {
							t.Errorf("batch item too large: %s, want a 413 naming events/0/data", r.Body)
						}
					}},
				{name: "not JSON", method: "POST", path: "/api/v1/entities/" + id + "/events", headers: []string{"Content-Type", "text/plain"},
					body: `{"events":[]}`, status: 415, check: wantProblem("")},
				// 422
				{name: "registered twice", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("EntityRegistered", 0, `{}`)}}, status: 422, check: wantProblem("")},
				{name: "completed before started", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("OperationCompleted", 0, `{"operation":"sorting","operationId":"op-9","outcome":"failed"}`)}}, status: 422, check: wantProblem("")},
				{name: "completion before its start in time", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{
						ev("OperationStarted", 50*time.Minute, `{"operation":"sorting","operationId":"op-2"}`),
						ev("OperationCompleted", 45*time.Minute, `{"operation":"sorting","operationId":"op-2","outcome":"succeeded"}`)}}, status: 422, check: wantProblem("")},
				{name: "resolve unknown exception", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"events": []any{ev("ExceptionResolved", 0, `{"exceptionId":"ex-404"}`)}}, status: 422, check: wantProblem("")},
				{name: "other entity type", method: "POST", path: "/api/v1/entities/" + id + "/events",
					body: map[string]any{"entityType": "vehicle", "events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, status: 422, check: wantProblem("")},
				{name: "rebuild timeline", method: "POST", path: "/api/v1/projections/timeline/rebuild", status: 202},
				{name: "projections with a malformed tenant", method: "GET", path: "/api/v1/projections", headers: []string{"X-Tenant-ID", "../x"}, status: 400, check: wantProblem("")},
				{name: "erase with a malformed tenant", method: "DELETE", path: "/api/v1/entities/" + id, headers: []string{"X-Tenant-ID", "../x"}, status: 400, check: wantProblem("")},
				{name: "erase", method: "DELETE", path: "/api/v1/entities/" + id, status: 204},
				{name: "erase again", method: "DELETE", path: "/api/v1/entities/" + id, status: 404, check: wantProblem("")},
				{name: "erased entity", method: "GET", path: "/api/v1/entities/" + id + "?consistent=true", status: 404, check: wantProblem("")},
				// infrastructure
				{name: "health", method: "GET", path: "/health", status: 200},
				{name: "live", method: "GET", path: "/health/live", status: 200},
				{name: "ready", method: "GET", path: "/health/ready", status: 200},
				{name: "openapi", method: "GET", path: "/openapi.json", status: 200},
				{name: "docs", method: "GET", path: "/docs", status: 200, check: func(t *testing.T, r response) {
					if !strings.Contains(string(r.Body), "/api/v1/entities/{entityId}/events") {
						t.Errorf("docs page does not list the append call")
					}
				}},
			}
			// The cases build on each other (versions): run them in order.
			for _, c := range cases {
				r := srv.do(t, c.method, c.path, c.body, c.headers...)
				if r.StatusCode != c.status {
					t.Errorf("%s: %s %s = %d, want %d\n%s", c.name, c.method, c.path, r.StatusCode, c.status, r.Body)
					continue
				}
				if r.StatusCode >= 500 {
					t.Errorf("%s: server error %s", c.name, r.Body)
				}
				validate(t, r)
				if c.check != nil {
					c.check(t, r)
				}
			}
			if r := srv.do(t, "GET", "/api/v1/nowhere", nil); r.StatusCode != 404 || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("unknown route: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
			}
		})
	}
}

// TestConcurrentAnyAppends: 32 clients append to one entity with
// expectedVersion "any": all succeed, versions are contiguous, and no
// operation completes before it started.
func TestConcurrentAnyAppends(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			id := "HOT-1"
			if r := srv.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"entityType": "vehicle",
				"events": []any{ev("EntityRegistered", 0, `{}`)}}); r.StatusCode != 201 {
				t.Fatalf("register: %d %s", r.StatusCode, r.Body)
			}
			const clients, each = 32, 5
			var wg sync.WaitGroup
			versions := make(chan int64, clients*each)
			var sharedDone atomic.Int64
			for c := range clients {
				wg.Go(func() {
					for i := range each {
						// Every client starts and completes its own operations,
						// and also tries to complete a shared one that only
						// client 0 starts: that must never succeed before it
						// starts, and succeed once.
						if c == 0 && i == 2 {
							r := srv.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"expectedVersion": "any",
								"events": []any{ev("OperationStarted", 0, `{"operation":"customs","operationId":"shared"}`)}})
							if r.StatusCode != 201 {
								t.Errorf("start the shared operation: %d %s", r.StatusCode, r.Body)
							}
						}
						if c > 0 {
							r := srv.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"expectedVersion": "any",
								"events": []any{ev("OperationCompleted", 10*time.Minute, `{"operation":"customs","operationId":"shared","outcome":"succeeded"}`)}})
							switch r.StatusCode {
							case 201:
								sharedDone.Add(1)
							case 422: // not started yet, or completed already
							default:
								t.Errorf("client %d completing the shared operation: %d %s", c, r.StatusCode, r.Body)
							}
						}
						op := fmt.Sprintf("op-%d-%d", c, i)
						events := []any{
							ev("OperationStarted", time.Duration(i)*time.Minute, `{"operation":"transit","operationId":"`+op+`"}`),
							ev("OperationCompleted", time.Duration(i+1)*time.Minute, `{"operation":"transit","operationId":"`+op+`","outcome":"succeeded"}`),
						}
						r := srv.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"expectedVersion": "any", "events": events})
						if r.StatusCode != 201 {
							t.Errorf("client %d: %d %s", c, r.StatusCode, r.Body)
							return
						}
						var body struct{ Version int64 }
						r.JSON(t, &body)
						versions <- body.Version
					}
				})
			}
			wg.Wait()
			close(versions)
			seen := map[int64]bool{}
			for v := range versions {
				if seen[v] {
					t.Fatalf("version %d returned twice", v)
				}
				seen[v] = true
			}
			var page struct {
				Events []struct {
					Version int64
					Type    string
					Data    struct{ OperationID string }
				}
			}
			srv.do(t, "GET", "/api/v1/entities/"+id+"/events?limit=1000", nil).JSON(t, &page)
			if n := sharedDone.Load(); n != 1 {
				t.Fatalf("the shared operation was completed %d times, want once", n)
			}
			if want := 1 + clients*each*2 + 2; len(page.Events) != want {
				t.Fatalf("%d events stored, want %d", len(page.Events), want)
			}
			started := map[string]bool{}
			for i, e := range page.Events {
				if e.Version != int64(i+1) {
					t.Fatalf("event %d has version %d: not contiguous", i, e.Version)
				}
				switch e.Type {
				case "OperationStarted":
					started[e.Data.OperationID] = true
				case "OperationCompleted":
					if !started[e.Data.OperationID] {
						t.Fatalf("operation %s completed (v%d) before it started", e.Data.OperationID, e.Version)
					}
				}
			}
		})
	}
}

// waitProjections polls the projections' status until none lags.
func waitProjections(t *testing.T, srv *server, headers ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st struct{ Projections []struct{ LagEvents int64 } }
		srv.do(t, "GET", "/api/v1/projections", nil, headers...).JSON(t, &st)
		lag := int64(0)
		for _, p := range st.Projections {
			lag += p.LagEvents
		}
		if lag == 0 && len(st.Projections) == len(tracking.Projections()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections still lag %d events", lag)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
