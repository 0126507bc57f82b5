package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// ReadModels is the read-model query surface the cache decorates.
type ReadModels interface {
	Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error)
	ListEntities(ctx context.Context, q tracking.EntityQuery) (tracking.EntityPage, error)
	Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error)
	ProjectedVersion(ctx context.Context, name, tenant, id string) (int64, error)
	MetricSamples(ctx context.Context, q tracking.MetricsQuery) ([]tracking.MetricSample, error)
}

// Options tune the read-through cache.
type Options struct {
	TTL    time.Duration // ReadModels.CacheSettings.DefaultTTL
	Logger *slog.Logger
	// Observe, when set, counts lookups: cache "entity" or "timeline",
	// result "hit", "miss" or "error".
	Observe func(cache, result string)
}

// CachedReadModels is a read-through cache of entity and timeline queries.
// Lists and metrics are not cached (their keys span many entities).
type CachedReadModels struct {
	ReadModels
	store Store
	opts  Options
	// downUntil (unix nanoseconds) skips the cache for a while after a
	// failure, so that an outage costs one timeout, not one per request.
	downUntil atomic.Int64
}

// backoff is how long the cache is skipped after a failure.
const backoff = time.Second

func (c *CachedReadModels) available() bool { return time.Now().UnixNano() >= c.downUntil.Load() }

func (c *CachedReadModels) failed() { c.downUntil.Store(time.Now().Add(backoff).UnixNano()) }

// NewReadModels decorates next with a read-through cache on store.
func NewReadModels(next ReadModels, store Store, opts Options) *CachedReadModels {
	if opts.TTL <= 0 {
		opts.TTL = 15 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observe == nil {
		opts.Observe = func(string, string) {}
	}
	return &CachedReadModels{ReadModels: next, store: store, opts: opts}
}

// Group is the cache group of one projection's values about one entity:
// what one projection batch invalidates, and whose floor follows that
// projection's version of the entity. The tenant is part of it, so no tenant
// can ever read another's entry.
func Group(projection, tenant, entityID string) string {
	return projection + "\x00" + tenant + "\x00" + entityID
}

// Invalidate drops the values the projection cached about the entities the
// events are about, and keeps values older than these events from being
// stored after it (see Store). Projections call it after applying events;
// projections without cached values are ignored.
func (c *CachedReadModels) Invalidate(ctx context.Context, projection string, events []eventstore.Recorded) {
	if projection != tracking.ProjectionEntities && projection != tracking.ProjectionTimeline {
		return
	}
	floors := make(map[string]int64, len(events))
	for _, e := range events {
		g := Group(projection, e.Tenant, e.StreamID)
		floors[g] = max(floors[g], e.Version)
	}
	if err := c.store.Invalidate(ctx, floors, floorTTL); err != nil {
		c.failed()
		// Entries expire after the TTL; an outage that loses an
		// invalidation costs staleness bounded by it.
		c.opts.Logger.Warn("cache: invalidation failed", "error", err, "entities", len(floors))
	}
}

// floorTTL is how long a floor is kept: longer than any read-through (a
// request's work is bounded by Server.RequestTimeout, 15 s by default).
const floorTTL = time.Minute

// Forget drops every cached value of one entity (erasure).
func (c *CachedReadModels) Forget(ctx context.Context, tenant, id string) error {
	return c.store.Invalidate(ctx, map[string]int64{
		Group(tracking.ProjectionEntities, tenant, id): ErasedFloor,
		Group(tracking.ProjectionTimeline, tenant, id): ErasedFloor,
	}, floorTTL)
}

// Entity implements ReadModels with a read-through cache.
func (c *CachedReadModels) Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error) {
	var st tracking.EntityState
	if c.get(ctx, "entity", Group(tracking.ProjectionEntities, tenant, id), "entity", &st) {
		return st, nil
	}
	st, err := c.ReadModels.Entity(ctx, tenant, id)
	if err == nil {
		c.set(ctx, Group(tracking.ProjectionEntities, tenant, id), "entity", st, st.Version)
	}
	return st, err
}

// Timeline implements ReadModels with a read-through cache. A cached page
// older than q.MinVersion is a miss. The page's Projected is the timeline
// projection's version of the entity that the page reflects (0: nothing
// projected).
func (c *CachedReadModels) Timeline(ctx context.Context, q tracking.TimelineQuery) (tracking.TimelinePage, error) {
	field := timelineField(q)
	var page tracking.TimelinePage
	if c.get(ctx, "timeline", Group(tracking.ProjectionTimeline, q.Tenant, q.EntityID), field, &page) && page.Projected >= q.MinVersion {
		return page, nil
	}
	// The version is read before the page: the page is at least that fresh.
	projected, err := c.ReadModels.ProjectedVersion(ctx, tracking.ProjectionTimeline, q.Tenant, q.EntityID)
	if err != nil {
		return tracking.TimelinePage{}, err
	}
	page, err = c.ReadModels.Timeline(ctx, q)
	if err != nil {
		return page, err
	}
	page.Projected = projected
	if projected > 0 {
		c.set(ctx, Group(tracking.ProjectionTimeline, q.Tenant, q.EntityID), field, page, projected)
	}
	return page, nil
}

func timelineField(q tracking.TimelineQuery) string {
	// "timeline2": pages carry their version inside (the format of the
	// first "timeline" entries differs; they are never read).
	f := fmt.Sprintf("timeline2|%d|%d|%d", q.Limit, q.From.UnixMicro(), q.To.UnixMicro())
	if q.After != nil {
		f += fmt.Sprintf("|%d|%d", q.After.OccurredAt.UnixMicro(), q.After.Version)
	}
	return f
}

func (c *CachedReadModels) get(ctx context.Context, cache, group, field string, v any) bool {
	if !c.available() {
		c.opts.Observe(cache, "error")
		return false
	}
	b, ok, err := c.store.Get(ctx, group, field)
	switch {
	case err != nil:
		c.failed()
		c.opts.Observe(cache, "error")
		c.opts.Logger.Debug("cache: read failed, reading through", "error", err)
		return false
	case !ok || json.Unmarshal(b, v) != nil:
		c.opts.Observe(cache, "miss")
		return false
	}
	c.opts.Observe(cache, "hit")
	return true
}

func (c *CachedReadModels) set(ctx context.Context, group, field string, v any, version int64) {
	b, err := json.Marshal(v)
	if err != nil || !c.available() {
		return
	}
	if err := c.store.Set(ctx, group, field, b, version, c.opts.TTL); err != nil {
		c.failed()
		c.opts.Logger.Debug("cache: write failed", "error", err)
	}
}
