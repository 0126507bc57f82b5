package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/postgres"
	"github.com/tlm/tracktrace/internal/postgres/pgtest"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/tracking"
)

// Two runners on one database: one is active per projection; when it stops,
// the other takes over within RefreshInterval plus a small bound.
func TestProjectionFailover(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	const refresh = 300 * time.Millisecond
	type replica struct {
		m    *projection.Manager
		stop context.CancelFunc
		done chan struct{}
	}
	start := func() replica {
		store := open(t, dsn) // its own pool: another process, as far as PostgreSQL can tell
		rm, err := postgres.OpenReadModels(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rm.Close() }) // after the manager has stopped
		m := projection.NewManager(store, rm, rm, tracking.Projections(), projection.Options{Interval: refresh})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { m.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return replica{m, cancel, done}
	}
	active := func(r replica) map[string]bool {
		st, err := r.m.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, s := range st {
			out[s.Name] = s.Active
		}
		return out
	}
	waitUntil := func(what string, bound time.Duration, cond func() bool) time.Duration {
		t.Helper()
		began := time.Now()
		for !cond() {
			if time.Since(began) > bound {
				t.Fatalf("%s: not within %s", what, bound)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(began)
	}

	a := start()
	// Generous deadlines: a loaded 2-core machine is slow; the takeover
	// time is logged as a figure, not asserted.
	waitUntil("first replica leads every projection", 60*time.Second, func() bool {
		act := active(a)
		return act[tracking.ProjectionTimeline] && act[tracking.ProjectionEntities] && act[tracking.ProjectionMetrics]
	})
	b := start()
	// b competes for a while and never becomes active while a leads.
	deadline := time.Now().Add(3 * refresh)
	for time.Now().Before(deadline) {
		for name, on := range active(b) {
			if on {
				t.Fatalf("second replica active on %s while the first leads", name)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.stop()
	<-a.done
	took := waitUntil("second replica takes over", 60*time.Second, func() bool {
		act := active(b)
		return act[tracking.ProjectionTimeline] && act[tracking.ProjectionEntities] && act[tracking.ProjectionMetrics]
	})
	t.Logf("takeover after %s (RefreshInterval %s)", took, refresh)
}
