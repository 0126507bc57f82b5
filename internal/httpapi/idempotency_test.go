package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// newSQLiteService is a tracking service on a fresh SQLite file, closed at
// the test's end.
func newSQLiteService(t *testing.T, opts tracking.ServiceOptions) *tracking.Service {
	svc, _ := newSQLiteServiceAndViews(t, opts)
	return svc
}

// newSQLiteServiceAndViews is newSQLiteService with the read models on the
// same file.
func newSQLiteServiceAndViews(t *testing.T, opts tracking.ServiceOptions) (*tracking.Service, *readmodel.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "t.db")+"?_pragma=synchronous(OFF)", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	views, err := sqlite.OpenReadModels(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	return tracking.NewService(store, opts), views
}

func post(h http.Handler, path, body string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// The README's first request: one event with an eventId, one without.
const readmeBody = `{"entityType": "shipment", "expectedVersion": "none", "events": [
	{"eventId": "0192f0c4-5d1e-7c3a-9b2e-3f4a5b6c7d01", "type": "EntityRegistered", "occurredAt": "2026-03-01T08:00:00Z",
	 "data": {"reference": "PO-4711", "origin": "AMS", "destination": "FRA"}},
	{"type": "MilestoneReached", "occurredAt": "2026-03-01T09:00:00Z",
	 "data": {"milestone": "picked_up", "siteId": "AMS-HUB-01", "location": {"lat": 52.31, "lon": 4.76}}}]}`

// Same key and body: the first answer again, nothing appended; same key and
// another body: 422; a retry without a key that is partly stored says so.
func TestIdempotencyKey(t *testing.T) {
	svc, views := newSQLiteServiceAndViews(t, tracking.ServiceOptions{})
	h := NewServer(Deps{Tracker: svc, IdempotencyKeys: views})
	path := "/api/v1/entities/SHP-1001/events"
	first := post(h, path, readmeBody, "Idempotency-Key", "register-SHP-1001")
	if first.Code != 201 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	again := post(h, path, readmeBody, "Idempotency-Key", "register-SHP-1001")
	if again.Code != 201 || again.Body.String() != first.Body.String() || again.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("same key and body: %d %s (replayed %q), want the first answer %s", again.Code, again.Body,
			again.Header().Get("Idempotent-Replayed"), first.Body)
	}
	other := strings.Replace(readmeBody, "picked_up", "departed", 1)
	if r := post(h, path, other, "Idempotency-Key", "register-SHP-1001"); r.Code != 422 || !strings.Contains(r.Body.String(), "idempotency-key-reused") {
		t.Errorf("same key, other body: %d %s, want 422 idempotency-key-reused", r.Code, r.Body)
	}
	// Another body whose events' derived ids collide with nothing stored.
	single := `{"entityType": "shipment", "events": [{"type": "MilestoneReached", "occurredAt": "2026-03-01T10:00:00Z",
		"data": {"milestone": "departed"}}]}`
	for _, p := range []string{path, "/api/v1/entities/SHP-2002/events"} {
		if r := post(h, p, single, "Idempotency-Key", "register-SHP-1001"); r.Code != 422 || !strings.Contains(r.Body.String(), "idempotency-key-reused") {
			t.Errorf("same key, another one-event body to %s: %d %s, want 422 idempotency-key-reused", p, r.Code, r.Body)
		}
	}
	// A request refused as malformed does not take the key; keys are per tenant.
	if r := post(h, path, `{"events": []}`, "Idempotency-Key", "fresh"); r.Code != 400 {
		t.Errorf("malformed keyed request: %d %s, want 400", r.Code, r.Body)
	}
	if r := post(h, "/api/v1/entities/SHP-3003/events", single, "Idempotency-Key", "fresh"); r.Code != 201 {
		t.Errorf("the fixed request with the key of a malformed one: %d %s, want 201", r.Code, r.Body)
	}
	if r := post(h, "/api/v1/entities/SHP-4004/events", single, "Idempotency-Key", "register-SHP-1001", "X-Tenant-ID", "beta"); r.Code != 201 {
		t.Errorf("another tenant's request with the same key: %d %s, want 201", r.Code, r.Body)
	}
	if r := post(h, path, readmeBody); r.Code != 409 || !strings.Contains(r.Body.String(), "partly-stored") {
		t.Errorf("the same body without the key: %d %s, want 409 partly-stored", r.Code, r.Body)
	}
	// Batch items each get their own ids from the key.
	batch := `{"items": [{"entityId": "B-1", "entityType": "vehicle", "events": [{"type": "LocationReported", "occurredAt": "2026-03-01T08:00:00Z", "data": {"lat": 1, "lon": 1}}]},
		{"entityId": "B-2", "entityType": "vehicle", "events": [{"type": "LocationReported", "occurredAt": "2026-03-01T08:00:00Z", "data": {"lat": 1, "lon": 1}}]}]}`
	b1 := post(h, "/api/v1/events/batch", batch, "Idempotency-Key", "batch-1")
	b2 := post(h, "/api/v1/events/batch", batch, "Idempotency-Key", "batch-1")
	if b1.Code != 200 || b2.Body.String() != b1.Body.String() || !strings.Contains(b1.Body.String(), `"version":1`) ||
		strings.Contains(b2.Body.String(), `"version":2`) {
		t.Errorf("batch with a key twice: %s then %s, want the same answers at version 1", b1.Body, b2.Body)
	}
	for _, bad := range [][]string{{"Idempotency-Key", ""}, {"Idempotency-Key", "a b"}, {"Idempotency-Key", strings.Repeat("k", 256)},
		{"Idempotency-Key", "x", "Idempotency-Key", "y"}} {
		if r := post(h, path, readmeBody, bad...); r.Code != 400 {
			t.Errorf("Idempotency-Key %q: %d, want 400", bad, r.Code)
		}
	}
}
