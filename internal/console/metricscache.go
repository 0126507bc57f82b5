package console

import (
	"context"
	"sync"
	"time"
)

// The metrics page reads every metric point of its range: at 100,000
// entities the 30 days' are some 250,000 rows, seconds of work on either
// engine, and its percentiles need every one of them. So a page of many
// points is drawn from its last computation, made in the background once
// that is older than its range's freshness; a page of few points is
// computed again once the projections have moved.

// largeMetrics is the number of points (operations and milestones
// together) above which a metrics page is served from its last
// computation while a new one is made.
const largeMetrics = 2000

// maxMetricsViews bounds the computations kept: a tenant's filter
// combinations and ranges, most recently used first.
const maxMetricsViews = 64

// metricsView is one computation of a metrics page: what it shows, as of
// To.
type metricsView struct {
	data map[string]any // the page's data, read only
	// points are the metric points it read.
	points int
	// at is when it was made; moved is closed once the projections moved
	// past what it read (nil: not known, never current).
	at    time.Time
	moved <-chan struct{}
}

// current reports whether no projection has moved since the view was
// made.
func (v *metricsView) current() bool {
	if v.moved == nil {
		return false
	}
	select {
	case <-v.moved:
		return false
	default:
		return true
	}
}

// metricsCache keeps metrics pages' computations by their query.
type metricsCache struct {
	mu         sync.Mutex
	views      map[string]*metricsView
	used       map[string]time.Time // last served, for eviction
	refreshing map[string]bool
	// wg counts the refreshes under way (tests wait for them).
	wg sync.WaitGroup
}

func newMetricsCache() *metricsCache {
	return &metricsCache{views: map[string]*metricsView{}, used: map[string]time.Time{}, refreshing: map[string]bool{}}
}

// compute makes a view (moved is taken before it reads).
type computeView func(ctx context.Context) (*metricsView, error)

// get returns the view of key. A view of few points is the last
// computation while the projections have not moved since and it is younger
// than fresh, else one made now. A view of more than largeMetrics points is
// the last computation while it is younger than stale; once it is older
// than fresh a new one is made in the background (one per key at a time,
// bounded by timeout) for the visits after.
func (c *metricsCache) get(ctx context.Context, key string, now time.Time, fresh, stale, timeout time.Duration, compute computeView) (*metricsView, error) {
	c.mu.Lock()
	if v := c.views[key]; v != nil {
		age := now.Sub(v.at)
		large := v.points > largeMetrics
		if (large && age < stale) || (age < fresh && v.current()) {
			c.used[key] = now
			if large && age >= fresh && !c.refreshing[key] {
				c.refreshing[key] = true
				c.wg.Add(1)
				go c.refresh(context.WithoutCancel(ctx), key, timeout, compute)
			}
			c.mu.Unlock()
			return v, nil
		}
	}
	c.mu.Unlock()
	v, err := compute(ctx)
	if err != nil {
		return nil, err
	}
	c.put(key, v, now)
	return v, nil
}

func (c *metricsCache) refresh(ctx context.Context, key string, timeout time.Duration, compute computeView) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := compute(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.refreshing, key)
	if err == nil {
		c.putLocked(key, v, c.used[key])
	}
}

func (c *metricsCache) put(key string, v *metricsView, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, v, now)
}

// putLocked keeps v, evicting the least recently used view beyond
// maxMetricsViews.
func (c *metricsCache) putLocked(key string, v *metricsView, used time.Time) {
	c.views[key], c.used[key] = v, used
	if len(c.views) <= maxMetricsViews {
		return
	}
	oldest := key
	for k, t := range c.used {
		if t.Before(c.used[oldest]) {
			oldest = k
		}
	}
	delete(c.views, oldest)
	delete(c.used, oldest)
}
