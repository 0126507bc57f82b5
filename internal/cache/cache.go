// Package cache is the read-through cache of entity and timeline reads, kept
// as rendered (the bytes the API answers): Redis when configured, else an
// in-process cache bounded in bytes. Keys are
// grouped by (tenant, entity) so that a projection invalidates everything it
// changed with one call; a cache outage degrades to no cache.
package cache

import (
	"container/list"
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// Store is a cache backend. Values of one group are invalidated together.
//
// Each value is stored with the entity version it reflects, and each
// invalidation leaves a floor behind: the highest version invalidated. A value
// below its group's floor is not stored. That closes the race of every
// read-through cache, where a read that began before a change stores its older
// value after the change's invalidation (to be served until it expires).
type Store interface {
	// Get returns the value of field in group, and whether it was there.
	Get(ctx context.Context, group, field string) ([]byte, bool, error)
	// Set stores a value of field in group for ttl, unless the group's
	// floor is above version.
	Set(ctx context.Context, group, field string, value []byte, version int64, ttl time.Duration) error
	// Invalidate drops whole groups and raises each one's floor to the
	// version given (a floor never goes down), keeping it for floorTTL. An
	// erasure floor (ErasedFloor) is kept as it is, and runs out its own TTL.
	Invalidate(ctx context.Context, floors map[string]int64, floorTTL time.Duration) error
}

// ErasedFloor is the floor an erasure leaves: above any version, so that
// nothing read before the erasure is stored after it. 2^53, which Redis' Lua
// numbers hold exactly.
const ErasedFloor = 1 << 53

// floorField is the field that holds a group's floor; no value field starts
// with a NUL byte.
const floorField = "\x00floor"

// Memory is an in-process Store: LRU, bounded by the bytes it holds (keys,
// values and its own bookkeeping), with per-entry expiry. Safe for
// concurrent use.
type Memory struct {
	max int64
	now func() time.Time

	mu     sync.Mutex
	size   int64
	lru    *list.List // front = most recently used; elements are *entry
	groups map[string]*group
}

// group holds the entries of one group, each an element of the LRU: its
// values and its floor. A group has a few entries (one entity's reads), so
// they are a slice rather than a map.
type group struct{ els []*list.Element }

func (g *group) find(field string) (int, *list.Element) {
	for i, el := range g.els {
		if el.Value.(*entry).field == field {
			return i, el
		}
	}
	return -1, nil
}

type entry struct {
	group, field string
	value        []byte // of a value
	floor        int64  // of a floor (field floorField)
	expires      time.Time
}

// The bookkeeping an entry costs besides its strings and value (the entry,
// its list element, its slot in its group), and a group's own (its map
// slot and slice), as measured by TestMemoryFootprint: the bound is on
// what the cache really holds, whether it is full of values or of the
// floors a stream of writes leaves behind.
const (
	entryOverhead = 160
	groupOverhead = 112
)

func (e *entry) bytes() int64 { return int64(len(e.group)+len(e.field)+len(e.value)) + entryOverhead }

// NewMemory returns an in-process cache holding at most maxBytes. now may be
// nil (time.Now); tests pass a controllable clock.
func NewMemory(maxBytes int64, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{max: maxBytes, now: now, lru: list.New(), groups: map[string]*group{}}
}

// lookup returns the element of field in group, or nil.
func (m *Memory) lookup(group, field string) *list.Element {
	g := m.groups[group]
	if g == nil {
		return nil
	}
	_, el := g.find(field)
	return el
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, group, field string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el := m.lookup(group, field)
	if el == nil {
		return nil, false, nil
	}
	e := el.Value.(*entry)
	if !m.now().Before(e.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.lru.MoveToFront(el)
	return e.value, true, nil
}

// Set implements Store. A value larger than the whole cache is not kept.
func (m *Memory) Set(_ context.Context, group, field string, value []byte, version int64, ttl time.Duration) error {
	e := &entry{group: group, field: field, value: value, expires: m.now().Add(ttl)}
	if e.bytes()+groupOverhead > m.max {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if version < m.floor(group) {
		return nil
	}
	m.put(e)
	return nil
}

// Invalidate implements Store.
func (m *Memory) Invalidate(_ context.Context, floors map[string]int64, floorTTL time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, v := range floors {
		old := m.floor(name)
		if g := m.groups[name]; g != nil {
			// From the end: a removal moves only the entries after it.
			for i := len(g.els) - 1; i >= 0; i-- {
				if el := g.els[i]; el.Value.(*entry).field != floorField {
					m.remove(el)
				}
			}
		}
		if old >= ErasedFloor {
			continue
		}
		m.put(&entry{group: name, field: floorField, floor: max(v, old), expires: m.now().Add(floorTTL)})
	}
	return nil
}

// floor returns the group's unexpired floor, or the lowest version.
func (m *Memory) floor(group string) int64 {
	el := m.lookup(group, floorField)
	if el == nil {
		return math.MinInt64
	}
	e := el.Value.(*entry)
	if !m.now().Before(e.expires) {
		m.remove(el)
		return math.MinInt64
	}
	return e.floor
}

// put adds an entry (replacing the group's field), evicting the least
// recently used beyond the size bound.
func (m *Memory) put(e *entry) {
	if el := m.lookup(e.group, e.field); el != nil {
		m.remove(el)
	}
	g := m.groups[e.group]
	if g == nil {
		g = &group{}
		m.groups[e.group] = g
		m.size += groupOverhead
	}
	g.els = append(g.els, m.lru.PushFront(e))
	m.size += e.bytes()
	for m.size > m.max {
		m.remove(m.lru.Back())
	}
}

// Purge drops every value and floor.
func (m *Memory) Purge() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Init()
	m.groups = map[string]*group{}
	m.size = 0
}

// Size returns the bytes held.
func (m *Memory) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

func (m *Memory) remove(el *list.Element) {
	e := m.lru.Remove(el).(*entry)
	m.size -= e.bytes()
	g := m.groups[e.group]
	if g == nil {
		return
	}
	if i, _ := g.find(e.field); i >= 0 {
		g.els = slices.Delete(g.els, i, i+1)
	}
	if len(g.els) == 0 {
		delete(m.groups, e.group)
		m.size -= groupOverhead
	}
}
