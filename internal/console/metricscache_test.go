package console

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// A metrics page of few points is computed again once the projections
// have moved (or it is older than fresh); one of many points is served
// from its last computation while it is younger than stale, a new one
// being made in the background once it is older than fresh; the cache
// keeps a bounded number of computations.
func TestMetricsCache(t *testing.T) {
	const fresh, stale = 30 * time.Second, 5 * time.Minute
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	type source struct {
		points   int
		computed int
		moved    chan struct{}
	}
	view := func(s *source, now *time.Time) computeView {
		return func(context.Context) (*metricsView, error) {
			s.computed++
			return &metricsView{points: s.points, at: *now, moved: s.moved,
				data: map[string]any{"n": s.computed}}, nil
		}
	}
	get := func(t *testing.T, c *metricsCache, key string, now time.Time, compute computeView) int {
		t.Helper()
		v, err := c.get(t.Context(), key, now, fresh, stale, time.Second, compute)
		if err != nil {
			t.Fatal(err)
		}
		return v.data["n"].(int)
	}

	t.Run("few points", func(t *testing.T) {
		c, now := newMetricsCache(), t0
		s := &source{points: largeMetrics, moved: make(chan struct{})}
		compute := view(s, &now)
		if n := get(t, c, "k", now, compute); n != 1 {
			t.Fatalf("first visit: computation %d", n)
		}
		now = now.Add(fresh - time.Second)
		if n := get(t, c, "k", now, compute); n != 1 {
			t.Errorf("nothing moved: computation %d, want the first", n)
		}
		close(s.moved)
		s.moved = make(chan struct{})
		if n := get(t, c, "k", now, compute); n != 2 {
			t.Errorf("the projections moved: computation %d, want a new one", n)
		}
		now = now.Add(fresh)
		if n := get(t, c, "k", now, compute); n != 3 {
			t.Errorf("older than fresh: computation %d, want a new one", n)
		}
	})

	t.Run("many points", func(t *testing.T) {
		c, now := newMetricsCache(), t0
		s := &source{points: largeMetrics + 1, moved: make(chan struct{})}
		compute := view(s, &now)
		get(t, c, "k", now, compute)
		close(s.moved) // moved: not a reason to compute while fresh
		now = now.Add(fresh - time.Second)
		if n := get(t, c, "k", now, compute); n != 1 || s.computed != 1 {
			t.Errorf("younger than fresh: computation %d (%d made), want the first alone", n, s.computed)
		}
		now = now.Add(2 * time.Second)
		if n := get(t, c, "k", now, compute); n != 1 {
			t.Errorf("older than fresh: computation %d, want the first while a new one is made", n)
		}
		c.wg.Wait()
		if n := get(t, c, "k", now, compute); n != 2 || s.computed != 2 {
			t.Errorf("after the refresh: computation %d (%d made), want the second", n, s.computed)
		}
		now = now.Add(stale + time.Second)
		if n := get(t, c, "k", now, compute); n != 3 {
			t.Errorf("older than stale: computation %d, want one made now", n)
		}
		c.wg.Wait()
	})

	t.Run("bounded", func(t *testing.T) {
		c, now := newMetricsCache(), t0
		s := &source{points: largeMetrics + 1}
		for i := range maxMetricsViews + 10 {
			now = now.Add(time.Millisecond)
			get(t, c, strconv.Itoa(i), now, view(s, &now))
		}
		if len(c.views) != maxMetricsViews || c.views["0"] != nil || c.views[strconv.Itoa(maxMetricsViews+9)] == nil {
			t.Errorf("%d views kept, want the %d most recently used", len(c.views), maxMetricsViews)
		}
	})
}
