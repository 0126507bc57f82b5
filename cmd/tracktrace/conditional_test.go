package main

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// sharedRedis returns the address of the machine's Redis
// (TRACKTRACE_TEST_REDIS or 127.0.0.1:6379): under CI=true an unreachable
// server fails the test, elsewhere it is skipped. Tests that use it keep to
// tenants of their own: every cache key holds the tenant.
func sharedRedis(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("TRACKTRACE_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
			t.Fatalf("Redis at %s is unreachable under CI: %v", addr, err)
		}
		t.Skipf("skipping: Redis at %s is unreachable (%v)", addr, err)
	}
	return addr
}

// TestConditionalReads: the entity and the timeline answer an ETag, and
// If-None-Match with it answers 304 without a body, for GET and HEAD, until
// a new event is projected; then 200 with a new ETag. A cached answer is the
// fresh one byte for byte (the first read's, another replica's, the event
// store's), each query has its own ETag and a nextCursor sealed for it, and
// another tenant never gets these bytes. On both engines, with the
// in-process cache and with Redis; every answer matches the OpenAPI document.
func TestConditionalReads(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	for _, eng := range engines {
		for _, store := range []string{"memory", "redis"} {
			t.Run(eng.name+"/"+store, func(t *testing.T) {
				t.Parallel()
				env := eng.env(t)
				if store == "redis" {
					env = append(env, "ConnectionStrings__Redis="+sharedRedis(t))
				}
				a := startServer(t, env)
				suffix := uuid.NewString()[:8]
				acme, beta := []string{"X-Tenant-ID", "acme-" + suffix}, []string{"X-Tenant-ID", "beta-" + suffix}
				record := func(tenant []string, id string, events ...any) {
					t.Helper()
					r := a.do(t, "POST", "/api/v1/entities/"+id+"/events", map[string]any{"entityType": "shipment", "events": events}, tenant...)
					if r.StatusCode != 201 {
						t.Fatalf("record %s: %d %s", id, r.StatusCode, r.Body)
					}
				}
				record(acme, "CND-1", ev("EntityRegistered", 0, `{"reference":"acme-ref"}`),
					ev("MilestoneReached", time.Minute, `{"milestone":"picked_up"}`),
					ev("LocationReported", 2*time.Minute, `{"lat":52.1,"lon":4.3}`))
				record(acme, "CND-ACME-ONLY", ev("EntityRegistered", 0, `{}`))
				// Beta's CND-1 is another entity at the same version.
				record(beta, "CND-1", ev("EntityRegistered", 0, `{"reference":"beta-ref"}`),
					ev("MilestoneReached", time.Minute, `{"milestone":"picked_up"}`),
					ev("LocationReported", 2*time.Minute, `{"lat":1,"lon":2}`))

				get := func(srv *server, method, path string, headers ...string) response {
					t.Helper()
					r := srv.do(t, method, path, nil, headers...)
					if method == "GET" && r.StatusCode != 404 {
						validate(t, r)
					}
					return r
				}
				entity, timeline := "/api/v1/entities/CND-1", "/api/v1/entities/CND-1/timeline"
				hits := func() float64 {
					return sum(scrape(t, a), "tracktrace_cache_requests_total", `result="hit"`)
				}

				// A cached answer is the fresh one byte for byte, and every
				// source of the entity renders it alike. The first read waits
				// for the projections; it is the cache's miss.
				for _, path := range []string{entity, timeline} {
					fresh := get(a, "GET", path+"?minVersion=3", acme...)
					// The projection's invalidation follows its commit, which
					// the first read may have seen first: then the value it
					// cached goes, and the next read caches it again.
					var cached response
					hit := false
					for range 3 {
						before := hits()
						cached = get(a, "GET", path, acme...)
						if hit = hits() > before; hit {
							break
						}
					}
					if !hit {
						t.Errorf("%s: three reads after the first, none a cache hit", path)
					}
					if fresh.StatusCode != 200 || cached.StatusCode != 200 || string(cached.Body) != string(fresh.Body) ||
						cached.Header.Get("ETag") != fresh.Header.Get("ETag") || fresh.Header.Get("ETag") == "" {
						t.Fatalf("%s: fresh %d %s (ETag %s), cached %d %s (ETag %s)", path, fresh.StatusCode, fresh.Body,
							fresh.Header.Get("ETag"), cached.StatusCode, cached.Body, cached.Header.Get("ETag"))
					}
					if !strings.Contains(string(cached.Body), "acme-ref") && path == entity {
						t.Errorf("acme's entity lacks its reference: %s", cached.Body)
					}
					if store == "memory" {
						// Another replica on the same database, its cache cold.
						b := startServer(t, env)
						if r := get(b, "GET", path, acme...); string(r.Body) != string(cached.Body) || r.Header.Get("ETag") != cached.Header.Get("ETag") {
							t.Errorf("%s: another replica answered %s (ETag %s), want the cached %s (ETag %s)",
								path, r.Body, r.Header.Get("ETag"), cached.Body, cached.Header.Get("ETag"))
						}
						b.stop()
					}
				}
				if r := get(a, "GET", entity+"?consistent=true", acme...); r.Header.Get("ETag") != `"3"` {
					t.Errorf("the event store's entity: ETag %s, want \"3\"", r.Header.Get("ETag"))
				} else if cached := get(a, "GET", entity, acme...); string(r.Body) != string(cached.Body) {
					t.Errorf("the event store's entity %s differs from the cached %s", r.Body, cached.Body)
				}

				// Revalidation: 304 with the ETag and no body, for GET and
				// HEAD; HEAD without it answers the GET's headers.
				for _, path := range []string{entity, timeline, entity + "?minVersion=3", timeline + "?minVersion=3"} {
					full := get(a, "GET", path, acme...)
					tag := full.Header.Get("ETag")
					for _, inm := range []string{tag, `"nope", ` + tag, "W/" + tag, "*"} {
						for _, method := range []string{"GET", "HEAD"} {
							r := get(a, method, path, append([]string{"If-None-Match", inm}, acme...)...)
							if r.StatusCode != 304 || len(r.Body) != 0 || r.Header.Get("ETag") != tag {
								t.Errorf("%s %s If-None-Match %s: %d %q ETag %s, want 304 without a body, ETag %s",
									method, path, inm, r.StatusCode, r.Body, r.Header.Get("ETag"), tag)
							}
						}
					}
					head := get(a, "HEAD", path, acme...)
					if head.StatusCode != 200 || len(head.Body) != 0 || head.Header.Get("ETag") != tag ||
						head.ContentLength != int64(len(full.Body)) || head.Header.Get("Content-Type") != "application/json" {
						t.Errorf("HEAD %s: %d, %d bytes, ETag %s, Content-Length %d, Content-Type %s; want the GET's: ETag %s, %d bytes",
							path, head.StatusCode, len(head.Body), head.Header.Get("ETag"), head.ContentLength,
							head.Header.Get("Content-Type"), tag, len(full.Body))
					}
					if r := get(a, "GET", path, append([]string{"If-None-Match", `"other"`}, acme...)...); r.StatusCode != 200 || string(r.Body) != string(full.Body) {
						t.Errorf("GET %s with another ETag: %d %s", path, r.StatusCode, r.Body)
					}
				}

				// Each query is its own representation: its own ETag, and a
				// nextCursor sealed for it, also when two spell one instant
				// differently (the cursor binds from as given).
				tags := map[string]string{}
				from := t0.Format(time.RFC3339)
				fromOffset := t0.In(time.FixedZone("", 3600)).Format(time.RFC3339)
				for _, query := range []string{"", "?limit=1", "?limit=2", "?from=" + url.QueryEscape(from) + "&limit=1",
					"?from=" + url.QueryEscape(fromOffset) + "&limit=1", "?to=" + url.QueryEscape(at(time.Minute))} {
					fresh, r := get(a, "GET", timeline+query, acme...), get(a, "GET", timeline+query, acme...)
					if r.StatusCode != 200 || string(r.Body) != string(fresh.Body) {
						t.Fatalf("timeline%s: %d %s, then %d %s", query, fresh.StatusCode, fresh.Body, r.StatusCode, r.Body)
					}
					tag := r.Header.Get("ETag")
					if other, seen := tags[tag]; seen {
						t.Errorf("timeline%s and timeline%s share the ETag %s", query, other, tag)
					}
					tags[tag] = query
					var page struct{ NextCursor string }
					if r.JSON(t, &page); page.NextCursor != "" {
						sep := "&"
						if query == "" {
							sep = "?"
						}
						next := get(a, "GET", timeline+query+sep+"cursor="+page.NextCursor, acme...)
						if next.StatusCode != 200 {
							t.Fatalf("timeline%s, next page with the cached answer's cursor: %d %s", query, next.StatusCode, next.Body)
						}
						ntag := next.Header.Get("ETag")
						if other, seen := tags[ntag]; seen {
							t.Errorf("timeline%s's next page shares the ETag %s of timeline%s", query, ntag, other)
						}
						tags[ntag] = query + " next"
						if r := get(a, "GET", timeline+query+sep+"cursor="+page.NextCursor, append([]string{"If-None-Match", ntag}, acme...)...); r.StatusCode != 304 {
							t.Errorf("timeline%s, next page revalidated: %d", query, r.StatusCode)
						}
					}
					if r := get(a, "GET", timeline+query, append([]string{"If-None-Match", tag}, acme...)...); r.StatusCode != 304 {
						t.Errorf("timeline%s revalidated: %d", query, r.StatusCode)
					}
				}

				// Tenants: beta's CND-1 is its own, whatever acme cached;
				// acme's other entity is unknown to beta.
				acmeTimeline := get(a, "GET", timeline, acme...)
				get(a, "GET", timeline+"?minVersion=3", beta...)
				for range 2 {
					r := get(a, "GET", entity, beta...)
					if r.StatusCode != 200 || !strings.Contains(string(r.Body), "beta-ref") || strings.Contains(string(r.Body), "acme-ref") {
						t.Fatalf("beta's entity: %d %s", r.StatusCode, r.Body)
					}
					r = get(a, "GET", timeline, append([]string{"If-None-Match", acmeTimeline.Header.Get("ETag")}, beta...)...)
					if r.StatusCode != 200 || string(r.Body) == string(acmeTimeline.Body) || r.Header.Get("ETag") == acmeTimeline.Header.Get("ETag") {
						t.Fatalf("beta's timeline with acme's ETag: %d %s", r.StatusCode, r.Body)
					}
				}
				for _, path := range []string{"/api/v1/entities/CND-ACME-ONLY", "/api/v1/entities/CND-ACME-ONLY/timeline",
					"/api/v1/entities/CND-NONE", "/api/v1/entities/CND-NONE/timeline"} {
					if r := get(a, "GET", path, acme...); path == "/api/v1/entities/CND-ACME-ONLY" && r.StatusCode != 200 {
						t.Fatalf("acme's %s: %d", path, r.StatusCode)
					}
					if r := get(a, "GET", path, append([]string{"If-None-Match", "*"}, beta...)...); r.StatusCode != 404 {
						t.Errorf("beta's %s with If-None-Match *: %d %s, want 404", path, r.StatusCode, r.Body)
					}
				}

				// A new event: 200 with a new ETag for the old one, then 304
				// for the new one.
				old := map[string]string{entity: get(a, "GET", entity, acme...).Header.Get("ETag"), timeline: acmeTimeline.Header.Get("ETag")}
				record(acme, "CND-1", ev("LocationReported", 3*time.Minute, `{"lat":52.2,"lon":4.4}`))
				for _, path := range []string{entity, timeline} {
					r := get(a, "GET", path+"?minVersion=4", append([]string{"If-None-Match", old[path]}, acme...)...)
					tag := r.Header.Get("ETag")
					if r.StatusCode != 200 || tag == old[path] || !strings.Contains(string(r.Body), `"lat":52.2`) {
						t.Fatalf("%s after a new event, with the old ETag: %d ETag %s (old %s) %s", path, r.StatusCode, tag, old[path], r.Body)
					}
					if path == entity && tag != `"4"` {
						t.Errorf("entity ETag after the new event %s, want \"4\"", tag)
					}
					waitUntil(t, path+" to answer 304 to its new ETag", func() bool {
						return get(a, "GET", path, append([]string{"If-None-Match", tag}, acme...)...).StatusCode == 304
					})
					if r := get(a, "GET", path, append([]string{"If-None-Match", old[path]}, acme...)...); r.StatusCode != 200 || r.Header.Get("ETag") != tag {
						t.Errorf("%s with the old ETag: %d ETag %s, want 200 with %s", path, r.StatusCode, r.Header.Get("ETag"), tag)
					}
				}

				if store == "redis" {
					rc := redis.NewClient(&redis.Options{Addr: sharedRedis(t)})
					defer rc.Close()
					keys, err := rc.Keys(t.Context(), "tracktrace:*"+acme[1]+"*").Result()
					if err != nil || len(keys) == 0 {
						t.Errorf("Redis holds no keys of tenant %s (%v): answers were not cached there", acme[1], err)
					}
				}
			})
		}
	}
}
