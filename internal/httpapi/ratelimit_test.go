package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// The rate limit applies while RateLimitEnabled says so, per request: a
// tenant refused with 429 is served again as soon as it is switched off,
// and limited again once it is back on.
func TestRateLimitSwitch(t *testing.T) {
	store, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var on atomic.Bool
	on.Store(true)
	h := NewServer(Deps{Tracker: tracking.NewService(store, tracking.ServiceOptions{}),
		RateLimit: 0.001, RateBurst: 1, RateLimitEnabled: on.Load})
	get := func() int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/entities/none", nil)
		req.Header.Set("X-Tenant-ID", "noisy")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := get(); got != http.StatusNotFound {
		t.Fatalf("first request = %d, want 404 (within the burst)", got)
	}
	if got := get(); got != http.StatusTooManyRequests {
		t.Fatalf("second request = %d, want 429", got)
	}
	on.Store(false)
	for range 3 {
		if got := get(); got != http.StatusNotFound {
			t.Fatalf("with the limit switched off: %d, want 404", got)
		}
	}
	on.Store(true)
	if got := get(); got != http.StatusTooManyRequests {
		t.Fatalf("with the limit back on: %d, want 429", got)
	}
}
