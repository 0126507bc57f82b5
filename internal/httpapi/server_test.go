package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
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
