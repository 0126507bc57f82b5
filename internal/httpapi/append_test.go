package httpapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/tracking"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The answers to append and batch bodies, valid and invalid (strict
// decoding, wrong JSON types, the nil UUID, If-Match, a missing entityId),
// are pinned by a golden file: status, the headers a client acts on, and the
// body. The request shape is shared with the Kafka ingest topic, and this
// is what keeps its HTTP contract from moving with it.
func TestAppendContract(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	svc := newSQLiteService(t, tracking.ServiceOptions{Now: func() time.Time { return now }})
	h := NewServer(Deps{Tracker: svc})

	const (
		reg      = `{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{"reference":"R"}}`
		regID    = `{"eventId":"0190c6a1-7d2e-7b3a-9c4d-5e6f7a8b9c0d","type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{"reference":"R"},"metadata":{"correlationId":"c","causationId":"k","source":"s","traceId":"t"}}`
		nilID    = `{"eventId":"00000000-0000-0000-0000-000000000000","type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{"reference":"R"}}`
		otherReg = `{"eventId":"0190c6a1-7d2e-7b3a-9c4d-5e6f7a8b9c0e","type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{"reference":"R"}}`
	)
	type call struct {
		name, path, ifMatch, body string
	}
	entity := "/api/v1/entities/E-1/events"
	batch := "/api/v1/events/batch"
	calls := []call{
		{"nil event id", entity, "", `{"entityType":"shipment","events":[` + nilID + `]}`},
		{"nil event id, second event", entity, "", `{"entityType":"shipment","events":[` + reg + `,` + nilID + `]}`},
		{"unknown field", entity, "", `{"entityType":"shipment","bogus":1,"events":[]}`},
		{"unknown event field", entity, "", `{"events":[{"type":"x","extra":1}]}`},
		{"unknown metadata field", entity, "", `{"events":[{"type":"x","metadata":{"user":"u"}}]}`},
		{"events not an array", entity, "", `{"events":{}}`},
		{"event not an object", entity, "", `{"events":[1]}`},
		{"metadata not an object", entity, "", `{"events":[{"metadata":5}]}`},
		{"metadata field not a string", entity, "", `{"events":[{"metadata":{"source":5}}]}`},
		{"type not a string", entity, "", `{"events":[{"type":5}]}`},
		{"entityType not a string", entity, "", `{"entityType":3}`},
		{"eventId not a string", entity, "", `{"events":[{"eventId":5}]}`},
		{"eventId not a UUID", entity, "", `{"events":[{"eventId":"nope"}]}`},
		{"expectedVersion unknown word", entity, "", `{"expectedVersion":"later"}`},
		{"expectedVersion negative", entity, "", `{"expectedVersion":-1}`},
		{"expectedVersion object", entity, "", `{"expectedVersion":{}}`},
		{"occurredAt not RFC 3339", entity, "", `{"events":[{"occurredAt":"yesterday"}]}`},
		{"occurredAt a number", entity, "", `{"events":[{"occurredAt":5}]}`},
		{"occurredAt the zero time", entity, "", `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"0001-01-01T00:00:00Z","data":{}}]}`},
		{"occurredAt a bad date", entity, "", `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-13-01T08:00:00Z","data":{}}]}`},
		{"eventId without dashes", entity, "", `{"entityType":"shipment","events":[{"eventId":"0190c6a17d2e7b3a9c4d5e6f7a8b9c0d","type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`},
		{"unknown event type", entity, "", `{"entityType":"shipment","events":[{"type":"Bogus","occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`},
		{"trailing data", entity, "", `{"events":[]} {}`},
		{"empty body", entity, "", ``},
		{"truncated", entity, "", `{"events":[`},
		{"array body", entity, "", `[1]`},
		{"entityId differs from the path", entity, "", `{"entityId":"E-2","entityType":"shipment","events":[` + reg + `]}`},
		{"If-Match malformed", entity, `"x"`, `{"entityType":"shipment","events":[` + reg + `]}`},
		{"If-Match malformed and nil event id", entity, `"x"`, `{"entityType":"shipment","events":[` + nilID + `]}`},
		{"If-Match disagrees", entity, `"3"`, `{"expectedVersion":2,"entityType":"shipment","events":[` + reg + `]}`},
		{"If-Match disagrees and nil event id", entity, `"3"`, `{"expectedVersion":2,"entityType":"shipment","events":[` + nilID + `]}`},
		{"no events", entity, "", `{"entityType":"shipment","events":[]}`},
		{"no entity type", entity, "", `{"events":[` + reg + `]}`},
		{"recorded", entity, "", `{"entityType":"shipment","expectedVersion":"none","events":[` + regID + `]}`},
		{"replayed", entity, "", `{"entityType":"shipment","expectedVersion":"none","events":[` + regID + `]}`},
		{"If-Match conflict", entity, `"0"`, `{"events":[{"type":"EtaUpdated","occurredAt":"2026-03-01T09:00:00Z","data":{"eta":"2026-03-02T09:00:00Z"}}]}`},
		{"If-Match *", entity, `*`, `{"entityId":"E-1","events":[{"eventId":"0190c6a1-7d2e-7b3a-9c4d-5e6f7a8b9c0f","type":"x-note","occurredAt":"2026-03-01T09:00:00Z","data":{"n":1}}]}`},
		{"batch empty", batch, "", `{"items":[]}`},
		{"batch not an object", batch, "", `{"items":[1]}`},
		{"batch unknown item field", batch, "", `{"items":[{"entityId":"B-1","bogus":true}]}`},
		{"batch items", batch, "", `{"items":[` +
			`{"entityId":"B-1","entityType":"package","events":[` + reg + `]},` +
			`{"entityType":"package","events":[` + reg + `]},` +
			`{"entityType":"package","events":[` + nilID + `]},` +
			`{"entityId":"B-2","entityType":"package","events":[` + nilID + `]},` +
			`{"entityId":"B-3","entityType":"crate","events":[` + reg + `]},` +
			`{"entityId":"B-4","expectedVersion":3,"entityType":"package","events":[` + reg + `]},` +
			`{"entityId":"E-1","events":[` + otherReg + `]},` +
			`{"entityId":"B-5","entityType":"package","events":[]}` +
			`]}`},
	}
	var out bytes.Buffer
	for _, c := range calls {
		req := httptest.NewRequest("POST", c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		if c.ifMatch != "" {
			req.Header.Set("If-Match", c.ifMatch)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Fprintf(&out, "### %s\nPOST %s", c.name, c.path)
		if c.ifMatch != "" {
			fmt.Fprintf(&out, " If-Match: %s", c.ifMatch)
		}
		fmt.Fprintf(&out, "\n%s\n%d", c.body, rec.Code)
		for _, k := range []string{"Content-Type", "ETag", "Location", "Idempotent-Replayed"} {
			if v := rec.Header().Get(k); v != "" {
				fmt.Fprintf(&out, " %s: %s", k, v)
			}
		}
		out.WriteByte('\n')
		if err := json.Indent(&out, bytes.TrimSpace(rec.Body.Bytes()), "", "  "); err != nil {
			t.Fatalf("%s: answer is not JSON: %q", c.name, rec.Body.Bytes())
		}
		out.WriteString("\n\n")
	}
	golden := filepath.Join("testdata", "append.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("answers changed (run with -update if intended):\n%s", out.Bytes())
	}
}
