package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

func openReadModels(t testing.TB, s *sqlite.Store) *readmodel.Store {
	t.Helper()
	rm, err := sqlite.OpenReadModels(context.Background(), s)
	if err != nil {
		t.Fatalf("open read models: %v", err)
	}
	return rm
}

func TestReadModelsConformance(t *testing.T) {
	t.Parallel()
	projectiontest.Run(t, func(t *testing.T) projectiontest.Harness {
		s := open(t, filepath.Join(t.TempDir(), "tracktrace.db"))
		return projectiontest.Harness{Store: s, ReadModels: openReadModels(t, s), Sever: func() { s.Close() }}
	})
}

// Processes sharing the file open the read models at once: the migrations
// run once, and the projections' leadership spans the processes.
func TestReadModelsSharedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	stores := make([]*sqlite.Store, 3)
	rms := make([]*readmodel.Store, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := sqlite.Open(context.Background(), "file:"+path, sqlite.Options{})
			if err != nil {
				errs[i] = err
				return
			}
			stores[i] = s
			rms[i], errs[i] = sqlite.OpenReadModels(context.Background(), s)
		})
	}
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
	}
	ctx := context.Background()
	for _, rm := range rms {
		if err := rm.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, release, ok, err := rms[0].TryLead(ctx, tracking.ProjectionEntities)
	if err != nil || !ok {
		t.Fatalf("lead: %v, %v", ok, err)
	}
	if _, _, ok, err := rms[1].TryLead(ctx, tracking.ProjectionEntities); ok || err != nil {
		t.Fatalf("a second process leads too: %v, %v", ok, err)
	}
	release()
	release() // idempotent
	_, release, ok, err = rms[2].TryLead(ctx, tracking.ProjectionEntities)
	if err != nil || !ok {
		t.Fatalf("lead after release: %v, %v", ok, err)
	}
	release()
}

func TestReadModelsLimits(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "limits.db"))
	rm := openReadModels(t, s)
	ctx := context.Background()
	if _, err := rm.ListEntities(ctx, tracking.EntityQuery{Tenant: "acme"}); !errors.Is(err, tracking.ErrInvalid) {
		t.Errorf("list with limit 0: %v, want ErrInvalid", err)
	}
	if _, err := rm.Timeline(ctx, tracking.TimelineQuery{Tenant: "acme", EntityID: "X"}); !errors.Is(err, tracking.ErrInvalid) {
		t.Errorf("timeline with limit 0: %v, want ErrInvalid", err)
	}
	if err := rm.Apply(ctx, map[string]eventstore.Cursor{"nope": {}}, []eventstore.Recorded{{}}); err == nil {
		t.Error("apply to an unknown projection succeeded")
	}
}
