package postgres_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Large batches are written with COPY, small ones with INSERT: both must
// produce the same read models.
func TestBulkAndRowByRowApplyAgree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	store := open(t, dsn)
	rm, err := postgres.OpenReadModels(ctx, "", store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range 30 {
		evs := make([]eventstore.Event, 10)
		for k := range evs {
			evs[k] = benchEvent(k, base.Add(time.Duration(i*10+k)*time.Second))
		}
		if _, err := store.Append(ctx, eventstore.AppendRequest{Tenant: "t", StreamID: "S-" + string(rune('a'+i%26)),
			EntityType: "shipment", Expected: eventstore.Any, Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every appended event is readable (other tests' transactions
	// on the server can hold the horizon back).
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := store.ReadAll(ctx, eventstore.Cursor{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 300 events readable", len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	dump := func(batch int) map[string][]string {
		t.Helper()
		m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{BatchSize: batch})
		for i, name := range tracking.EntityProjections() {
			if err := m.Rebuild(ctx, name); err != nil {
				t.Fatal(err)
			}
			// CatchUp stops at the head it saw, which can lag commits while
			// other transactions of the server run: repeat until none is left.
			deadline := time.Now().Add(10 * time.Second)
			for {
				if err := m.CatchUp(ctx, name); err != nil {
					t.Fatal(err)
				}
				st, err := m.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st[i].LagEvents == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still lags %d events", name, st[i].LagEvents)
				}
			}
		}
		d, err := rm.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	bulk, rows := dump(1000), dump(7)
	if len(bulk["rm_timeline"]) != 300 || len(bulk["rm_metric_points"]) != 300 {
		t.Fatalf("bulk rebuild holds %d timeline rows and %d points, want 300 each", len(bulk["rm_timeline"]), len(bulk["rm_metric_points"]))
	}
	if !reflect.DeepEqual(bulk, rows) {
		t.Fatal("read models built with COPY differ from those built row by row")
	}
}
