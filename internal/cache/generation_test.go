package cache_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tlm/tracktrace/internal/cache"
	"github.com/tlm/tracktrace/internal/tracking"
)

// rebuiltModels answers one entity and its timeline as the live read
// models hold them, at one version, in a status that a rebuild changes.
type rebuiltModels struct {
	cache.ReadModels
	status string
}

func (r *rebuiltModels) Entity(context.Context, string, string) (tracking.EntityState, error) {
	return tracking.EntityState{EntityID: "P-1", Version: 3, Status: r.status}, nil
}

func (r *rebuiltModels) ProjectedVersion(context.Context, string, string, string) (int64, error) {
	return 3, nil
}

func (r *rebuiltModels) Timeline(context.Context, tracking.TimelineQuery) (tracking.TimelinePage, error) {
	return tracking.TimelinePage{Entries: []tracking.TimelineEntry{{Version: 3, Type: r.status}}}, nil
}

// A rebuild switched in may render an entity's version differently than
// the read models it replaces: once the cache is told of the new
// generation, it serves no answer cached from the old one.
func TestSwitchedGenerationIsNotServedFromCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rm := &rebuiltModels{status: "before"}
	cached := cache.NewReadModels(rm, cache.NewMemory(1<<20, nil), cache.Options{})
	entity := func() string {
		t.Helper()
		b, _, err := cached.RenderedEntity(ctx, "t1", "P-1", "json", 0, func(st tracking.EntityState) ([]byte, error) { return json.Marshal(st) })
		if err != nil {
			t.Fatal(err)
		}
		var st tracking.EntityState
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st.Status
	}
	timeline := func() string {
		t.Helper()
		b, _, err := cached.RenderedTimeline(ctx, tracking.TimelineQuery{Tenant: "t1", EntityID: "P-1", Limit: 10}, "json",
			func(p tracking.TimelinePage) ([]byte, error) { return json.Marshal(p.Entries) })
		if err != nil {
			t.Fatal(err)
		}
		var entries []tracking.TimelineEntry
		if err := json.Unmarshal(b, &entries); err != nil || len(entries) != 1 {
			t.Fatalf("timeline %s: %v", b, err)
		}
		return entries[0].Type
	}
	if entity() != "before" || timeline() != "before" {
		t.Fatal("first reads did not answer the read models")
	}
	rm.status = "after" // the rebuild is switched in: same version, other state
	if entity() != "before" || timeline() != "before" {
		t.Fatal("cached answers were not served before the cache was told of the switch")
	}
	cached.SetGeneration(tracking.ProjectionEntities, 1)
	cached.SetGeneration(tracking.ProjectionTimeline, 1)
	if got := entity(); got != "after" {
		t.Errorf("entity after the switch: %q, cached from the old generation", got)
	}
	if got := timeline(); got != "after" {
		t.Errorf("timeline after the switch: %q, cached from the old generation", got)
	}
}
