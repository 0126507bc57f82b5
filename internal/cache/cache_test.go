package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/tlm/tracktrace/internal/cache"
	"github.com/tlm/tracktrace/internal/cache/redistest"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/sqlite"
	"github.com/tlm/tracktrace/internal/tracking"
)

// clock is a controllable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// sharedRedis connects to the machine's Redis (TRACKTRACE_TEST_REDIS or
// 127.0.0.1:6379): under CI=true an unreachable server fails the test.
func sharedRedis(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("TRACKTRACE_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	if err := c.Ping(context.Background()).Err(); err != nil {
		if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
			t.Fatalf("Redis at %s is unreachable under CI: %v", addr, err)
		}
		t.Skipf("skipping: Redis at %s is unreachable (%v)", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	m := cache.NewMemory(1000, clk.Now)

	if _, ok, _ := m.Get(ctx, "g", "f"); ok {
		t.Fatal("hit in an empty cache")
	}
	m.Set(ctx, "g", "f", []byte("v1"), 1, time.Minute)
	if v, ok, _ := m.Get(ctx, "g", "f"); !ok || string(v) != "v1" {
		t.Fatalf("get = %q, %v; want a hit", v, ok)
	}
	// TTL expiry.
	clk.Add(61 * time.Second)
	if _, ok, _ := m.Get(ctx, "g", "f"); ok {
		t.Fatal("hit after the TTL")
	}
	// Invalidation drops the whole group and nothing else.
	m.Set(ctx, "a", "x", []byte("1"), 1, time.Hour)
	m.Set(ctx, "a", "y", []byte("2"), 1, time.Hour)
	m.Set(ctx, "b", "x", []byte("3"), 1, time.Hour)
	m.Invalidate(ctx, map[string]int64{"a": 1}, time.Hour)
	_, okAX, _ := m.Get(ctx, "a", "x")
	_, okAY, _ := m.Get(ctx, "a", "y")
	_, okBX, _ := m.Get(ctx, "b", "x")
	if okAX || okAY || !okBX {
		t.Fatalf("after invalidating a: a.x %v a.y %v b.x %v", okAX, okAY, okBX)
	}
	// Size bound: the least recently used entries go first.
	for i := range 50 {
		m.Set(ctx, fmt.Sprintf("s%d", i), "f", make([]byte, 100), 1, time.Hour)
		if m.Size() > 1000 {
			t.Fatalf("cache holds %d bytes, bound 1000", m.Size())
		}
	}
	if _, ok, _ := m.Get(ctx, "s0", "f"); ok {
		t.Fatal("the oldest entry survived 50 larger inserts")
	}
	if _, ok, _ := m.Get(ctx, "s49", "f"); !ok {
		t.Fatal("the newest entry was evicted")
	}
	// A value larger than the cache is not kept (and evicts nothing).
	m.Set(ctx, "huge", "f", make([]byte, 5000), 1, time.Hour)
	if _, ok, _ := m.Get(ctx, "huge", "f"); ok {
		t.Fatal("an oversized value was kept")
	}
	testFloors(t, cache.NewMemory(10000, clk.Now), func() { clk.Add(2 * time.Hour) })
}

// testFloors checks a Store's version floors: after an invalidation, a value
// older than the invalidated version is not stored (the read that began
// before the change and finishes after it), newer ones are, floors never go
// down, other groups are unaffected, and a floor expires with the TTL.
// expire makes an hour-long TTL pass.
func testFloors(t *testing.T, s cache.Store, expire func()) {
	t.Helper()
	ctx := context.Background()
	has := func(group, field, want string) bool {
		t.Helper()
		v, ok, err := s.Get(ctx, group, field)
		if err != nil {
			t.Fatal(err)
		}
		return ok && string(v) == want
	}
	set := func(group, value string, version int64) {
		t.Helper()
		if err := s.Set(ctx, group, "f", []byte(value), version, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	invalidate := func(floors map[string]int64) {
		t.Helper()
		if err := s.Invalidate(ctx, floors, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	set("fl", "v3", 3)
	set("other", "o1", 1)
	if !has("fl", "f", "v3") {
		t.Fatal("no floor yet: value not stored")
	}
	invalidate(map[string]int64{"fl": 5})
	if has("fl", "f", "v3") {
		t.Fatal("value survived its invalidation")
	}
	set("fl", "v4", 4) // read before the change, stored after its invalidation
	if has("fl", "f", "v4") {
		t.Fatal("a value older than the floor was stored")
	}
	set("fl", "v5", 5)
	if !has("fl", "f", "v5") {
		t.Fatal("a value at the floor was not stored")
	}
	invalidate(map[string]int64{"fl": 7})
	invalidate(map[string]int64{"fl": 6}) // a late, lower invalidation
	set("fl", "v6", 6)
	if has("fl", "f", "v6") {
		t.Fatal("the floor went down")
	}
	set("fl", "v7", 7)
	if !has("fl", "f", "v7") || !has("other", "f", "o1") {
		t.Fatal("a value at the floor, or another group's, is missing")
	}
	invalidate(map[string]int64{"fl": cache.ErasedFloor}) // erasure
	set("fl", "v8", 8)
	if has("fl", "f", "v8") {
		t.Fatal("a value was stored after an erasure")
	}
	invalidate(map[string]int64{"fl": 9}) // the re-created entity's writes
	set("fl", "v9", 9)
	if has("fl", "f", "v9") {
		t.Fatal("a value was stored within the erasure floor's TTL")
	}
	expire()
	set("fl", "v10", 10)
	if !has("fl", "f", "v10") {
		t.Fatal("the floor outlived its TTL")
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := "tt-test-" + uuid.NewString()[:8] + ":"
	r := cache.NewRedis(sharedRedis(t), prefix)
	if _, ok, err := r.Get(ctx, "g", "f"); ok || err != nil {
		t.Fatalf("empty get = %v, %v", ok, err)
	}
	if err := r.Set(ctx, "g", "f", []byte("v"), 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.Get(ctx, "g", "f"); !ok || err != nil || string(v) != "v" {
		t.Fatalf("get = %q, %v, %v", v, ok, err)
	}
	if err := r.Invalidate(ctx, map[string]int64{"g": 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.Get(ctx, "g", "f"); ok {
		t.Fatal("hit after invalidation")
	}
	// TTL expiry, on Redis' own clock.
	r.Set(ctx, "ttl", "f", []byte("v"), 1, 150*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := r.Get(ctx, "ttl", "f"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry outlived its TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Floors, with the hour-long TTL made to pass by expiring the keys.
	testFloors(t, r, func() {
		if err := sharedRedis(t).Del(ctx, prefix+"fl").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// recordAndProject records events and catches the projections up.
func recordAndProject(t *testing.T, svc *tracking.Service, m *projection.Manager, id string, events ...tracking.NewEvent) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.Record(ctx, tracking.RecordCommand{Tenant: "t1", EntityID: id, EntityType: "package",
		Expected: eventstore.Any, Events: events}); err != nil {
		t.Fatal(err)
	}
	for _, name := range tracking.EntityProjections() {
		if err := m.CatchUp(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
}

func loc(at time.Time, lat float64) tracking.NewEvent {
	return tracking.NewEvent{Type: "LocationReported", OccurredAt: at, Data: json.RawMessage(fmt.Sprintf(`{"lat":%v,"lon":1}`, lat))}
}

// slowEntity holds Entity reads after they have read, until released: a
// read that began before a change and finishes after its invalidation.
type slowEntity struct {
	cache.ReadModels
	read, release chan struct{}
}

func (s *slowEntity) Entity(ctx context.Context, tenant, id string) (tracking.EntityState, error) {
	st, err := s.ReadModels.Entity(ctx, tenant, id)
	if s.read != nil {
		s.read <- struct{}{}
		<-s.release
	}
	return st, err
}

// The read-through cache of rendered reads on real read models, with Redis
// and in memory: a hit answers the bytes rendered on the miss without
// rendering again; renderings are kept apart by tenant, variant and query;
// one older than the version asked for is not used; a new event invalidates,
// and a rendering read before it is not stored after it; with Redis stopped,
// reads are still served.
func TestCachedReadModels(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var store cache.Store = cache.NewMemory(1<<20, nil)
			stopRedis := func() {}
			if backend == "redis" {
				addr, stop := redistest.Start(t)
				stopRedis = stop
				store = cache.NewRedis(redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
					ReadTimeout: 200 * time.Millisecond, MaxRetries: -1}), "tt:")
			}
			es, err := sqlite.Open(ctx, "file:"+filepath.Join(t.TempDir(), "c.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { es.Close() })
			rm, err := sqlite.OpenReadModels(ctx, es)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			counts := map[string]int{}
			count := func(k string) int { mu.Lock(); defer mu.Unlock(); return counts[k] }
			slow := &slowEntity{ReadModels: rm}
			cached := cache.NewReadModels(slow, store, cache.Options{TTL: time.Minute, Observe: func(c, r string) {
				mu.Lock()
				counts[c+"/"+r]++
				mu.Unlock()
			}})
			m := projection.NewManager(es, rm, rm, tracking.Projections(), projection.Options{
				OnApplied: func(name string, evs []eventstore.Recorded) { cached.Invalidate(ctx, name, evs) }})
			svc := tracking.NewService(es, tracking.ServiceOptions{})
			base := time.Now().Add(-time.Hour)
			recordAndProject(t, svc, m, "P-1", loc(base, 10))

			renderEntity := func(st tracking.EntityState) ([]byte, error) {
				mu.Lock()
				counts["rendered"]++
				mu.Unlock()
				return json.Marshal(st)
			}
			entity := func(tenant string, minVersion int64) (tracking.EntityState, int64, error) {
				t.Helper()
				b, v, err := cached.RenderedEntity(ctx, tenant, "P-1", "json", minVersion, renderEntity)
				var st tracking.EntityState
				if err == nil {
					if err := json.Unmarshal(b, &st); err != nil {
						t.Fatalf("cached rendering %q: %v", b, err)
					}
				}
				return st, v, err
			}
			var first []byte
			for i := range 3 {
				b, v, err := cached.RenderedEntity(ctx, "t1", "P-1", "json", 0, renderEntity)
				if err != nil || v != 1 {
					t.Fatalf("entity = %s at version %d, %v", b, v, err)
				}
				if i == 0 {
					first = b
				} else if string(b) != string(first) {
					t.Fatalf("a hit answered %s, the miss %s", b, first)
				}
			}
			if count("entity/hit") != 2 || count("entity/miss") != 1 || count("rendered") != 1 {
				t.Fatalf("lookups %v: want 1 miss, then hits that render nothing", counts)
			}
			timeline := func(q tracking.TimelineQuery, variant string) (tracking.TimelinePage, int64) {
				t.Helper()
				b, v, err := cached.RenderedTimeline(ctx, q, variant, func(p tracking.TimelinePage) ([]byte, error) { return json.Marshal(p) })
				if err != nil {
					t.Fatal(err)
				}
				var page tracking.TimelinePage
				if err := json.Unmarshal(b, &page); err != nil {
					t.Fatal(err)
				}
				return page, v
			}
			q := tracking.TimelineQuery{Tenant: "t1", EntityID: "P-1", Limit: 10}
			for range 3 {
				if page, v := timeline(q, "json"); len(page.Entries) != 1 || v != 1 || page.Projected != 1 {
					t.Fatalf("timeline = %+v at version %d", page, v)
				}
			}
			if count("timeline/hit") != 2 {
				t.Fatalf("lookups %v: want 1 miss then hits", counts)
			}
			// Another variant or query is another rendering.
			misses := count("timeline/miss")
			timeline(q, "other")
			timeline(tracking.TimelineQuery{Tenant: "t1", EntityID: "P-1", Limit: 5}, "json")
			if count("timeline/miss") != misses+2 {
				t.Fatalf("lookups %v: another variant or limit hit a cached rendering", counts)
			}
			// Another tenant never sees the entry.
			if _, _, err := entity("t2", 0); !errors.Is(err, tracking.ErrNotFound) {
				t.Fatalf("tenant t2 read t1's entity: %v", err)
			}
			if page, v := timeline(tracking.TimelineQuery{Tenant: "t2", EntityID: "P-1", Limit: 10}, "json"); v != 0 || len(page.Entries) != 0 {
				t.Fatalf("tenant t2 read t1's timeline: %+v at version %d", page, v)
			}
			// A rendering older than the version asked for is a miss.
			misses = count("entity/miss")
			if _, v, err := entity("t1", 2); err != nil || v != 1 || count("entity/miss") != misses+1 {
				t.Fatalf("entity read with minVersion 2: version %d, %v, lookups %v", v, err, counts)
			}

			// A read that began before the next event and ends after its
			// invalidation answers what it read, but its rendering (of
			// version 1) is not stored: the next read renders version 2.
			slow.read, slow.release = make(chan struct{}), make(chan struct{})
			done := make(chan int64)
			go func() {
				_, v, _ := cached.RenderedEntity(ctx, "t1", "P-1", "race", 0, renderEntity)
				done <- v
			}()
			<-slow.read
			recordAndProject(t, svc, m, "P-1", loc(base.Add(time.Minute), 20))
			close(slow.release)
			if v := <-done; v != 1 {
				t.Fatalf("the held read answered version %d, want the 1 it read", v)
			}
			slow.read = nil
			for _, variant := range []string{"race", "json"} {
				b, v, err := cached.RenderedEntity(ctx, "t1", "P-1", variant, 0, renderEntity)
				if err != nil || v != 2 || !strings.Contains(string(b), `"lat":20`) {
					t.Fatalf("%s entity after a new event = %s at version %d, %v; want lat 20 at version 2", variant, b, v, err)
				}
			}
			if page, v := timeline(q, "json"); len(page.Entries) != 2 || v != 2 {
				t.Fatalf("timeline after a new event has %d entries at version %d, want 2 at 2", len(page.Entries), v)
			}
			// Cache outage: reads are served from the read models.
			stopRedis()
			recordAndProject(t, svc, m, "P-1", loc(base.Add(2*time.Minute), 30))
			for range 3 {
				start := time.Now()
				st, v, err := entity("t1", 0)
				if err != nil || (backend == "redis" && (st.LastLocation.Lat != 30 || v != 3)) {
					t.Fatalf("entity during the outage = %+v at version %d, %v", st, v, err)
				}
				if page, v := timeline(q, "json"); backend == "redis" && (len(page.Entries) != 3 || v != 3) {
					t.Fatalf("timeline during the outage has %d entries at version %d, want 3 at 3", len(page.Entries), v)
				}
				// The cache's own timeouts are 200 ms: a read that waits
				// for Redis at all is far slower than this bound.
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("a read during the outage took %s", d)
				}
			}
		})
	}
}

// versioned is read models whose entities are all at one version.
type versioned struct {
	cache.ReadModels
	version atomic.Int64
}

func (v *versioned) Entity(_ context.Context, _, id string) (tracking.EntityState, error) {
	return tracking.EntityState{EntityID: id, Version: v.version.Load()}, nil
}

// What another replica's projections changed (as the read models announce
// it) drops this replica's cached renderings of those entities, and only
// those; an erasure keeps older renderings out; a report of "anything may
// have changed" empties an in-process cache.
func TestChangedByAnotherReplica(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rm := &versioned{}
	rm.version.Store(1)
	cached := cache.NewReadModels(rm, cache.NewMemory(1<<20, nil), cache.Options{})
	render := func(st tracking.EntityState) ([]byte, error) { return json.Marshal(st.Version) }
	version := func(id string) string {
		t.Helper()
		b, _, err := cached.RenderedEntity(ctx, "t1", id, "v", 0, render)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, id := range []string{"A", "B", "C"} {
		version(id)
	}
	rm.version.Store(2) // another replica applied version 2 of every entity
	if got := version("A"); got != "1" {
		t.Fatalf("A = %s before any announcement: want the cached 1 (the test would prove nothing)", got)
	}
	cached.Changed(ctx, []readmodel.StreamPosition{
		{Projection: tracking.ProjectionEntities, Key: readmodel.Key{Tenant: "t1", EntityID: "A"}, Version: 2},
		{Projection: tracking.ProjectionMetrics, Key: readmodel.Key{Tenant: "t1", EntityID: "B"}, Version: 2},
	}, false)
	if a, b := version("A"), version("B"); a != "2" || b != "1" {
		t.Errorf("after A's change: A = %s, B = %s; want 2 and the cached 1 (metrics are not cached)", a, b)
	}
	cached.Changed(ctx, []readmodel.StreamPosition{{Key: readmodel.Key{Tenant: "t1", EntityID: "B"}, Version: readmodel.Erased}}, false)
	rm.version.Store(3)
	if b := version("B"); b != "3" {
		t.Errorf("after B's erasure B = %s, want 3 read through", b)
	}
	cached.Changed(ctx, nil, true)
	if c := version("C"); c != "3" {
		t.Errorf("after a purge C = %s, want 3", c)
	}
}

// TestMemoryFootprint: the in-process cache's bound is on the memory it
// really takes, whether it fills with rendered values or with the floors
// that a stream of writes to many entities leaves behind (before its
// bookkeeping was counted, 64 MiB of floors took 340 MiB of heap). Not
// parallel: it reads the heap.
func TestMemoryFootprint(t *testing.T) {
	const bound = 8 << 20
	for _, kind := range []string{"floors", "values"} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := cache.NewMemory(bound, nil)
		for i := range 200_000 {
			g := "default\x00PKG-" + strconv.Itoa(i)
			if kind == "floors" {
				m.Invalidate(t.Context(), map[string]int64{g: int64(i)}, time.Hour)
			} else {
				m.Set(t.Context(), g, "entity", make([]byte, 300), 1, time.Hour)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: %d bytes held by the count, %d of heap", kind, m.Size(), grown)
		if m.Size() > bound || grown > bound*5/4 {
			t.Errorf("%s: the cache counts %d bytes and takes %d of heap; bound %d", kind, m.Size(), grown, bound)
		}
		runtime.KeepAlive(m)
	}
}
