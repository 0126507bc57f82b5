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
		if os.Getenv("CI") == "true" {
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
	m.Set(ctx, "g", "f", []byte("v1"), time.Minute)
	if v, ok, _ := m.Get(ctx, "g", "f"); !ok || string(v) != "v1" {
		t.Fatalf("get = %q, %v; want a hit", v, ok)
	}
	// TTL expiry.
	clk.Add(61 * time.Second)
	if _, ok, _ := m.Get(ctx, "g", "f"); ok {
		t.Fatal("hit after the TTL")
	}
	// Invalidation drops the whole group and nothing else.
	m.Set(ctx, "a", "x", []byte("1"), time.Hour)
	m.Set(ctx, "a", "y", []byte("2"), time.Hour)
	m.Set(ctx, "b", "x", []byte("3"), time.Hour)
	m.Invalidate(ctx, "a")
	_, okAX, _ := m.Get(ctx, "a", "x")
	_, okAY, _ := m.Get(ctx, "a", "y")
	_, okBX, _ := m.Get(ctx, "b", "x")
	if okAX || okAY || !okBX {
		t.Fatalf("after invalidating a: a.x %v a.y %v b.x %v", okAX, okAY, okBX)
	}
	// Size bound: the least recently used entries go first.
	for i := range 50 {
		m.Set(ctx, fmt.Sprintf("s%d", i), "f", make([]byte, 100), time.Hour)
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
	m.Set(ctx, "huge", "f", make([]byte, 5000), time.Hour)
	if _, ok, _ := m.Get(ctx, "huge", "f"); ok {
		t.Fatal("an oversized value was kept")
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := cache.NewRedis(sharedRedis(t), "tt-test-"+uuid.NewString()[:8]+":")
	if _, ok, err := r.Get(ctx, "g", "f"); ok || err != nil {
		t.Fatalf("empty get = %v, %v", ok, err)
	}
	if err := r.Set(ctx, "g", "f", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.Get(ctx, "g", "f"); !ok || err != nil || string(v) != "v" {
		t.Fatalf("get = %q, %v, %v", v, ok, err)
	}
	if err := r.Invalidate(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.Get(ctx, "g", "f"); ok {
		t.Fatal("hit after invalidation")
	}
	// TTL expiry, on Redis' own clock.
	r.Set(ctx, "ttl", "f", []byte("v"), 150*time.Millisecond)
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
				OnApplied: func(_ string, evs []eventstore.Recorded) { cached.Invalidate(ctx, evs) }})
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
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("a read during the outage took %s", d)
				}
			}
		})
	}
}
