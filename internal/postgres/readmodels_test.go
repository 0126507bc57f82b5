package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/projection/projectiontest"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

func TestReadModelsConformance(t *testing.T) {
	t.Parallel()
	projectiontest.Run(t, func(t *testing.T) projectiontest.Harness {
		// Through a proxy that can cut the connections mid-reply.
		proxy, dsn := pgtest.NewProxy(t, pgtest.NewDatabase(t))
		s := open(t, dsn)
		rm, err := postgres.OpenReadModels(context.Background(), "", s.Pool())
		if err != nil {
			t.Fatalf("open read models: %v", err)
		}
		return projectiontest.Harness{Store: s, ReadModels: rm, Sever: func() { proxy.SeverAfter(16 << 10) }}
	})
}

// Two replicas on one database: what one commits to the read models (the
// projections' batches, an erasure, a reset), the other hears of, so that
// it can drop what its in-process cache holds of those entities. Batches
// of many entities span several notifications.
func TestReadModelChangesAreAnnounced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	s := open(t, dsn)
	applier, err := postgres.OpenReadModels(ctx, "", s.Pool())
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := postgres.OpenReadModels(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Close() })
	type change struct {
		positions []readmodel.StreamPosition
		all       bool
	}
	changes := make(chan change, 100)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		watcher.Watch(wctx, func(p []readmodel.StreamPosition, all bool) { changes <- change{p, all} })
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	next := func() change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no announcement within 10 s")
			return change{}
		}
	}
	if c := next(); !c.all {
		t.Fatalf("first report %+v, want all (the watch started)", c)
	}

	const entities = 300
	at := time.Now().Add(-time.Hour)
	for i := range entities {
		if _, err := s.Append(ctx, eventstore.AppendRequest{Tenant: "t1", StreamID: fmt.Sprintf("E-%03d", i), EntityType: "shipment",
			Expected: eventstore.NoStream, Events: []eventstore.Event{benchEvent(0, at), benchEvent(1, at.Add(time.Minute))}}); err != nil {
			t.Fatal(err)
		}
	}
	m := projection.NewManager(s, applier, applier, tracking.Projections(), projection.Options{BatchSize: 5000})
	// The log is readable up to the oldest transaction in progress on the
	// server (other tests'): catch up until the last entity is applied.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := m.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		v, err := applier.ProjectedVersion(ctx, tracking.ProjectionMetrics, "t1", fmt.Sprintf("E-%03d", entities-1))
		if err != nil {
			t.Fatal(err)
		}
		if v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the projections did not catch up within 30 s")
		}
	}
	heard := map[string]int64{}
	notifications := 0
	entityProjections := tracking.EntityProjections()
	for len(heard) < entities*len(entityProjections) {
		c := next()
		if c.all {
			t.Fatalf("a batch announced as all")
		}
		notifications++
		for _, p := range c.positions {
			heard[p.Projection+"/"+p.Tenant+"/"+p.EntityID] = p.Version
		}
	}
	for _, name := range entityProjections {
		if v := heard[name+"/t1/E-042"]; v != 2 {
			t.Errorf("%s of E-042 announced at version %d, want 2", name, v)
		}
	}
	if notifications < 2 {
		t.Errorf("%d positions in %d notification(s): want them split under the payload limit", len(heard), notifications)
	}

	if err := applier.EraseEntity(ctx, "t1", "E-007"); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.all || len(c.positions) != 1 || c.positions[0].EntityID != "E-007" || c.positions[0].Version != readmodel.Erased {
		t.Errorf("erasure announced as %+v", c)
	}
	// A rebuild is not announced while it is built (nobody reads it); its
	// switch is, as a change of anything.
	if err := m.Rebuild(ctx, tracking.ProjectionTimeline); err != nil {
		t.Fatal(err)
	}
	if err := m.CatchUp(ctx, tracking.ProjectionTimeline); err != nil {
		t.Fatal(err)
	}
	if c := next(); !c.all {
		t.Errorf("a rebuild switched in announced as %+v, want all", c)
	}
}
