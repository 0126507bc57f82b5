package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Appending, then reading the timeline with the append's version as
// minVersion, returns the event, also while 16 other clients append.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var background atomic.Int64
			for c := range 16 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						r := srv.do(t, "POST", fmt.Sprintf("/api/v1/entities/BG-%d-%d/events", c, i%20), map[string]any{
							"entityType": "package", "events": []any{ev("LocationReported", time.Duration(i)*time.Second, `{"lat":1,"lon":2}`)}})
						if r.StatusCode != 201 {
							t.Errorf("background append: %d %s", r.StatusCode, r.Body)
							return
						}
						background.Add(1)
					}
				})
			}
			for i := range 30 {
				id := fmt.Sprintf("RYW-%d", i)
				r := srv.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"entityType": "shipment",
					"events": []any{ev("EntityRegistered", 0, `{}`), ev("MilestoneReached", time.Minute, `{"milestone":"departed"}`)}})
				if r.StatusCode != 201 {
					t.Fatalf("append: %d %s", r.StatusCode, r.Body)
				}
				var app struct{ Version int64 }
				r.JSON(t, &app)
				var tl struct {
					Entries          []struct{ Version int64 }
					ProjectedVersion int64
					Stale            bool
				}
				srv.do(t, "GET", fmt.Sprintf("/api/v1/entities/%s/timeline?minVersion=%d", id, app.Version), nil).JSON(t, &tl)
				if tl.Stale || tl.ProjectedVersion < app.Version || len(tl.Entries) != 2 {
					t.Fatalf("timeline after append v%d: projected %d, %d entries, stale %v", app.Version, tl.ProjectedVersion, len(tl.Entries), tl.Stale)
				}
				var st struct {
					Version int64
					Status  string
				}
				srv.do(t, "GET", fmt.Sprintf("/api/v1/entities/%s?minVersion=%d", id, app.Version), nil).JSON(t, &st)
				if st.Version != app.Version || st.Status != "in_transit" {
					t.Fatalf("entity after append v%d: %+v", app.Version, st)
				}
			}
			close(stop)
			wg.Wait()
			if background.Load() < 16 {
				t.Fatalf("only %d background appends: the test did not run under load", background.Load())
			}
		})
	}
}
