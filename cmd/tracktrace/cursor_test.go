package main

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCursorsAreSealed: a list or timeline cursor continues the query that
// handed it out, on any replica of the same database; a cursor the API did
// not hand out (a position encoded by hand, a changed byte) or one used
// with another tenant, filter, entity or time range is a 400.
func TestCursorsAreSealed(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			env := eng.env(t)
			a, b := startServer(t, env), startServer(t, env) // two replicas
			acme := []string{"X-Tenant-ID", "acme"}
			for i := 1; i <= 3; i++ {
				events := []any{map[string]any{"type": "EntityRegistered", "occurredAt": at(0), "data": rawJSON(`{}`)}}
				for j := 1; j <= 3; j++ {
					events = append(events, map[string]any{"type": "LocationReported", "occurredAt": at(time.Duration(j) * time.Minute), "data": rawJSON(`{"lat":1,"lon":2}`)})
				}
				if r := a.do(t, "POST", fmt.Sprintf("/api/v1/entities/PKG-%d/events", i),
					map[string]any{"entityType": "package", "events": events}, acme...); r.StatusCode != 201 {
					t.Fatalf("record PKG-%d: %d %s", i, r.StatusCode, r.Body)
				}
			}
			type list struct {
				Items      []struct{ EntityID string }
				NextCursor string
			}
			var page list
			path := "/api/v1/entities?entityType=package&limit=1"
			// The read models follow the log: wait until the list holds all three.
			waitUntil(t, "the list to hold three entities", func() bool {
				var all list
				a.do(t, "GET", "/api/v1/entities?entityType=package", nil, acme...).JSON(t, &all)
				return len(all.Items) == 3
			})
			a.do(t, "GET", path, nil, acme...).JSON(t, &page)
			if len(page.Items) != 1 || page.Items[0].EntityID != "PKG-1" || page.NextCursor == "" {
				t.Fatalf("first page %+v", page)
			}
			var next list
			if r := b.do(t, "GET", path+"&cursor="+page.NextCursor, nil, acme...); r.StatusCode != 200 {
				t.Fatalf("the other replica refused the cursor: %d %s", r.StatusCode, r.Body)
			} else if r.JSON(t, &next); len(next.Items) != 1 || next.Items[0].EntityID != "PKG-2" {
				t.Fatalf("second page from the other replica %+v, want PKG-2", next)
			}

			raw, err := base64.RawURLEncoding.DecodeString(page.NextCursor)
			if err != nil {
				t.Fatal(err)
			}
			tampered := append([]byte(nil), raw...)
			tampered[0] ^= 1
			refused := []struct{ name, path string }{
				{"an entity id encoded by hand", path + "&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("PKG-2"))},
				{"a changed byte", path + "&cursor=" + base64.RawURLEncoding.EncodeToString(tampered)},
				{"another filter", "/api/v1/entities?entityType=container&limit=1&cursor=" + page.NextCursor},
				{"a dropped filter", "/api/v1/entities?limit=1&cursor=" + page.NextCursor},
			}
			for _, c := range refused {
				if r := b.do(t, "GET", c.path, nil, acme...); r.StatusCode != 400 || !strings.Contains(string(r.Body), "cursor") {
					t.Errorf("%s: %d %s, want a 400 naming the cursor", c.name, r.StatusCode, r.Body)
				}
			}
			if r := b.do(t, "GET", path+"&cursor="+page.NextCursor, nil, "X-Tenant-ID", "beta"); r.StatusCode != 400 {
				t.Errorf("another tenant's cursor: %d %s, want 400", r.StatusCode, r.Body)
			}

			from := url.QueryEscape(at(0))
			tl := "/api/v1/entities/PKG-1/timeline?limit=2&from=" + from
			var entries struct{ NextCursor string }
			waitUntil(t, "a timeline of more than one page", func() bool {
				a.do(t, "GET", tl, nil, acme...).JSON(t, &entries)
				return entries.NextCursor != ""
			})
			if r := b.do(t, "GET", tl+"&cursor="+entries.NextCursor, nil, acme...); r.StatusCode != 200 {
				t.Errorf("timeline cursor on the other replica: %d %s", r.StatusCode, r.Body)
			}
			for name, p := range map[string]string{
				"another entity":     "/api/v1/entities/PKG-2/timeline?limit=2&from=" + from,
				"another time range": "/api/v1/entities/PKG-1/timeline?limit=2&from=" + url.QueryEscape(at(time.Minute)),
				"a dropped range":    "/api/v1/entities/PKG-1/timeline?limit=2",
			} {
				if r := b.do(t, "GET", p+"&cursor="+entries.NextCursor, nil, acme...); r.StatusCode != 400 {
					t.Errorf("timeline cursor with %s: %d %s, want 400", name, r.StatusCode, r.Body)
				}
			}
		})
	}
}
