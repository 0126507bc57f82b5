package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// fuzzServer is the real API on the real tracking service and a SQLite
// store (without fsync: durability is not what is fuzzed).
func fuzzServer(f *testing.F) http.Handler {
	f.Helper()
	store, err := sqlite.Open(context.Background(), "file:"+filepath.Join(f.TempDir(), "fuzz.db")+"?_pragma=synchronous(OFF)", sqlite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	return NewServer(Deps{Tracker: tracking.NewService(store, tracking.ServiceOptions{}), MaxBodyBytes: 1 << 20})
}

// FuzzAppendRequest feeds arbitrary bodies, entity ids, If-Match headers and
// query strings to the append, batch and read calls: no input may produce a
// 5xx or a panic, and every answer is JSON.
func FuzzAppendRequest(f *testing.F) {
	f.Add([]byte(`{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-01-01T00:00:00Z","data":{}}]}`), "SHP-1", "", "limit=5")
	f.Add([]byte(`{"expectedVersion":3,"events":[{"type":"LocationReported","occurredAt":"2026-01-01T00:00:00Z","data":{"lat":1,"lon":2}}]}`), "SHP-1", `"1"`, "fromVersion=2")
	f.Add([]byte(`{"items":[{"entityId":"a","entityType":"package","events":[{"type":"x-note","occurredAt":"2026-01-01T00:00:00Z","data":{"n":1}}]}]}`), "b", "*", "")
	f.Add([]byte(`{"events":[{"eventId":"00000000-0000-0000-0000-000000000000","type":"MilestoneReached","occurredAt":"2026-01-01T00:00:00Z","data":{"milestone":"arrived","location":{"lat":91,"lon":0}}}]}`), "c", "W/\"x\"", "limit=-1")
	f.Add([]byte(`{"events":[{"type":"OperationCompleted","occurredAt":"2026-01-01T00:00:00Z","data":{"operation":"loading","operationId":"o","outcome":"succeeded"}}]}`), "SHP-1", "", "consistent=maybe")
	f.Add([]byte(`{"expectedVersion":"none","events":[]} trailing`), "%zz", "", "%")
	f.Add([]byte(`[1,2,3]`), "", "", "limit=99999999999999999999")
	h := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte, entityID, ifMatch, query string) {
		check := func(req *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s → %d: %s", req.Method, req.URL, rec.Code, rec.Body.Bytes())
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s → %d with a non-JSON body: %q", req.Method, req.URL, rec.Code, rec.Body.Bytes())
			}
		}
		path := "/api/v1/entities/" + escapePathSegment(entityID)
		for _, target := range []string{path + "/events", "/api/v1/events/batch"} {
			req := httptest.NewRequest("POST", target, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if ifMatch != "" && validHeader(ifMatch) {
				req.Header.Set("If-Match", ifMatch)
			}
			check(req)
		}
		for _, target := range []string{path, path + "/events"} {
			req := httptest.NewRequest("GET", target, nil)
			req.URL.RawQuery = query
			check(req)
		}
	})
}

func escapePathSegment(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15]))
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// validHeader reports whether a value can be sent as a header at all.
func validHeader(v string) bool {
	for _, c := range []byte(v) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
