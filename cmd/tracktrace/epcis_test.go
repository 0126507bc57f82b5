package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// epcisCorpus is GS1's EPCIS 2.0 test material shared by the workspace.
const epcisCorpus = "../../../shared/epcis"

// corpusFiles lists the files of a corpus folder with the given extension.
func corpusFiles(t *testing.T, dir, ext string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(epcisCorpus, dir, "*"+ext))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s files in %s (%v)", ext, dir, err)
	}
	return files
}

// captureJob is a capture job as GET /epcis/capture/{id} answers it.
type captureJob struct {
	CaptureID string
	Running   bool
	Success   bool
	Behaviour string `json:"captureErrorBehaviour"`
	Errors    []struct {
		Type     string
		Status   int
		Detail   string
		Instance string
	}
	Captured  int `json:"capturedEvents"`
	Unchanged int `json:"unchangedEvents"`
}

// capture posts a document and returns its job (failing unless 202).
func capture(t *testing.T, do exchange, tenant, contentType string, doc []byte, headers ...string) captureJob {
	t.Helper()
	r := do(t, "POST", "/epcis/capture", doc, append([]string{"Content-Type", contentType, "X-Tenant-ID", tenant}, headers...)...)
	if r.StatusCode != 202 {
		t.Fatalf("capture: %d %s", r.StatusCode, r.Body)
	}
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/epcis/capture/") {
		t.Fatalf("capture: Location %q", loc)
	}
	var job captureJob
	jr := do(t, "GET", loc, nil, "X-Tenant-ID", tenant)
	if jr.StatusCode != 200 {
		t.Fatalf("job: %d %s", jr.StatusCode, jr.Body)
	}
	jr.JSON(t, &job)
	return job
}

// eventCount counts the events of a JSON EPCIS document.
func eventCount(t *testing.T, doc []byte) int {
	t.Helper()
	var d struct {
		EpcisBody struct{ EventList []json.RawMessage }
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	return len(d.EpcisBody.EventList)
}

func TestEPCISCapture(t *testing.T) {
	t.Parallel()
	gs1 := gs1Validator(t)
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, append(eng.env(t), "EPCIS__CaptureLimit=50", "EPCIS__CaptureFileSizeLimit=512KiB"))
			do := checked(srv, gs1)

			t.Run("discovery", func(t *testing.T) {
				r := do(t, "OPTIONS", "/epcis/capture", nil)
				if r.StatusCode != 204 || r.Header.Get("GS1-EPCIS-Capture-Limit") != "50" ||
					r.Header.Get("GS1-EPCIS-Capture-File-Size-Limit") != "524288" || r.Header.Get("GS1-EPCIS-Version") != "2.0.0" {
					t.Fatalf("OPTIONS /epcis/capture: %d %v", r.StatusCode, r.Header)
				}
			})

			// Each document in a tenant of its own: the corpus reuses
			// eventIDs across documents with other content.
			t.Run("every valid JSON document", func(t *testing.T) {
				for i, f := range corpusFiles(t, "openepcis/Capture/Documents", ".json") {
					doc, _ := os.ReadFile(f)
					job := capture(t, do, fmt.Sprintf("json-%d", i), "application/json", doc)
					if !job.Success || job.Running || job.Captured != eventCount(t, doc) {
						t.Errorf("%s: job %+v, want %d events captured", filepath.Base(f), job, eventCount(t, doc))
					}
				}
			})
			t.Run("every valid XML document", func(t *testing.T) {
				for i, f := range corpusFiles(t, "openepcis-xml/Capture/Documents", ".xml") {
					doc, _ := os.ReadFile(f)
					job := capture(t, do, fmt.Sprintf("xml-%d", i), "application/xml", doc)
					if !job.Success || job.Captured == 0 {
						t.Errorf("%s: job %+v", filepath.Base(f), job)
					}
				}
			})
			t.Run("every invalid document is refused naming its fault", func(t *testing.T) {
				var files []string
				files = append(files, corpusFiles(t, "openepcis/Capture/Invalid", ".json")...)
				files = append(files, corpusFiles(t, "openepcis-xml/Capture/Invalid", ".xml")...)
				for _, f := range files {
					if strings.HasSuffix(f, "ObjectEvent_with_wrong_element_order.xml") {
						continue // see README: the corpus holds the same fault as a valid document (JumbledFieldsOrder.xml)
					}
					doc, _ := os.ReadFile(f)
					ct := "application/json"
					if strings.HasSuffix(f, ".xml") {
						ct = "application/xml"
					}
					r := do(t, "POST", "/epcis/capture", doc, "Content-Type", ct, "X-Tenant-ID", "invalid")
					var p struct {
						Type, Detail string
						Errors       []struct{ Field, Message string }
					}
					r.JSON(t, &p)
					if r.StatusCode != 400 || p.Type != "epcisException:ValidationException" || p.Detail == "" {
						t.Errorf("%s: %d %s", filepath.Base(f), r.StatusCode, r.Body)
					}
				}
				if jobs := do(t, "GET", "/epcis/capture", nil, "X-Tenant-ID", "invalid"); string(bytes.TrimSpace(jobs.Body)) != "[]" {
					t.Errorf("refused documents left jobs: %s", jobs.Body)
				}
			})
			t.Run("rollback stores nothing, proceed stores the valid events", func(t *testing.T) {
				doc := threeEvents(`"action": "SHIFT"`)
				r := do(t, "POST", "/epcis/capture", doc, "Content-Type", "application/json", "X-Tenant-ID", "modes")
				if r.StatusCode != 400 || !strings.Contains(string(r.Body), "epcisBody/eventList/1/action") {
					t.Fatalf("rollback with a bad event: %d %s", r.StatusCode, r.Body)
				}
				job := capture(t, do, "modes", "application/json", doc, "GS1-Capture-Error-Behaviour", "proceed")
				if job.Success || job.Captured != 2 || len(job.Errors) != 1 || job.Errors[0].Instance != "/epcisBody/eventList/1/action" {
					t.Fatalf("proceed: %+v", job)
				}
				// Nothing of the refused rollback was stored: the proceed
				// capture stored its two valid events anew.
				fixed := threeEvents(`"action": "OBSERVE"`)
				job = capture(t, do, "modes", "application/json", fixed)
				if !job.Success || job.Captured != 1 || job.Unchanged != 2 {
					t.Fatalf("the whole document after proceed: %+v, want 1 captured and 2 unchanged", job)
				}
				job = capture(t, do, "modes", "application/json", fixed)
				if !job.Success || job.Captured != 0 || job.Unchanged != 3 {
					t.Fatalf("the same document again: %+v, want nothing captured", job)
				}
				changed := bytes.Replace(fixed, []byte(`"bizStep": "shipping"`), []byte(`"bizStep": "receiving"`), 1)
				job = capture(t, do, "modes", "application/json", changed)
				if job.Success || job.Captured != 0 || len(job.Errors) != 1 || job.Errors[0].Status != 409 {
					t.Fatalf("an eventID stored with other content: %+v, want a 409 and nothing stored", job)
				}
				declared := bytes.Replace(changed, []byte(`"bizStep": "receiving"`),
					[]byte(`"bizStep": "receiving", "errorDeclaration": {"declarationTime": "2026-01-02T00:00:00Z", "reason": "incorrect_data"}`), 1)
				job = capture(t, do, "modes", "application/json", declared)
				if !job.Success || job.Captured != 1 || job.Unchanged != 2 {
					t.Fatalf("an error declaration of a stored event: %+v, want it captured", job)
				}
				r = do(t, "GET", "/epcis/capture?perPage=2", nil, "X-Tenant-ID", "modes")
				var jobs []captureJob
				r.JSON(t, &jobs)
				if r.StatusCode != 200 || len(jobs) != 2 || jobs[0].CaptureID != job.CaptureID || !strings.Contains(r.Header.Get("Link"), `rel="next"`) {
					t.Fatalf("GET /epcis/capture?perPage=2: %d %s (Link %q)", r.StatusCode, r.Body, r.Header.Get("Link"))
				}
				if other := do(t, "GET", "/epcis/capture/"+job.CaptureID, nil, "X-Tenant-ID", "someone-else"); other.StatusCode != 404 {
					t.Fatalf("another tenant's job: %d", other.StatusCode)
				}
			})
			t.Run("values too long to index do not stop the index", func(t *testing.T) {
				// Incompressible, so that it exceeds an index entry (PostgreSQL
				// compresses before it measures).
				var b strings.Builder
				for x := uint32(1); b.Len() < 4500; {
					x = x*1664525 + 1013904223
					b.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[(x>>26)%62])
				}
				long := b.String()
				doc := fmt.Sprintf(`{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "http://ns.example.com/epcis/"}],
					"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": [
					{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
					 "epcList": ["urn:epc:id:sgtin:0614141.107346.%[1]s"], "bizLocation": {"id": "urn:x:%[1]s"}, "example:x": "%[1]s"}]}}`, long)
				if job := capture(t, do, "long", "application/json", []byte(doc)); !job.Success || job.Captured != 1 {
					t.Fatalf("capture: %+v", job)
				}
				capture(t, do, "long", "application/json", threeEvents(`"action": "OBSERVE"`))
				// The three events after it are indexed (and it is too, as
				// far as its values can be).
				waitEvents(t, do, "long", 4)
			})
			t.Run("single events", func(t *testing.T) {
				for _, f := range corpusFiles(t, "openepcis/Capture/Events", ".json") {
					ev, _ := os.ReadFile(f)
					for range 2 { // the second time changes nothing
						r := do(t, "POST", "/epcis/events", ev, "Content-Type", "application/json", "X-Tenant-ID", "single")
						if r.StatusCode != 201 || !strings.HasPrefix(r.Header.Get("Location"), "/epcis/events/") {
							t.Fatalf("%s: %d %s", filepath.Base(f), r.StatusCode, r.Body)
						}
					}
				}
				var ev map[string]any
				if err := json.Unmarshal(threeEvents(`"action": "OBSERVE"`), &ev); err != nil {
					t.Fatal(err)
				}
				one := ev["epcisBody"].(map[string]any)["eventList"].([]any)[0].(map[string]any)
				one["@context"] = ev["@context"]
				if r := do(t, "POST", "/epcis/events", one, "X-Tenant-ID", "single"); r.StatusCode != 201 {
					t.Fatalf("an event: %d %s", r.StatusCode, r.Body)
				}
				one["bizStep"] = "receiving"
				if r := do(t, "POST", "/epcis/events", one, "X-Tenant-ID", "single"); r.StatusCode != 409 {
					t.Fatalf("an eventID stored with other content: %d %s", r.StatusCode, r.Body)
				}
			})
			t.Run("limits and media types", func(t *testing.T) {
				var events []string
				for i := range 51 {
					events = append(events, fmt.Sprintf(`{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:%02dZ", "eventTimeZoneOffset": "+00:00", "epcList": ["urn:epc:id:sgtin:0614141.107346.%d"], "action": "OBSERVE"}`, i%60, i))
				}
				many := []byte(`{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"], "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": [` + strings.Join(events, ",") + `]}}`)
				if r := do(t, "POST", "/epcis/capture", many, "X-Tenant-ID", "limits"); r.StatusCode != 413 || !strings.Contains(string(r.Body), "CaptureLimitExceededException") {
					t.Errorf("51 events over a limit of 50: %d %s", r.StatusCode, r.Body)
				}
				huge := bytes.Repeat([]byte(" "), 600<<10)
				if r := do(t, "POST", "/epcis/capture", append(huge, many...), "X-Tenant-ID", "limits"); r.StatusCode != 413 {
					t.Errorf("600 KiB over a limit of 512 KiB: %d %s", r.StatusCode, r.Body)
				}
				if r := do(t, "POST", "/epcis/capture", many, "Content-Type", "text/csv", "X-Tenant-ID", "limits"); r.StatusCode != 415 {
					t.Errorf("text/csv: %d %s", r.StatusCode, r.Body)
				}
				if r := do(t, "POST", "/epcis/capture", many, "GS1-Capture-Error-Behaviour", "shrug", "X-Tenant-ID", "limits"); r.StatusCode != 400 {
					t.Errorf("an unknown capture error behaviour: %d %s", r.StatusCode, r.Body)
				}
				// A NUL in an extension value: PostgreSQL stores none in text,
				// and the EPCIS index stalled on it once.
				nul := `{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "http://ns.example.com/epcis/"}],
					"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": [
					{"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
					 "epcList": ["urn:epc:id:sgtin:0614141.107346.1"], "example:x": "nul \u0000 here"}]}}`
				for _, junk := range []string{`[]`, `{"epcisBody": 7}`, `not json`, `{"@context": "x", "type": "EPCISDocument"}`, nul} {
					if r := do(t, "POST", "/epcis/capture", junk, "X-Tenant-ID", "limits"); r.StatusCode != 400 {
						t.Errorf("%s: %d %s", junk, r.StatusCode, r.Body)
					}
				}
			})
		})
	}
}

// threeEvents is a document of three ObjectEvents with eventIDs, all
// OBSERVE but the second, which has the given action member.
func threeEvents(second string) []byte {
	ev := func(i int, action string) string {
		return fmt.Sprintf(`{"type": "ObjectEvent", "eventID": "urn:uuid:6f2b1a4e-0000-4000-8000-00000000000%d", "eventTime": "2026-01-01T10:0%d:00+01:00",
			"eventTimeZoneOffset": "+01:00", "epcList": ["urn:epc:id:sgtin:0614141.107346.%d"], %s, "bizStep": "shipping", "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"}}`,
			i, i, i, action)
	}
	return []byte(`{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"], "type": "EPCISDocument", "schemaVersion": "2.0",
		"creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": [` + ev(1, `"action": "OBSERVE"`) + `, ` + ev(2, second) + `, ` + ev(3, `"action": "OBSERVE"`) + `]}}`)
}

// epcisEntityDoc is a journey told in EPCIS: two trade items commissioned,
// packed onto a pallet, the pallet shipped from a site, one item seen at a
// geo: position (captured as a GS1 Digital Link), and the shipping event
// declared erroneous.
const epcisEntityDoc = `{"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"], "type": "EPCISDocument",
 "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": [
 {"type": "ObjectEvent", "eventID": "urn:uuid:11111111-0000-4000-8000-000000000001", "eventTime": "2026-01-01T08:00:00Z",
  "eventTimeZoneOffset": "+00:00", "action": "ADD", "bizStep": "commissioning",
  "epcList": ["urn:epc:id:sgtin:0614141.107346.1", "urn:epc:id:sgtin:0614141.107346.2"]},
 {"type": "AggregationEvent", "eventID": "urn:uuid:11111111-0000-4000-8000-000000000002", "eventTime": "2026-01-01T09:00:00Z",
  "eventTimeZoneOffset": "+00:00", "action": "ADD", "bizStep": "packing", "parentID": "urn:epc:id:sscc:0614141.1234567890",
  "childEPCs": ["urn:epc:id:sgtin:0614141.107346.1", "urn:epc:id:sgtin:0614141.107346.2"]},
 {"type": "ObjectEvent", "eventID": "urn:uuid:11111111-0000-4000-8000-000000000003", "eventTime": "2026-01-01T10:00:00Z",
  "eventTimeZoneOffset": "+00:00", "action": "OBSERVE", "bizStep": "shipping",
  "bizLocation": {"id": "urn:epc:id:sgln:0614141.00777.0"}, "epcList": ["urn:epc:id:sscc:0614141.1234567890"]},
 {"type": "ObjectEvent", "eventID": "urn:uuid:11111111-0000-4000-8000-000000000004", "eventTime": "2026-01-01T11:00:00Z",
  "eventTimeZoneOffset": "+00:00", "action": "OBSERVE", "readPoint": {"id": "geo:52.1,4.3"},
  "epcList": ["https://id.gs1.org/01/10614141073464/21/1"]},
 {"type": "ObjectEvent", "eventID": "urn:uuid:11111111-0000-4000-8000-000000000003", "eventTime": "2026-01-01T10:00:00Z",
  "eventTimeZoneOffset": "+00:00", "action": "OBSERVE", "bizStep": "shipping",
  "bizLocation": {"id": "urn:epc:id:sgln:0614141.00777.0"}, "epcList": ["urn:epc:id:sscc:0614141.1234567890"],
  "errorDeclaration": {"declarationTime": "2026-01-02T00:00:00Z", "reason": "incorrect_data"}}
 ]}}`

// Every object an EPCIS event names is a tracking entity; the mapping of
// the README holds; erasing an entity leaves the EPCIS events that name it.
func TestEPCISEntities(t *testing.T) {
	t.Parallel()
	gs1 := gs1Validator(t)
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, append(eng.env(t), "ReadModels__RefreshInterval=00:00:00.2"))
			do := checked(srv, gs1)
			job := capture(t, do, "acme", "application/json", []byte(epcisEntityDoc))
			if !job.Success || job.Captured != 5 {
				t.Fatalf("capture: %+v", job)
			}
			const (
				item1  = "urn:epc:id:sgtin:0614141.107346.1"
				item2  = "urn:epc:id:sgtin:0614141.107346.2"
				pallet = "urn:epc:id:sscc:0614141.1234567890"
			)
			type timeline struct {
				Entries []struct {
					Type     string
					Data     map[string]any
					Metadata struct{ CausationID string }
				}
			}
			// The timeline of each object, once all its derived events are
			// projected.
			wait := func(id string, entries int) timeline {
				t.Helper()
				deadline := time.Now().Add(20 * time.Second)
				for {
					var tl timeline
					r := srv.do(t, "GET", "/api/v1/entities/"+id+"/timeline", nil, "X-Tenant-ID", "acme")
					if r.StatusCode == 200 {
						r.JSON(t, &tl)
						if len(tl.Entries) >= entries {
							return tl
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d %s, want %d entries", id, r.StatusCode, r.Body, entries)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			types := func(tl timeline) (out []string) {
				for _, e := range tl.Entries {
					out = append(out, e.Type+" "+e.Metadata.CausationID[len(e.Metadata.CausationID)-1:])
				}
				return out
			}
			// item1: commissioned (no milestone: a reference), packed
			// (associated with the pallet), seen at a geo: point (captured
			// as a Digital Link).
			tl := wait(item1, 3)
			if got, want := types(tl), []string{"x-epcis-event 1", "EntityAssociated 2", "LocationReported 4"}; !slices.Equal(got, want) {
				t.Errorf("%s timeline %v, want %v", item1, got, want)
			}
			if ref := tl.Entries[0].Data; ref["eventID"] != "urn:uuid:11111111-0000-4000-8000-000000000001" || ref["bizStep"] != "commissioning" || ref["role"] != "epc" {
				t.Errorf("the reference to the commissioning event: %v", ref)
			}
			var st struct {
				EntityType, ParentID, Status string
				LastLocation                 *struct{ Lat, Lon float64 }
			}
			srv.do(t, "GET", "/api/v1/entities/"+item1, nil, "X-Tenant-ID", "acme").JSON(t, &st)
			if st.EntityType != "package" || st.ParentID != pallet || st.LastLocation == nil || st.LastLocation.Lat != 52.1 {
				t.Errorf("%s: %+v", item1, st)
			}
			// The pallet: packed (a reference, as the parent), shipped
			// (departed from the site), the shipping declared erroneous.
			tl = wait(pallet, 3)
			if got, want := types(tl), []string{"x-epcis-event 2", "MilestoneReached 3", "x-epcis-error-declaration 3"}; !slices.Equal(got, want) {
				t.Errorf("%s timeline %v, want %v", pallet, got, want)
			}
			if m := tl.Entries[1].Data; m["milestone"] != "departed" || m["siteId"] != "urn:epc:id:sgln:0614141.00777.0" {
				t.Errorf("shipping as a milestone: %v", m)
			}
			srv.do(t, "GET", "/api/v1/entities/"+pallet, nil, "X-Tenant-ID", "acme").JSON(t, &st)
			if st.EntityType != "container" {
				t.Errorf("%s: %+v", pallet, st)
			}
			wait(item2, 2)

			// Erasing an entity erases its tracking stream, not the EPCIS
			// events that name it (they are records of the other objects
			// too); the mapping does not bring it back.
			if r := srv.do(t, "DELETE", "/api/v1/entities/"+item2, nil, "X-Tenant-ID", "acme"); r.StatusCode != 200 && r.StatusCode != 204 {
				t.Fatalf("erase %s: %d %s", item2, r.StatusCode, r.Body)
			}
			time.Sleep(time.Second) // the mapping follower's polls
			if r := srv.do(t, "GET", "/api/v1/entities/"+item2+"?consistent=true", nil, "X-Tenant-ID", "acme"); r.StatusCode != 404 {
				t.Fatalf("%s after its erasure: %d %s", item2, r.StatusCode, r.Body)
			}
			again := capture(t, do, "acme", "application/json", []byte(epcisEntityDoc))
			if !again.Success || again.Unchanged != 5 {
				t.Fatalf("the EPCIS events after the erasure of an object they name: %+v, want all 5 still stored", again)
			}
			metrics := string(srv.do(t, "GET", "/metrics", nil).Body)
			for _, line := range []string{`tracktrace_epcis_events_total{outcome="captured"} 5`, `tracktrace_epcis_events_total{outcome="unchanged"} 5`,
				`tracktrace_follower_active{follower="epcis-entities"} 1`, "tracktrace_epcis_mapping_backlog_events 0"} {
				if !strings.Contains(metrics, line) {
					t.Errorf("/metrics lacks %s", line)
				}
			}
		})
	}
}

func sleepBriefly() { time.Sleep(25 * time.Millisecond) }

// TestEPCISQueries: the query resources over HTTP (the query language
// itself is the read-model suite's EPCISQuery cases): events by id, type,
// EPC, business step and location; collections; named queries; paging
// Links; XML answers; refusals.
func TestEPCISQueries(t *testing.T) {
	t.Parallel()
	srv := startServer(t, engines[0].env(t))
	do := checked(srv, gs1Validator(t))
	job := capture(t, do, "q", "application/json", []byte(epcisEntityDoc))
	if !job.Success {
		t.Fatalf("capture: %+v", job)
	}
	type answer struct {
		Type      string
		EpcisBody struct {
			QueryResults struct {
				QueryName   string
				ResultsBody struct {
					EventList []struct {
						EventID          string
						ErrorDeclaration any
						EpcList          []string
					}
				}
			}
		}
	}
	query := func(path string, headers ...string) (answer, response) {
		t.Helper()
		var a answer
		for range 200 { // the index follows the log
			r := do(t, "GET", path, nil, append([]string{"X-Tenant-ID", "q"}, headers...)...)
			if r.StatusCode != 200 {
				return a, r
			}
			r.JSON(t, &a)
			if len(a.EpcisBody.QueryResults.ResultsBody.EventList) > 0 || strings.Contains(path, "nothing") {
				return a, r
			}
			sleepBriefly()
		}
		t.Fatalf("%s: no events", path)
		return a, response{}
	}
	ids := func(a answer) (out []string) {
		for _, e := range a.EpcisBody.QueryResults.ResultsBody.EventList {
			out = append(out, e.EventID[len(e.EventID)-1:])
		}
		return out
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/epcis/events", []string{"1", "2", "3", "4", "3"}},
		{"/epcis/events/" + url.PathEscape("urn:uuid:11111111-0000-4000-8000-000000000003"), []string{"3", "3"}},
		{"/epcis/eventTypes/AggregationEvent/events", []string{"2"}},
		{"/epcis/epcs/" + url.PathEscape("urn:epc:id:sscc:0614141.1234567890") + "/events", []string{"2", "3", "3"}},
		{"/epcis/bizSteps/" + url.PathEscape("urn:epcglobal:cbv:bizstep:shipping") + "/events", []string{"3", "3"}},
		{"/epcis/bizLocations/" + url.PathEscape("urn:epc:id:sgln:0614141.00777.0") + "/events", []string{"3", "3"}},
		{"/epcis/events?EXISTS_errorDeclaration=true&MATCH_epc=urn:epc:id:sscc:0614141.1234567890", []string{"3"}},
		{"/epcis/events?orderBy=eventTime&orderDirection=DESC&eventCountLimit=2", []string{"4", "3"}},
	} {
		a, r := query(c.path)
		if r.StatusCode != 200 || !slices.Equal(ids(a), c.want) || a.Type != "EPCISQueryDocument" {
			t.Errorf("%s: %d %v, want %v", c.path, r.StatusCode, ids(a), c.want)
		}
	}
	// An identifier with slashes, %2F-escaped in its path segment (GS1's
	// document cannot be matched against such a path by the validator,
	// which reads the unescaped path).
	var byDL answer
	srv.do(t, "GET", "/epcis/epcs/"+url.PathEscape("https://id.gs1.org/01/10614141073464/21/1")+"/events", nil, "X-Tenant-ID", "q").JSON(t, &byDL)
	if got := ids(byDL); !slices.Equal(got, []string{"1", "2", "4"}) {
		t.Errorf("events of a Digital Link in the path: %v", got)
	}
	// Paging: a Link to the next page, which holds the rest.
	a, r := query("/epcis/events?perPage=3")
	next := r.Header.Get("Link")
	if len(ids(a)) != 3 || !strings.Contains(next, `rel="next"`) {
		t.Fatalf("first page: %v, Link %q", ids(a), next)
	}
	a, _ = query(strings.TrimSuffix(strings.TrimPrefix(next, "<"), `>; rel="next"`))
	if !slices.Equal(ids(a), []string{"4", "3"}) {
		t.Errorf("second page: %v", ids(a))
	}
	// Formats: EPC URNs, and the XML binding.
	a, _ = query("/epcis/events?MATCH_epc=https://id.gs1.org/01/10614141073464/21/1", "GS1-EPC-Format", "Always_EPC_URN")
	// (events 1 and 4 name it in epcList, event 2 in childEPCs)
	if l := a.EpcisBody.QueryResults.ResultsBody.EventList; len(l) != 3 || l[0].EpcList[0] != "urn:epc:id:sgtin:0614141.107346.1" {
		t.Errorf("as EPC URNs: %+v", l)
	}
	x := do(t, "GET", "/epcis/eventTypes/AggregationEvent/events", nil, "X-Tenant-ID", "q", "Accept", "application/xml")
	if x.StatusCode != 200 || x.Header.Get("Content-Type") != "application/xml" || !strings.Contains(string(x.Body), "<AggregationEvent") {
		t.Errorf("XML answer: %d %s %.300s", x.StatusCode, x.Header.Get("Content-Type"), x.Body)
	}
	// Discovery on every resource.
	for path, methods := range map[string]string{"/epcis/events": "OPTIONS, POST, GET", "/epcis/queries/x/events": "OPTIONS, GET",
		"/epcis/bizLocations": "OPTIONS, GET", "/epcis/queries": "OPTIONS, GET, POST"} {
		if r := do(t, "OPTIONS", path, nil, "X-Tenant-ID", "q"); r.StatusCode != 204 || r.Header.Get("Allow") != methods ||
			r.Header.Get("GS1-EPCIS-Max") != "2.0.0" {
			t.Errorf("OPTIONS %s: %d, Allow %q", path, r.StatusCode, r.Header.Get("Allow"))
		}
	}
	// Collections.
	var coll struct {
		Type   string
		Member []string
	}
	do(t, "GET", "/epcis/bizLocations", nil, "X-Tenant-ID", "q").JSON(t, &coll)
	if coll.Type != "Collection" || len(coll.Member) != 1 {
		t.Errorf("bizLocations: %+v", coll)
	}
	do(t, "GET", "/epcis/epcs?perPage=2", nil, "X-Tenant-ID", "q").JSON(t, &coll)
	if len(coll.Member) != 2 {
		t.Errorf("epcs?perPage=2: %+v", coll)
	}
	// Named queries.
	body := `{"name": "shipped", "query": {"EQ_bizStep": ["shipping"], "eventType": ["ObjectEvent"]}}`
	if r := do(t, "POST", "/epcis/queries", body, "X-Tenant-ID", "q"); r.StatusCode != 201 || r.Header.Get("Location") != "/epcis/queries/shipped" {
		t.Fatalf("create query: %d %s", r.StatusCode, r.Body)
	}
	if r := do(t, "POST", "/epcis/queries", body, "X-Tenant-ID", "q"); r.StatusCode != 409 {
		t.Errorf("create it again: %d %s", r.StatusCode, r.Body)
	}
	if a, r := query("/epcis/queries/shipped/events"); r.StatusCode != 200 || !slices.Equal(ids(a), []string{"3", "3"}) || a.EpcisBody.QueryResults.QueryName != "shipped" {
		t.Errorf("named query events: %d %v", r.StatusCode, ids(a))
	}
	if r := do(t, "GET", "/epcis/queries/shipped/events", nil, "X-Tenant-ID", "other"); r.StatusCode != 404 {
		t.Errorf("another tenant's named query: %d", r.StatusCode)
	}
	for bad, names := range map[string]string{
		`{"name": "x y", "query": {}}`:               "name",
		`{"name": "z", "query": {"EQ_nonsense": 1}}`: "EQ_nonsense",
		`{"name": "z"`:                                    "QueryParameterException",
		`{"name": "z", "query": ["MATCH_epc"]}`:           "not a JSON object",
		`{"name": "z", "query": {"GE_eventTime": "now"}}`: "GE_eventTime",
	} {
		// (GS1's binding declares no 400 for POST /queries: a problem all the same.)
		if r := srv.do(t, "POST", "/epcis/queries", bad, "X-Tenant-ID", "q"); r.StatusCode != 400 || !strings.Contains(string(r.Body), names) {
			t.Errorf("query %s: %d %s, want a 400 naming %s", bad, r.StatusCode, r.Body, names)
		}
	}
	// Parameters GS1's query-schema.json refuses although the query
	// language has them (its extension-field patterns are escaped twice,
	// EXISTS_ wants an integer): a named query takes what GET /events takes.
	for _, good := range []string{
		`{"name": "corrected", "query": {"EXISTS_errorDeclaration": null, "GE_errorDeclarationTime": "2020-01-01T00:00:00Z"}}`,
		`{"name": "extended", "query": {"EQ_https://ns.example.com/epcis/myField": ["x"], "EXISTS_INNER_https://ns.example.com/epcis/inner": ""}}`,
		`{"name": "urns", "query": {"EQ_bizStep": ["urn:epcglobal:cbv:bizstep:shipping"]}}`,
	} {
		if r := srv.do(t, "POST", "/epcis/queries", good, "X-Tenant-ID", "q"); r.StatusCode != 201 {
			t.Errorf("query %s: %d %s, want 201", good, r.StatusCode, r.Body)
		}
	}
	if r := do(t, "GET", "/epcis/queries/z", nil, "X-Tenant-ID", "q"); r.StatusCode != 404 {
		t.Errorf("a refused query was stored: %d %s", r.StatusCode, r.Body)
	}
	if r := do(t, "DELETE", "/epcis/queries/shipped", nil, "X-Tenant-ID", "q"); r.StatusCode != 204 {
		t.Errorf("delete: %d %s", r.StatusCode, r.Body)
	}
	if r := do(t, "GET", "/epcis/queries/shipped", nil, "X-Tenant-ID", "q"); r.StatusCode != 404 {
		t.Errorf("after delete: %d", r.StatusCode)
	}
	// Refusals name the parameter. (GS1's binding declares neither 400 nor
	// 413 for GET /events, so these are not checked against it; they are
	// the binding's QueryParameterException and QueryTooLargeException.)
	for path, param := range map[string]string{
		"/epcis/events?GE_eventTime=yesterday":     "GE_eventTime",
		"/epcis/events?EQ_unknownThing=1":          "EQ_unknownThing",
		"/epcis/events?nextPageToken=forged":       "nextPageToken",
		"/epcis/events?perPage=0":                  "perPage",
		"/epcis/events?orderBy=ext:field":          "orderBy",
		"/epcis/events?maxEventCount=1&EQ_action=": "",
		// A ';' is no separator: the filter is not silently dropped.
		"/epcis/events?EQ_bizStep=shipping;EQ_action=ADD": "malformed query string",
		"/epcis/events?MATCH_epc=%zz":                     "malformed query string",
		"/epcis/bizSteps?perPage=1;":                      "malformed query string",
		"/epcis/capture?perPage=%":                        "malformed query string",
	} {
		r := srv.do(t, "GET", path, nil, "X-Tenant-ID", "q")
		if r.StatusCode < 400 || r.StatusCode >= 500 || !strings.Contains(string(r.Body), param) {
			t.Errorf("%s: %d %s", path, r.StatusCode, r.Body)
		}
	}
	if r := srv.do(t, "GET", "/epcis/events?maxEventCount=1", nil, "X-Tenant-ID", "q"); r.StatusCode != 413 ||
		!strings.Contains(string(r.Body), "QueryTooLargeException") {
		t.Errorf("maxEventCount exceeded: %d %s", r.StatusCode, r.Body)
	}
}
