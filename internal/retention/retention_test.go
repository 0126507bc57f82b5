package retention_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/retention"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func loc(at time.Time, lat float64) tracking.NewEvent {
	d, _ := json.Marshal(map[string]float64{"lat": lat, "lon": 1})
	return tracking.NewEvent{Type: "LocationReported", OccurredAt: at, Data: d}
}

// With a controllable clock: events older than MaxAge disappear only behind
// a snapshot and every reader, the entity's state is unchanged, superseded
// snapshots older than SnapshotAge are pruned, and a dry run changes nothing.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	store, rm := openSQLite(t, sqlite.Options{Now: clk.Now})
	svc := tracking.NewService(store, tracking.ServiceOptions{SnapshotFrequency: 4, Now: clk.Now})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() { stop(); <-done }()
	m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{})
	record := func(id string, events ...tracking.NewEvent) {
		t.Helper()
		if _, err := svc.Record(ctx, tracking.RecordCommand{Tenant: "t", EntityID: id, EntityType: "vehicle",
			Expected: eventstore.Any, Events: events}); err != nil {
			t.Fatal(err)
		}
	}
	catchUp := func() {
		t.Helper()
		for _, name := range tracking.Projections() {
			if err := m.CatchUp(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	t0 := clk.Now()
	var old []tracking.NewEvent
	for i := range 6 {
		old = append(old, loc(t0.Add(time.Duration(i)*time.Minute), float64(i)))
	}
	record("V-1", old...)
	record("V-2", loc(t0, 50)) // old, never snapshotted
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(400 * 24 * time.Hour)
	record("V-1", loc(clk.Now().Add(-time.Hour), 7), loc(clk.Now().Add(-time.Minute), 8))
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before1, _ := svc.Entity(ctx, "t", "V-1")
	before2, _ := svc.Entity(ctx, "t", "V-2")
	deps := retention.Deps{Store: store, ReadModels: rm, Snapshotter: svc, Readers: tracking.Projections(),
		SnapshotSchemaVersion: tracking.SnapshotSchemaVersion}
	policy := retention.Policy{MaxAge: 365 * 24 * time.Hour, SnapshotAge: 30 * 24 * time.Hour}

	// Projections have not read the log yet: no event may go.
	rep, err := retention.Run(ctx, deps, policy, clk.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	// V-1 crossed version 8 after the clock moved: its snapshot at 8 is
	// fresh and supersedes the old one at 4; V-2 has an old event and no
	// snapshot.
	if rep.EventsDeleted != 0 || rep.SnapshotsTaken != 1 || rep.SnapshotsPruned != 1 {
		t.Fatalf("dry run before projections caught up: %+v, want no event, 1 snapshot to take, 1 to prune", rep)
	}
	catchUp()
	dumpBefore, _ := rm.Dump(ctx)
	countsBefore := counts(t, store)
	dry, err := retention.Run(ctx, deps, policy, clk.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	// Dry, V-2's snapshot is not taken, so its old event still counts as uncovered.
	if want := (retention.Report{DryRun: true, SnapshotsTaken: 1, SnapshotsPruned: 1, EventsDeleted: 6, TimelineRowsDeleted: 7}); dry != want {
		t.Fatalf("dry run = %+v, want %+v", dry, want)
	}
	if got, _ := rm.Dump(ctx); !reflect.DeepEqual(got, dumpBefore) || !reflect.DeepEqual(counts(t, store), countsBefore) {
		t.Fatal("the dry run changed something")
	}

	rep, err = retention.Run(ctx, deps, policy, clk.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	// V-1: the snapshot at 8 covers its six old events, which go; the two
	// recent stay. V-2: a fresh snapshot at 1 lets its old event go.
	want := retention.Report{SnapshotsTaken: 1, SnapshotsPruned: 1, EventsDeleted: 7, TimelineRowsDeleted: 7}
	if rep != want {
		t.Fatalf("report = %+v, want %+v", rep, want)
	}
	recs, err := store.ReadStream(ctx, "t", "V-1", 1, 100)
	if err != nil || len(recs) != 2 || recs[0].Version != 7 {
		t.Fatalf("V-1 after retention: %d events from v%d, %v; want v7 and v8", len(recs), recs[0].Version, err)
	}
	after1, _ := svc.Entity(ctx, "t", "V-1")
	after2, _ := svc.Entity(ctx, "t", "V-2")
	if !reflect.DeepEqual(before1, after1) || !reflect.DeepEqual(before2, after2) {
		t.Fatalf("state changed:\n%+v\n%+v\nvs\n%+v\n%+v", before1, before2, after1, after2)
	}
	if snap, _ := store.LoadSnapshot(ctx, "t", "V-1"); snap.Version != 8 {
		t.Fatalf("V-1's snapshot is at %d, want 8", snap.Version)
	}
	// Idempotent: a second run finds nothing to do.
	if rep, _ := retention.Run(ctx, deps, policy, clk.Now(), false); rep != (retention.Report{}) {
		t.Fatalf("second run = %+v, want nothing", rep)
	}
}

// openSQLite opens a store and its read models on a new file, closed at the
// test's end.
func openSQLite(t *testing.T, opts sqlite.Options) (*sqlite.Store, *readmodel.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "r.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rm, err := sqlite.OpenReadModels(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	return store, rm
}

func counts(t *testing.T, s *sqlite.Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"events", "snapshots", "streams"} {
		var n int
		if err := s.ReadDB().QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// Idempotency-Keys expire: a run a day later (whatever the age policy)
// deletes them, after which the key binds to a new request; a dry run only
// counts them.
func TestRetentionTrimsExpiredIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, rm := openSQLite(t, sqlite.Options{})
	if _, err := rm.ClaimIdempotencyKey(ctx, "t", "k1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	deps := retention.Deps{Store: store, ReadModels: rm, Readers: tracking.Projections()}
	if rep, err := retention.Run(ctx, deps, retention.Policy{}, time.Now(), false); err != nil || rep.IdempotencyKeysDeleted != 0 {
		t.Fatalf("run within the key's lifetime: %+v, %v; want no key deleted", rep, err)
	}
	later := time.Now().Add(readmodel.IdempotencyKeyTTL + time.Hour)
	if rep, err := retention.Run(ctx, deps, retention.Policy{}, later, true); err != nil || rep.IdempotencyKeysDeleted != 1 {
		t.Fatalf("dry run a day later: %+v, %v; want 1 key counted", rep, err)
	}
	if got, _ := rm.ClaimIdempotencyKey(ctx, "t", "k1", []byte("second")); string(got) != "first" {
		t.Fatalf("after the dry run the key is bound to %q, want still first", got)
	}
	if rep, err := retention.Run(ctx, deps, retention.Policy{}, later, false); err != nil || rep.IdempotencyKeysDeleted != 1 {
		t.Fatalf("run a day later: %+v, %v; want 1 key deleted", rep, err)
	}
	if got, _ := rm.ClaimIdempotencyKey(ctx, "t", "k1", []byte("second")); string(got) != "second" {
		t.Fatalf("after expiry the key is bound to %q, want second", got)
	}
}

// EPCIS capture jobs go after CaptureJobAge, on every run whatever the
// other ages; a dry run only counts them.
func TestRetentionTrimsCaptureJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, rm := openSQLite(t, sqlite.Options{})
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{created, created.Add(48 * time.Hour)} {
		if err := rm.SaveJob(ctx, epcis.Job{Tenant: "t", CaptureID: fmt.Sprint("job-", i), CreatedAt: at, Behaviour: epcis.Rollback}); err != nil {
			t.Fatal(err)
		}
	}
	deps := retention.Deps{Store: store, ReadModels: rm, Readers: tracking.Projections()}
	policy := retention.Policy{CaptureJobAge: 24 * time.Hour}
	now := created.Add(36 * time.Hour)
	if rep, err := retention.Run(ctx, deps, policy, now, true); err != nil || rep.CaptureJobsDeleted != 1 {
		t.Fatalf("dry run: %+v, %v; want 1 job counted", rep, err)
	}
	if rep, err := retention.Run(ctx, deps, policy, now, false); err != nil || rep.CaptureJobsDeleted != 1 {
		t.Fatalf("run: %+v, %v; want 1 job deleted", rep, err)
	}
	if _, err := rm.Job(ctx, "t", "job-0"); !errors.Is(err, epcis.ErrJobNotFound) {
		t.Errorf("the old job: %v, want gone", err)
	}
	if _, err := rm.Job(ctx, "t", "job-1"); err != nil {
		t.Errorf("the recent job: %v", err)
	}
}
