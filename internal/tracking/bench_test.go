package tracking_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// BenchmarkLoadEntity loads an entity of 10,000 events (Service.Entity: the
// latest snapshot and the events after it, then the fold), with a snapshot 50
// events behind the head (halfway between two snapshots at the default
// frequency of 100) and without any snapshot, on both engines.
//
//	go test -run '^$' -bench LoadEntity -count 5 ./internal/tracking/
func BenchmarkLoadEntity(b *testing.B) {
	for _, eng := range realEngines {
		for _, withSnapshot := range []bool{true, false} {
			name := eng.name + "/snapshot"
			if !withSnapshot {
				name = eng.name + "/no-snapshot"
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				store := eng.open(b)
				// No background snapshots: the benchmark places its own.
				svc := tracking.NewService(store, tracking.ServiceOptions{SnapshotFrequency: tracking.MaxSnapshotFrequency})
				base := time.Now().Add(-30 * 24 * time.Hour)
				for batch := range 100 {
					cmd := tracking.RecordCommand{Tenant: "bench", EntityID: "BIG-1", EntityType: "vehicle", Expected: eventstore.Any}
					for i := range 100 {
						n := batch*100 + i
						cmd.Events = append(cmd.Events, tracking.NewEvent{Type: "LocationReported",
							OccurredAt: base.Add(time.Duration(n) * time.Second),
							Data:       json.RawMessage(fmt.Sprintf(`{"lat":%g,"lon":4.3,"siteId":"S-%d"}`, float64(n%90)/2, n%7))})
					}
					if _, err := svc.Record(ctx, cmd); err != nil {
						b.Fatal(err)
					}
					if withSnapshot && batch == 98 {
						if err := svc.Snapshot(ctx, "bench", "BIG-1"); err != nil {
							b.Fatal(err)
						}
					}
				}
				if !withSnapshot {
					if _, err := store.LoadSnapshot(ctx, "bench", "BIG-1"); err == nil {
						b.Fatal("a snapshot exists")
					}
				}
				b.ResetTimer()
				for range b.N {
					st, err := svc.Entity(ctx, "bench", "BIG-1")
					if err != nil || st.Version != 10000 {
						b.Fatalf("entity = v%d, %v", st.Version, err)
					}
				}
			})
		}
	}
}
