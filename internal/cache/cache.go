// Package cache is the read-through cache of entity and timeline queries:
// Redis when configured, else an in-process cache bounded in bytes. Keys are
// grouped by (tenant, entity) so that a projection invalidates everything it
// changed with one call; a cache outage degrades to no cache.
package cache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Store is a cache backend. Values of one group are invalidated together.
type Store interface {
	// Get returns the value of field in group, and whether it was there.
	Get(ctx context.Context, group, field string) ([]byte, bool, error)
	// Set stores a value of field in group for ttl.
	Set(ctx context.Context, group, field string, value []byte, ttl time.Duration) error
	// Invalidate drops whole groups.
	Invalidate(ctx context.Context, groups ...string) error
}

// Memory is an in-process Store: LRU, bounded by the bytes it holds (keys and
// values), with per-entry expiry. Safe for concurrent use.
type Memory struct {
	max int64
	now func() time.Time

	mu     sync.Mutex
	size   int64
	lru    *list.List // front = most recently used; elements are *entry
	groups map[string]map[string]*list.Element
}

type entry struct {
	group, field string
	value        []byte
	expires      time.Time
}

func (e *entry) bytes() int64 { return int64(len(e.group) + len(e.field) + len(e.value) + 64) }

// NewMemory returns an in-process cache holding at most maxBytes. now may be
// nil (time.Now); tests pass a controllable clock.
func NewMemory(maxBytes int64, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{max: maxBytes, now: now, lru: list.New(), groups: map[string]map[string]*list.Element{}}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, group, field string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.groups[group][field]
	if !ok {
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
func (m *Memory) Set(_ context.Context, group, field string, value []byte, ttl time.Duration) error {
	e := &entry{group: group, field: field, value: value, expires: m.now().Add(ttl)}
	if e.bytes() > m.max {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.groups[group][field]; ok {
		m.remove(el)
	}
	g := m.groups[group]
	if g == nil {
		g = map[string]*list.Element{}
		m.groups[group] = g
	}
	g[field] = m.lru.PushFront(e)
	m.size += e.bytes()
	for m.size > m.max {
		m.remove(m.lru.Back())
	}
	return nil
}

// Invalidate implements Store.
func (m *Memory) Invalidate(_ context.Context, groups ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range groups {
		for _, el := range m.groups[g] {
			m.remove(el)
		}
	}
	return nil
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
	if g := m.groups[e.group]; g != nil {
		delete(g, e.field)
		if len(g) == 0 {
			delete(m.groups, e.group)
		}
	}
}
