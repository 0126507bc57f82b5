package cache

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/readmodel"
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

// CachedReadModels is a read-through cache of rendered entity and timeline
// reads (RenderedEntity, RenderedTimeline): what it keeps is the bytes a
// read answers, so that a hit is written as is. Its ReadModels methods are
// the read models' own, uncached; lists and metrics are not cached (their
// keys span many entities).
type CachedReadModels struct {
	ReadModels
	store Store
	opts  Options
	// downUntil (unix nanoseconds) skips the cache for a while after a
	// failure, so that an outage costs one timeout, not one per request.
	downUntil atomic.Int64
	// entitiesGen and timelineGen are the generations of the entities and
	// timeline read models (SetGeneration): part of every key, so that a
	// rebuild switched in leaves every value of the old one behind.
	entitiesGen, timelineGen atomic.Int64
}

// SetGeneration tells the cache that a projection's read models are of
// generation gen (projection.Options.OnSwitched): values cached from
// another generation are not served (they expire unread).
func (c *CachedReadModels) SetGeneration(projection string, gen int64) {
	switch projection {
	case tracking.ProjectionEntities:
		c.entitiesGen.Store(gen)
	case tracking.ProjectionTimeline:
		c.timelineGen.Store(gen)
	}
}

// group is Group of the projection's current generation.
func (c *CachedReadModels) group(projection, tenant, entityID string) string {
	var gen int64
	switch projection {
	case tracking.ProjectionEntities:
		gen = c.entitiesGen.Load()
	case tracking.ProjectionTimeline:
		gen = c.timelineGen.Load()
	}
	g := Group(projection, tenant, entityID)
	if gen == 0 {
		return g
	}
	return g + "\x00" + strconv.FormatInt(gen, 10)
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
		g := c.group(projection, e.Tenant, e.StreamID)
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

// Changed drops the values cached about entities whose read models
// changed, as a readmodel.Watcher reports them (the projections of another
// replica applied events, or erased an entity); all drops every value, of
// a store that can (Memory). It is what keeps an in-process cache current
// on a replica that does not run the projections; a shared store (Redis) is
// invalidated by the replica that does.
func (c *CachedReadModels) Changed(ctx context.Context, positions []readmodel.StreamPosition, all bool) {
	if all {
		if p, ok := c.store.(interface{ Purge() }); ok {
			p.Purge()
		}
		return
	}
	floors := make(map[string]int64, len(positions))
	for _, p := range positions {
		switch {
		case p.Version == readmodel.Erased:
			floors[c.group(tracking.ProjectionEntities, p.Tenant, p.EntityID)] = ErasedFloor
			floors[c.group(tracking.ProjectionTimeline, p.Tenant, p.EntityID)] = ErasedFloor
		case p.Projection == tracking.ProjectionEntities || p.Projection == tracking.ProjectionTimeline:
			g := c.group(p.Projection, p.Tenant, p.EntityID)
			floors[g] = max(floors[g], p.Version)
		}
	}
	if len(floors) == 0 {
		return
	}
	if err := c.store.Invalidate(ctx, floors, floorTTL); err != nil {
		c.failed()
		c.opts.Logger.Warn("cache: invalidation failed", "error", err, "entities", len(floors))
	}
}

// Forget drops every cached value of one entity (erasure).
func (c *CachedReadModels) Forget(ctx context.Context, tenant, id string) error {
	return c.store.Invalidate(ctx, map[string]int64{
		c.group(tracking.ProjectionEntities, tenant, id): ErasedFloor,
		c.group(tracking.ProjectionTimeline, tenant, id): ErasedFloor,
	}, floorTTL)
}

// RenderedEntity returns the entity as render renders it (the bytes an API
// answers, say) and the version of the entity they reflect: from the cache
// when it holds a rendering of at least minVersion, else read from the read
// models (their errors, ErrNotFound among them, as they return them),
// rendered and cached. variant names the rendering (its format): renderings of
// different variants are kept apart. A hit costs one cache lookup: no
// decoding, no rendering.
func (c *CachedReadModels) RenderedEntity(ctx context.Context, tenant, id, variant string, minVersion int64,
	render func(tracking.EntityState) ([]byte, error)) ([]byte, int64, error) {
	group, field := c.group(tracking.ProjectionEntities, tenant, id), "rendered|"+variant
	if b, v, ok := c.get(ctx, "entity", group, field, minVersion); ok {
		return b, v, nil
	}
	st, err := c.ReadModels.Entity(ctx, tenant, id)
	if err != nil {
		return nil, 0, err
	}
	b, err := render(st)
	if err != nil {
		return nil, 0, err
	}
	c.set(ctx, group, field, b, st.Version)
	return b, st.Version, nil
}

// RenderedTimeline returns the page q selects as render renders it, and the
// version of the entity the timeline projection had applied when the page was
// read (0: none): from the cache when it holds a rendering of the same query
// and variant that reflects at least q.MinVersion, else read from the read
// models, rendered and cached. render is given the page with its Projected
// set. variant names what else the rendering depends on (its format, the
// query's spelling): renderings of different variants are kept apart.
func (c *CachedReadModels) RenderedTimeline(ctx context.Context, q tracking.TimelineQuery, variant string,
	render func(tracking.TimelinePage) ([]byte, error)) ([]byte, int64, error) {
	group, field := c.group(tracking.ProjectionTimeline, q.Tenant, q.EntityID), timelineField(q, variant)
	if b, v, ok := c.get(ctx, "timeline", group, field, q.MinVersion); ok {
		return b, v, nil
	}
	// The version is read before the page: the page is at least that fresh.
	projected, err := c.ReadModels.ProjectedVersion(ctx, tracking.ProjectionTimeline, q.Tenant, q.EntityID)
	if err != nil {
		return nil, 0, err
	}
	page, err := c.ReadModels.Timeline(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	page.Projected = projected
	b, err := render(page)
	if err != nil {
		return nil, 0, err
	}
	if projected > 0 {
		c.set(ctx, group, field, b, projected)
	}
	return b, projected, nil
}

// timelineField is the cache field of a rendered page: the variant (first,
// with its length, so that no variant can pass for another's query), then
// the query.
func timelineField(q tracking.TimelineQuery, variant string) string {
	b := make([]byte, 0, 64+len(variant))
	b = append(b, "rendered|"...)
	b = strconv.AppendInt(b, int64(len(variant)), 10)
	b = append(b, ':')
	b = append(b, variant...)
	for _, n := range []int64{int64(q.Limit), q.From.UnixMicro(), q.To.UnixMicro()} {
		b = strconv.AppendInt(append(b, '|'), n, 10)
	}
	if q.After != nil {
		b = strconv.AppendInt(append(b, '|'), q.After.OccurredAt.UnixMicro(), 10)
		b = strconv.AppendInt(append(b, '|'), q.After.Version, 10)
	}
	return string(b)
}

// versionSize is the length of the version that heads every cached value.
const versionSize = 8

// get returns a cached rendering and the version it reflects, if the cache
// holds one of at least minVersion.
func (c *CachedReadModels) get(ctx context.Context, cache, group, field string, minVersion int64) ([]byte, int64, bool) {
	if !c.available() {
		c.opts.Observe(cache, "error")
		return nil, 0, false
	}
	b, ok, err := c.store.Get(ctx, group, field)
	if err != nil {
		c.failed()
		c.opts.Observe(cache, "error")
		c.opts.Logger.Debug("cache: read failed, reading through", "error", err)
		return nil, 0, false
	}
	if !ok || len(b) < versionSize {
		c.opts.Observe(cache, "miss")
		return nil, 0, false
	}
	v := int64(binary.BigEndian.Uint64(b))
	if v < minVersion {
		c.opts.Observe(cache, "miss")
		return nil, 0, false
	}
	c.opts.Observe(cache, "hit")
	return b[versionSize:], v, true
}

// set caches a rendering of the given version of the entity, headed by that
// version.
func (c *CachedReadModels) set(ctx context.Context, group, field string, rendered []byte, version int64) {
	if !c.available() {
		return
	}
	b := make([]byte, versionSize, versionSize+len(rendered))
	binary.BigEndian.PutUint64(b, uint64(version))
	b = append(b, rendered...)
	if err := c.store.Set(ctx, group, field, b, version, c.opts.TTL); err != nil {
		c.failed()
		c.opts.Logger.Debug("cache: write failed", "error", err)
	}
}
