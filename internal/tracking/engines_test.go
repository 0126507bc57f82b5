package tracking_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// countingStore counts the events ReadStream returns.
type countingStore struct {
	eventstore.Store
	read atomic.Int64
}

func (c *countingStore) ReadStream(ctx context.Context, tenant, id string, from int64, limit int) ([]eventstore.Recorded, error) {
	recs, err := c.Store.ReadStream(ctx, tenant, id, from, limit)
	c.read.Add(int64(len(recs)))
	return recs, err
}

var realEngines = []struct {
	name string
	open func(t *testing.T) eventstore.Store
}{
	{"sqlite", func(t *testing.T) eventstore.Store {
		s, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "e.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) eventstore.Store {
		s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// An entity of 1,000 events has a snapshot, and loading it reads at most
// SnapshotFrequency events, on the real engines.
func TestSnapshotBoundsLoadingOnEngines(t *testing.T) {
	t.Parallel()
	for _, eng := range realEngines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			store := &countingStore{Store: eng.open(t)}
			svc := tracking.NewService(store, tracking.ServiceOptions{SnapshotFrequency: 100})
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			base := time.Now().Add(-24 * time.Hour)
			for batch := range 10 {
				cmd := tracking.RecordCommand{Tenant: "t1", EntityID: "BIG-1", EntityType: "vehicle", Expected: eventstore.Any}
				for i := range 100 {
					n := batch*100 + i
					data, _ := json.Marshal(map[string]float64{"lat": float64(n%90) / 2, "lon": 4})
					cmd.Events = append(cmd.Events, tracking.NewEvent{Type: "LocationReported",
						OccurredAt: base.Add(time.Duration(n) * time.Second), Data: data})
				}
				if _, err := svc.Record(ctx, cmd); err != nil {
					t.Fatalf("batch %d: %v", batch, err)
				}
			}
			if err := svc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			snap, err := store.LoadSnapshot(ctx, "t1", "BIG-1")
			if err != nil || snap.Version != 1000 {
				t.Fatalf("snapshot = v%d, %v; want one at version 1000", snap.Version, err)
			}
			store.read.Store(0)
			st, err := svc.Entity(ctx, "t1", "BIG-1")
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != 1000 || st.LastLocation == nil || st.LastLocation.Lat != float64(999%90)/2 {
				t.Fatalf("state = %+v", st)
			}
			if n := store.read.Load(); n > 100 {
				t.Fatalf("loading read %d events, want at most SnapshotFrequency (100)", n)
			}
			// One more event: loading reads the snapshot plus that one event.
			if _, err := svc.Record(ctx, tracking.RecordCommand{Tenant: "t1", EntityID: "BIG-1", Expected: eventstore.Exact(1000),
				Events: []tracking.NewEvent{{Type: "LocationReported", OccurredAt: base.Add(time.Hour), Data: json.RawMessage(`{"lat":1,"lon":2}`)}}}); err != nil {
				t.Fatal(err)
			}
			store.read.Store(0)
			if _, err := svc.Entity(ctx, "t1", "BIG-1"); err != nil {
				t.Fatal(err)
			}
			if n := store.read.Load(); n != 1 {
				t.Fatalf("loading after one more event read %d events, want 1", n)
			}
		})
	}
}
