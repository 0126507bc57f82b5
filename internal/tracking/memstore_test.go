package tracking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/eventstore/eventstoretest"
)

// memStore is a minimal in-memory eventstore.Store, a test double for the
// domain tests: expected versions, idempotent appends (SameContent), Lookup,
// snapshots. ReadStream deliberately leaves Recorded.EntityType empty, as the
// contract allows, so the service's StreamInfo fallback is exercised.
type memStore struct {
	mu        sync.Mutex
	now       func() time.Time
	log       []eventstore.Recorded // global log, position = index+1
	streams   map[memKey]*memStream
	byID      map[memIDKey]int // index into log
	snapshots map[memKey][]eventstore.Snapshot
	erased    map[int]bool // indexes into log of erased events
}

type memKey struct{ tenant, stream string }
type memIDKey struct {
	tenant string
	id     uuid.UUID
}

type memStream struct {
	info   eventstore.StreamInfo
	events []int // indexes into log, by version-1
}

var _ eventstore.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		now:       func() time.Time { return time.Now().UTC() },
		streams:   map[memKey]*memStream{},
		byID:      map[memIDKey]int{},
		snapshots: map[memKey][]eventstore.Snapshot{},
		erased:    map[int]bool{},
	}
}

func (m *memStore) Append(ctx context.Context, req eventstore.AppendRequest) (eventstore.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	req, err := req.Prepare()
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	// Idempotency first: a complete replay returns the original result.
	var stored []eventstore.Recorded
	for _, e := range req.Events {
		if i, ok := m.byID[memIDKey{req.Tenant, e.ID}]; ok {
			stored = append(stored, m.log[i])
		}
	}
	if len(stored) > 0 {
		return eventstore.ReplayResult(req, stored)
	}

	key := memKey{req.Tenant, req.StreamID}
	s := m.streams[key]
	var info eventstore.StreamInfo
	if s != nil {
		info = s.info
	}
	if _, err := req.Check(info.Version, info.EntityType, info.Incarnation); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("memstore: %w", err)
	}
	now := m.now()
	if s == nil {
		s = &memStream{info: eventstore.StreamInfo{Tenant: req.Tenant, StreamID: req.StreamID, EntityType: req.EntityType,
			Incarnation: eventstore.NewIncarnation(), CreatedAt: now}}
		m.streams[key] = s
	}
	res := eventstore.AppendResult{StreamID: req.StreamID, Incarnation: s.info.Incarnation}
	for _, e := range req.Events {
		s.info.Version++
		pos := int64(len(m.log) + 1)
		m.log = append(m.log, eventstore.Recorded{
			Position: pos, Tenant: req.Tenant, StreamID: req.StreamID, Version: s.info.Version,
			ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: slices.Clone(e.Data),
			Metadata: e.Metadata, OccurredAt: e.OccurredAt, RecordedAt: now,
			Cursor: eventstore.Cursor{Position: pos},
		})
		s.events = append(s.events, len(m.log)-1)
		m.byID[memIDKey{req.Tenant, e.ID}] = len(m.log) - 1
		res.Events = append(res.Events, eventstore.AppendedEvent{ID: e.ID, Version: s.info.Version, Position: pos})
	}
	s.info.UpdatedAt = now
	res.Version = s.info.Version
	return res, nil
}

func (m *memStore) ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]eventstore.Recorded, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[memKey{tenant, streamID}]
	if s == nil {
		return nil, fmt.Errorf("memstore: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	from = max(from, 1)
	var out []eventstore.Recorded
	for v := from; v <= s.info.Version && len(out) < limit; v++ {
		out = append(out, m.log[s.events[v-1]])
	}
	return out, nil
}

func (m *memStore) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []eventstore.Recorded
	for i := after.Position; i < int64(len(m.log)) && len(out) < limit; i++ {
		if m.erased[int(i)] {
			continue
		}
		r := m.log[i]
		if s := m.streams[memKey{r.Tenant, r.StreamID}]; s != nil && !r.Erasure() {
			r.EntityType = s.info.EntityType
		}
		out = append(out, r)
	}
	return out, nil
}

func (m *memStore) Head(ctx context.Context) (eventstore.Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return eventstore.Cursor{Position: int64(len(m.log))}, nil
}

func (m *memStore) Backlog(ctx context.Context, after eventstore.Cursor) (eventstore.Backlog, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b eventstore.Backlog
	for i, r := range m.log {
		if r.Position > after.Position && !m.erased[i] {
			if b.Events == 0 {
				b.Oldest = r.RecordedAt
			}
			b.Events++
		}
	}
	return b, nil
}

func (m *memStore) CursorAt(ctx context.Context, tenant string, position int64) (eventstore.Cursor, error) {
	if err := eventstore.CheckPosition(position); err != nil {
		return eventstore.Cursor{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := position - 1; i >= 0 && i < int64(len(m.log)) && !m.erased[int(i)] && m.log[i].Tenant == tenant {
		return m.log[i].Cursor, nil
	}
	return eventstore.Cursor{}, fmt.Errorf("memstore: position %d: %w", position, eventstore.ErrNotFound)
}

func (m *memStore) CursorBefore(ctx context.Context, t time.Time) (eventstore.Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := eventstore.Cursor{Position: int64(len(m.log))}
	for i, r := range m.log {
		if !m.erased[i] && !r.RecordedAt.Before(t) {
			c.Position = r.Position - 1
			break
		}
	}
	for i, r := range m.log {
		if !m.erased[i] && r.Position <= c.Position {
			return c, nil
		}
	}
	return eventstore.Cursor{}, nil
}

// Erase deletes a stream, its snapshots and its events (which leave the
// global log too), and leaves its erasure marker in the log.
func (m *memStore) Erase(ctx context.Context, tenant, streamID string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey{tenant, streamID}
	s := m.streams[k]
	if s == nil {
		return 0, fmt.Errorf("memstore: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	for _, i := range s.events {
		delete(m.byID, memIDKey{tenant, m.log[i].ID})
		m.erased[i] = true
	}
	// The marker replaces an earlier erasure's, and comes after every event.
	for i, r := range m.log {
		if r.Erasure() && r.Tenant == tenant && r.StreamID == streamID {
			m.erased[i] = true
		}
	}
	n := int64(len(s.events))
	pos := int64(len(m.log) + 1)
	m.log = append(m.log, eventstore.Recorded{Position: pos, Tenant: tenant, StreamID: streamID, ID: uuid.New(),
		Type: eventstore.ErasureType, SchemaVersion: 1, Data: eventstore.ErasureData(n), RecordedAt: m.now(),
		Cursor: eventstore.Cursor{Position: pos}})
	delete(m.streams, k)
	delete(m.snapshots, k)
	return n, nil
}

// Committed is never signalled: the domain tests do not run projections.
func (m *memStore) Committed() <-chan struct{} { return nil }

func (m *memStore) Lookup(ctx context.Context, tenant string, ids []uuid.UUID) ([]eventstore.Recorded, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []eventstore.Recorded
	for _, id := range ids {
		if i, ok := m.byID[memIDKey{tenant, id}]; ok {
			out = append(out, m.log[i])
		}
	}
	return out, nil
}

func (m *memStore) StreamInfo(ctx context.Context, tenant, streamID string) (eventstore.StreamInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[memKey{tenant, streamID}]
	if s == nil {
		return eventstore.StreamInfo{}, fmt.Errorf("memstore: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	return s.info, nil
}

func (m *memStore) SaveSnapshot(ctx context.Context, s eventstore.Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey{s.Tenant, s.StreamID}
	st := m.streams[k]
	if st == nil {
		return nil // as the engines: nothing to snapshot
	}
	if s.Incarnation == 0 {
		s.Incarnation = st.info.Incarnation
	}
	s.State, s.CreatedAt = slices.Clone(s.State), m.now()
	m.snapshots[k] = append(m.snapshots[k], s)
	return nil
}

func (m *memStore) LoadSnapshot(ctx context.Context, tenant, streamID string) (eventstore.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	best, found := m.latestSnapshot(memKey{tenant, streamID})
	if !found {
		return eventstore.Snapshot{}, fmt.Errorf("memstore: snapshot of %q: %w", streamID, eventstore.ErrNotFound)
	}
	return best, nil
}

// latestSnapshot returns the stream's snapshot of the highest version of
// its current incarnation. m.mu must be held.
func (m *memStore) latestSnapshot(k memKey) (eventstore.Snapshot, bool) {
	st := m.streams[k]
	var best eventstore.Snapshot
	found := false
	for _, s := range m.snapshots[k] {
		if st != nil && s.Incarnation == st.info.Incarnation && (!found || s.Version > best.Version) {
			best, found = s, true
		}
	}
	return best, found
}

func (m *memStore) LoadStreams(ctx context.Context, refs []eventstore.StreamRef, limit int) ([]eventstore.Loaded, error) {
	out := make([]eventstore.Loaded, len(refs))
	for i, r := range refs {
		l, err := m.LoadStream(ctx, r.Tenant, r.StreamID, limit)
		if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
			return nil, err
		}
		out[i] = l
	}
	return out, nil
}

func (m *memStore) AppendAll(ctx context.Context, reqs []eventstore.AppendRequest) []eventstore.Outcome {
	out := make([]eventstore.Outcome, len(reqs))
	for i, r := range reqs {
		out[i].Result, out[i].Err = m.Append(ctx, r)
	}
	return out
}

func (m *memStore) LoadStream(ctx context.Context, tenant, streamID string, limit int) (eventstore.Loaded, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Loaded{}, err
	}
	if err := eventstore.CheckLimit(limit); err != nil {
		return eventstore.Loaded{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey{tenant, streamID}
	s := m.streams[k]
	if s == nil {
		return eventstore.Loaded{}, fmt.Errorf("memstore: stream %q: %w", streamID, eventstore.ErrNotFound)
	}
	out := eventstore.Loaded{Incarnation: s.info.Incarnation}
	from := int64(1)
	if snap, ok := m.latestSnapshot(k); ok {
		out.Snapshot, from = &snap, snap.Version+1
	}
	for v := from; v <= s.info.Version && len(out.Events) < limit; v++ {
		out.Events = append(out.Events, m.log[s.events[v-1]])
	}
	return out, nil
}

// snapshotVersions returns the versions of every snapshot saved for a stream.
func (m *memStore) snapshotVersions(tenant, streamID string) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var vs []int64
	for _, s := range m.snapshots[memKey{tenant, streamID}] {
		vs = append(vs, s.Version)
	}
	return vs
}

func (m *memStore) Ping(context.Context) error { return nil }
func (m *memStore) Close() error               { return nil }

// countingStore wraps a Store and counts the events ReadStream returns.
type countingStore struct {
	eventstore.Store
	mu         sync.Mutex
	eventsRead int
	lookups    int
}

func (c *countingStore) ReadStream(ctx context.Context, tenant, streamID string, from int64, limit int) ([]eventstore.Recorded, error) {
	recs, err := c.Store.ReadStream(ctx, tenant, streamID, from, limit)
	c.mu.Lock()
	c.eventsRead += len(recs)
	c.mu.Unlock()
	return recs, err
}

func (c *countingStore) LoadStreams(ctx context.Context, refs []eventstore.StreamRef, limit int) ([]eventstore.Loaded, error) {
	out, err := c.Store.LoadStreams(ctx, refs, limit)
	c.mu.Lock()
	for _, l := range out {
		c.eventsRead += len(l.Events)
	}
	c.mu.Unlock()
	return out, err
}

func (c *countingStore) LoadStream(ctx context.Context, tenant, streamID string, limit int) (eventstore.Loaded, error) {
	l, err := c.Store.LoadStream(ctx, tenant, streamID, limit)
	c.mu.Lock()
	c.eventsRead += len(l.Events)
	c.mu.Unlock()
	return l, err
}

func (c *countingStore) Lookup(ctx context.Context, tenant string, ids []uuid.UUID) ([]eventstore.Recorded, error) {
	c.mu.Lock()
	c.lookups++
	c.mu.Unlock()
	return c.Store.Lookup(ctx, tenant, ids)
}

// reset zeroes the counters and returns their previous values.
func (c *countingStore) reset() (eventsRead, lookups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	eventsRead, lookups = c.eventsRead, c.lookups
	c.eventsRead, c.lookups = 0, 0
	return eventsRead, lookups
}

// The test double keeps the contract: it passes the engines' conformance suite.
func TestMemStoreConformance(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return newMemStore() })
}
