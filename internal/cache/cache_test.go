package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/tlm/tracktrace/internal/cache"
	"github.com/tlm/tracktrace/internal/cache/redistest"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
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
	for _, name := range tracking.Projections() {
		if err := m.CatchUp(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
}

func loc(at time.Time, lat float64) tracking.NewEvent {
	return tracking.NewEvent{Type: "LocationReported", OccurredAt: at, Data: json.RawMessage(fmt.Sprintf(`{"lat":%v,"lon":1}`, lat))}
}

// The read-through cache on real read models, with Redis and in memory:
// hits, invalidation after a new event, and, with Redis stopped, reads still
// served.
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
			cached := cache.NewReadModels(rm, store, cache.Options{TTL: time.Minute, Observe: func(c, r string) {
				mu.Lock()
				counts[c+"/"+r]++
				mu.Unlock()
			}})
			m := projection.NewManager(es, rm, rm, tracking.Projections(), projection.Options{
				OnApplied: func(name string, evs []eventstore.Recorded) { cached.Invalidate(ctx, name, evs) }})
			svc := tracking.NewService(es, tracking.ServiceOptions{})
			base := time.Now().Add(-time.Hour)
			recordAndProject(t, svc, m, "P-1", loc(base, 10))

			for range 3 {
				st, err := cached.Entity(ctx, "t1", "P-1")
				if err != nil || st.LastLocation.Lat != 10 {
					t.Fatalf("entity = %+v, %v", st, err)
				}
			}
			q := tracking.TimelineQuery{Tenant: "t1", EntityID: "P-1", Limit: 10}
			for range 3 {
				if page, err := cached.Timeline(ctx, q); err != nil || len(page.Entries) != 1 {
					t.Fatalf("timeline = %+v, %v", page, err)
				}
			}
			mu.Lock()
			if counts["entity/hit"] != 2 || counts["entity/miss"] != 1 || counts["timeline/hit"] != 2 {
				t.Fatalf("lookups %v: want 1 miss then hits for each", counts)
			}
			mu.Unlock()
			// Another tenant never sees the entry.
			if _, err := cached.Entity(ctx, "t2", "P-1"); err == nil {
				t.Fatal("tenant t2 read t1's cached entity")
			}
			// A new event invalidates: the next read is fresh.
			recordAndProject(t, svc, m, "P-1", loc(base.Add(time.Minute), 20))
			if st, _ := cached.Entity(ctx, "t1", "P-1"); st.LastLocation.Lat != 20 || st.Version != 2 {
				t.Fatalf("entity after a new event = %+v, want lat 20 at version 2", st)
			}
			if page, _ := cached.Timeline(ctx, q); len(page.Entries) != 2 {
				t.Fatalf("timeline after a new event has %d entries, want 2", len(page.Entries))
			}
			// Cache outage: reads are served from the read models.
			stopRedis()
			recordAndProject(t, svc, m, "P-1", loc(base.Add(2*time.Minute), 30))
			for range 3 {
				start := time.Now()
				st, err := cached.Entity(ctx, "t1", "P-1")
				if err != nil || (backend == "redis" && st.LastLocation.Lat != 30) {
					t.Fatalf("entity during the outage = %+v, %v", st, err)
				}
				// The cache's own timeouts are 250 ms: a read that waits
				// for Redis at all is far slower than this bound.
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("a read during the outage took %s", d)
				}
			}
		})
	}
}
