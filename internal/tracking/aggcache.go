package tracking

import (
	"container/list"
	"sync"
)

// aggregateCache keeps the aggregates of recently written entities between
// commands, so that a command on a warm entity decides against memory and
// appends at the cached version without reading the store first.
//
// It is an optimization only, never a source of truth: every append still
// states the exact version the decision was made at, so a cached aggregate
// that another replica made stale fails its append with a version conflict,
// and Record then reloads from the store. Rejections decided on a cached
// aggregate are likewise re-decided on a fresh load before they are returned.
//
// Entries move in and out by ownership: take removes the entry, so that the
// command holding the entity's turn (Service.writers) works on an aggregate no
// one else sees, and put returns it after a successful append. A command that
// fails for any reason simply does not put it back.
type aggregateCache struct {
	mu    sync.Mutex
	limit int
	order *list.List // of *cachedAggregate, most recently put first
	items map[streamKey]*list.Element
}

type cachedAggregate struct {
	key streamKey
	ent *Entity
}

// newAggregateCache returns a cache of at most limit aggregates; nil (which
// caches nothing) when limit <= 0.
func newAggregateCache(limit int) *aggregateCache {
	if limit <= 0 {
		return nil
	}
	return &aggregateCache{limit: limit, order: list.New(), items: make(map[streamKey]*list.Element)}
}

// take removes and returns the cached aggregate of k, or nil.
func (c *aggregateCache) take(k streamKey) *Entity {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	delete(c.items, k)
	c.order.Remove(el)
	return el.Value.(*cachedAggregate).ent
}

// put caches ent as the aggregate of k, evicting the least recently put
// entries beyond the limit.
func (c *aggregateCache) put(k streamKey, ent *Entity) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*cachedAggregate).ent = ent
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&cachedAggregate{key: k, ent: ent})
	for c.order.Len() > c.limit {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cachedAggregate).key)
	}
}

// drop forgets the aggregate of k.
func (c *aggregateCache) drop(k streamKey) {
	c.take(k)
}

// len returns the number of cached aggregates.
func (c *aggregateCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
