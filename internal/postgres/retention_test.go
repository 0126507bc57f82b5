package postgres_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Retention on PostgreSQL, with the job's clock 400 days ahead of the
// database's: old events go only behind a snapshot and the readers, the
// state is unchanged, a dry run changes nothing.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := open(t, pgtest.NewDatabase(t))
	rm, svc := runService(t, store, 4)
	var events []tracking.NewEvent
	for i := range 6 {
		d, _ := json.Marshal(map[string]float64{"lat": float64(i), "lon": 1})
		events = append(events, tracking.NewEvent{Type: "LocationReported", OccurredAt: time.Now().Add(time.Duration(i-10) * time.Minute), Data: d})
	}
	if _, err := svc.Record(ctx, tracking.RecordCommand{Tenant: "t", EntityID: "V-1", EntityType: "vehicle", Expected: eventstore.Any, Events: events}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	catchUp(t, store, rm, map[string]int64{"V-1": 6})
	before, _ := svc.Entity(ctx, "t", "V-1")
	deps := retention.Deps{Store: store, ReadModels: rm, Snapshotter: svc, Readers: tracking.Projections(),
		SnapshotSchemaVersion: tracking.SnapshotSchemaVersion}
	policy := retention.Policy{MaxAge: 365 * 24 * time.Hour, SnapshotAge: 30 * 24 * time.Hour}
	later := time.Now().Add(400 * 24 * time.Hour)

	dumpBefore, _ := rm.Dump(ctx)
	dry, err := retention.Run(ctx, deps, policy, later, true)
	if err != nil {
		t.Fatal(err)
	}
	// The snapshotter took its snapshot at the current version, 6: it is
	// stale 400 days later and would be refreshed; it covers every event.
	if want := (retention.Report{DryRun: true, SnapshotsTaken: 1, EventsDeleted: 6, TimelineRowsDeleted: 6}); dry != want {
		t.Fatalf("dry run = %+v, want %+v", dry, want)
	}
	if got, _ := rm.Dump(ctx); !reflect.DeepEqual(got, dumpBefore) {
		t.Fatal("the dry run changed the read models")
	}
	if recs, _ := store.ReadStream(ctx, "t", "V-1", 1, 100); len(recs) != 6 {
		t.Fatalf("the dry run deleted events: %d left", len(recs))
	}
	rep, err := retention.Run(ctx, deps, policy, later, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (retention.Report{SnapshotsTaken: 1, EventsDeleted: 6, TimelineRowsDeleted: 6}); rep != want {
		t.Fatalf("report = %+v, want %+v", rep, want)
	}
	after, err := svc.Entity(ctx, "t", "V-1")
	if err != nil || !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed by retention:\n%+v\n%+v (%v)", before, after, err)
	}
	// What the report says, read back: the events are gone from the stream
	// (which still exists: its snapshot holds the state), and so are the
	// timeline rows.
	if recs, err := store.ReadStream(ctx, "t", "V-1", 1, 100); err != nil || len(recs) != 0 {
		t.Errorf("after retention the stream reads %d events (%v), want none", len(recs), err)
	}
	if info, err := store.StreamInfo(ctx, "t", "V-1"); err != nil || info.Version != 6 {
		t.Errorf("after retention the stream is %+v (%v), want it at version 6", info, err)
	}
	dump, err := rm.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dump["rm_timeline"]); n != 0 {
		t.Errorf("%d timeline rows left, want none", n)
	}
}

// runService opens the read models beside store and runs a tracking
// service on it (snapshots every freq events) until the test ends.
func runService(t *testing.T, store *postgres.Store, freq int) (*readmodel.Store, *tracking.Service) {
	t.Helper()
	rm, err := postgres.OpenReadModels(context.Background(), "", store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	svc := tracking.NewService(store, tracking.ServiceOptions{SnapshotFrequency: freq})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return rm, svc
}

// catchUp runs every projection until each has applied the given versions
// of tenant t's entities.
func catchUp(t *testing.T, store *postgres.Store, rm *readmodel.Store, versions map[string]int64) {
	t.Helper()
	ctx := context.Background()
	m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{})
	deadline := time.Now().Add(20 * time.Second)
	for _, name := range tracking.EntityProjections() {
		for id, want := range versions {
			for {
				// All of them: every projection is a reader retention waits for.
				if err := m.CatchUp(ctx); err != nil {
					t.Fatal(err)
				}
				if v, _ := rm.ProjectedVersion(ctx, name, "t", id); v == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not catch up with %s at %d", name, id, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}
