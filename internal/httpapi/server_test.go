package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// verifierFunc is a Verifier made of a function of the bearer token.
type verifierFunc func(ctx context.Context, token string) (tracking.Principal, error)

func (f verifierFunc) Authenticate(ctx context.Context, authorization string) (tracking.Principal, error) {
	scheme, token, _ := strings.Cut(authorization, " ")
	if scheme != "Bearer" {
		return tracking.Principal{}, errors.New("not a bearer token")
	}
	return f(ctx, token)
}

// tenantRecorder is a Tracker that knows no entities and remembers the
// tenant each read was made in.
type tenantRecorder struct {
	mu      sync.Mutex
	tenants []string
}

func (tr *tenantRecorder) seen(tenant string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.tenants = append(tr.tenants, tenant)
}

func (tr *tenantRecorder) Record(context.Context, tracking.RecordCommand) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{}, errors.New("not recording")
}

func (tr *tenantRecorder) RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome {
	out := make([]eventstore.Outcome, len(cmds))
	for i := range cmds {
		out[i].Err = errors.New("not recording")
	}
	return out
}

func (tr *tenantRecorder) Entity(_ context.Context, tenant, _ string) (tracking.EntityState, error) {
	tr.seen(tenant)
	return tracking.EntityState{}, tracking.ErrNotFound
}

func (tr *tenantRecorder) Events(_ context.Context, tenant, _ string, _ int64, _ int) ([]eventstore.Recorded, error) {
	tr.seen(tenant)
	return nil, tracking.ErrNotFound
}

func (tr *tenantRecorder) Erase(context.Context, string, string) (int64, error) {
	return 0, tracking.ErrNotFound
}

// The principal a Verifier yields decides the tenant and the scopes; without
// a Verifier the caller names its tenant and may do everything in it.
func TestAuthenticate(t *testing.T) {
	tokens := map[string]tracking.Principal{
		"reader": {Tenant: "acme", Subject: "auditor", Scopes: []string{tracking.ScopeRead}},
		"nobody": {Tenant: "acme", Subject: "intruder", Scopes: []string{}},
	}
	verifier := verifierFunc(func(_ context.Context, token string) (tracking.Principal, error) {
		if p, ok := tokens[token]; ok {
			return p, nil
		}
		return tracking.Principal{}, errors.New("unknown token")
	})
	tests := []struct {
		name       string
		verifier   Verifier
		method     string
		header     []string
		wantStatus int
		wantTenant string // the tenant the read was made in; "" = none made
	}{
		{"reader reads its tenant", verifier, "GET", []string{"Authorization", "Bearer reader"}, 404, "acme"},
		{"X-Tenant-ID cannot switch tenant", verifier, "GET", []string{"Authorization", "Bearer reader", "X-Tenant-ID", "globex"}, 404, "acme"},
		{"reader cannot write", verifier, "POST", []string{"Authorization", "Bearer reader"}, 403, ""},
		{"no scope, no read", verifier, "GET", []string{"Authorization", "Bearer nobody"}, 403, ""},
		{"rejected token", verifier, "GET", []string{"Authorization", "Bearer forged"}, 401, ""},
		{"no token", verifier, "GET", nil, 401, ""},
		{"embedded: named tenant", nil, "GET", []string{"X-Tenant-ID", "globex"}, 404, "globex"},
		{"embedded: default tenant", nil, "GET", nil, 404, DefaultTenant},
		{"embedded: malformed tenant", nil, "GET", []string{"X-Tenant-ID", "../acme"}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &tenantRecorder{}
			h := NewServer(Deps{Tracker: tr, Verifier: tt.verifier})
			req := httptest.NewRequest(tt.method, "/api/v1/entities/A-1/events", strings.NewReader(`{"events":[]}`))
			req.Header.Set("Content-Type", "application/json")
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %v", rec.Header())
			}
			switch {
			case tt.wantTenant == "" && len(tr.tenants) > 0:
				t.Errorf("read made in %v, want none", tr.tenants)
			case tt.wantTenant != "" && (len(tr.tenants) != 1 || tr.tenants[0] != tt.wantTenant):
				t.Errorf("reads made in %v, want one in %q", tr.tenants, tt.wantTenant)
			}
		})
	}
}

// noReadModels answers every read with nothing (the scope checks come first).
type noReadModels struct{}

func (noReadModels) Entity(context.Context, string, string) (tracking.EntityState, error) {
	return tracking.EntityState{}, tracking.ErrNotFound
}
func (noReadModels) ListEntities(context.Context, tracking.EntityQuery) (tracking.EntityPage, error) {
	return tracking.EntityPage{Items: []tracking.EntityState{}}, nil
}
func (noReadModels) Timeline(context.Context, tracking.TimelineQuery) (tracking.TimelinePage, error) {
	return tracking.TimelinePage{Entries: []tracking.TimelineEntry{}}, nil
}
func (noReadModels) ProjectedVersion(context.Context, string, string, string) (int64, error) {
	return 0, nil
}
func (noReadModels) MetricSamples(context.Context, tracking.MetricsQuery) ([]tracking.MetricSample, error) {
	return nil, nil
}

// rebuildRecorder is a Projections that remembers rebuilds.
type rebuildRecorder struct{ rebuilt []string }

func (r *rebuildRecorder) Status(context.Context) ([]projection.Status, error) {
	return []projection.Status{{Name: "entities"}}, nil
}
func (r *rebuildRecorder) Rebuild(_ context.Context, name string) error {
	r.rebuilt = append(r.rebuilt, name)
	return nil
}
func (r *rebuildRecorder) Progress() <-chan struct{} { return make(chan struct{}) }

// Every route checks its own scope, for HEAD as for GET; the projections,
// which span every tenant, need the operator scope, not a tenant's admin.
func TestRouteScopes(t *testing.T) {
	tokens := map[string]tracking.Principal{
		"writer":   {Tenant: "acme", Subject: "scanner", Scopes: []string{tracking.ScopeWrite}},
		"admin":    {Tenant: "acme", Subject: "acme-admin", Scopes: []string{tracking.ScopeAdmin, tracking.ScopeRead}},
		"operator": {Tenant: "ops", Subject: "sre", Scopes: []string{tracking.ScopeOperator}},
	}
	verifier := verifierFunc(func(_ context.Context, token string) (tracking.Principal, error) {
		if p, ok := tokens[token]; ok {
			return p, nil
		}
		return tracking.Principal{}, errors.New("unknown token")
	})
	tests := []struct {
		method, path, token string
		want                int
	}{
		{"HEAD", "/api/v1/entities/A-1", "writer", 403},
		{"HEAD", "/api/v1/entities/A-1/events", "writer", 403},
		{"HEAD", "/api/v1/entities/A-1/timeline", "writer", 403},
		{"HEAD", "/api/v1/entities", "writer", 403},
		{"HEAD", "/api/v1/metrics/operational?operation=loading&interval=PT1H&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "writer", 403},
		{"GET", "/api/v1/entities", "writer", 403},
		{"HEAD", "/api/v1/entities", "admin", 200},
		{"GET", "/api/v1/projections", "admin", 403},
		{"POST", "/api/v1/projections/entities/rebuild", "admin", 403},
		{"GET", "/api/v1/projections", "operator", 200},
		{"POST", "/api/v1/projections/entities/rebuild", "operator", 202},
		{"GET", "/api/v1/stream", "writer", 403},
		{"GET", "/api/v1/entities/A-1/stream", "writer", 403},
		{"HEAD", "/api/v1/stream", "operator", 403},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" as "+tt.token, func(t *testing.T) {
			proj := &rebuildRecorder{}
			h := NewServer(Deps{Tracker: &tenantRecorder{}, ReadModels: noReadModels{}, Projections: proj, Verifier: verifier, Live: &Live{}})
			req := httptest.NewRequest(tt.method, tt.path, nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 403 && (rec.Header().Get("ETag") != "" || len(proj.rebuilt) > 0) {
				t.Errorf("a refused call still answered an ETag %q or rebuilt %v", rec.Header().Get("ETag"), proj.rebuilt)
			}
		})
	}
}

// Two Authorization headers are ambiguous: neither is picked.
func TestTwoAuthorizationHeaders(t *testing.T) {
	verifier := verifierFunc(func(context.Context, string) (tracking.Principal, error) {
		return tracking.Principal{Tenant: "acme", Subject: "s", Scopes: []string{tracking.ScopeRead}}, nil
	})
	h := NewServer(Deps{Tracker: &tenantRecorder{}, Verifier: verifier})
	req := httptest.NewRequest("GET", "/api/v1/entities/A-1", nil)
	req.Header.Add("Authorization", "Bearer first")
	req.Header.Add("Authorization", "Bearer second")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("two Authorization headers: %d %s", rec.Code, rec.Body)
	}
}

// blockingTracker records nothing until the request's context ends.
type blockingTracker struct{ tenantRecorder }

func (*blockingTracker) Record(ctx context.Context, _ tracking.RecordCommand) (eventstore.AppendResult, error) {
	<-ctx.Done()
	return eventstore.AppendResult{}, ctx.Err()
}

func (b *blockingTracker) RecordBatch(ctx context.Context, cmds []tracking.RecordCommand) []eventstore.Outcome {
	out := make([]eventstore.Outcome, len(cmds))
	for i, c := range cmds {
		out[i].Result, out[i].Err = b.Record(ctx, c)
	}
	return out
}

// levelCounter counts log records by level.
type levelCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (c *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *levelCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[r.Level]++
	return nil
}
func (c *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *levelCounter) WithGroup(string) slog.Handler      { return c }

// A client that goes away is no server error: nothing is logged as ERROR.
func TestClientCancellationIsNotAnError(t *testing.T) {
	logs := &levelCounter{counts: map[slog.Level]int{}}
	h := NewServer(Deps{Tracker: &blockingTracker{}, Logger: slog.New(logs)})
	for _, target := range []string{"/api/v1/entities/A-1/events", "/api/v1/events/batch"} {
		body := `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`
		if strings.HasSuffix(target, "batch") {
			body = `{"items":[{"entityId":"A-1",` + body[1:] + `]}`
		}
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest("POST", target, strings.NewReader(body)).WithContext(ctx)
		req.Header.Set("Content-Type", "application/json")
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(httptest.NewRecorder(), req) }()
		cancel()
		<-done
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if logs.counts[slog.LevelError] != 0 {
		t.Errorf("client cancellations logged %d ERROR records", logs.counts[slog.LevelError])
	}
}

// A known path with another method is 405 with Allow; a path with dot or
// empty segments is 404, never a redirect (which a POST would follow as GET).
func TestMethodsAndUncleanPaths(t *testing.T) {
	h := NewServer(Deps{Tracker: &tenantRecorder{}})
	tests := []struct {
		method, path string
		want         int
		allow        string
	}{
		{"PUT", "/api/v1/entities/A-1/events", 405, "GET, HEAD, POST"},
		{"PATCH", "/api/v1/events/batch", 405, "POST"},
		{"POST", "/api/v1/entities/../x/events", 404, ""},
		{"POST", "/api/v1/entities/A-1/./events", 404, ""},
		{"GET", "/api/v1//entities/A-1", 404, ""},
		{"GET", "/api/v1/entities/A-1/..", 404, ""},
		{"GET", "/nowhere", 404, ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, "/", nil)
		req.URL.Path = tt.path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want || rec.Header().Get("Allow") != tt.allow ||
			rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d Allow %q (%s), want %d Allow %q", tt.method, tt.path, rec.Code,
				rec.Header().Get("Allow"), rec.Header().Get("Content-Type"), tt.want, tt.allow)
		}
	}
}

// A filter no entity can match is a 400 that lists what it may be.
func TestUnknownFilters(t *testing.T) {
	types, err := tracking.NewEntityTypes("pallet")
	if err != nil {
		t.Fatal(err)
	}
	h := NewServer(Deps{Tracker: &tenantRecorder{}, ReadModels: noReadModels{}, Projections: &rebuildRecorder{}, EntityTypes: types})
	for path, want := range map[string]int{
		"/api/v1/entities?status=in-transit":               400,
		"/api/v1/entities?status=in_transit":               200,
		"/api/v1/entities?entityType=shipments":            400,
		"/api/v1/entities?entityType=pallet":               200,
		"/api/v1/metrics/operational?entityType=Shipment":  400,
		"/api/v1/metrics/operational?entityType=container": 200,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s = %d, want %d: %s", path, rec.Code, want, rec.Body)
		}
	}
}
