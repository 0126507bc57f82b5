package main

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Sites through the API on both engines: an admin puts them, a reader
// reads them, another tenant sees none of them, and a bad geometry is a
// 400 naming what is wrong.
func TestSitesAPI(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine.name, func(t *testing.T) {
			t.Parallel()
			is := newIssuer(t)
			srv := startServer(t, append(engine.env(t), "Authentication__Authority="+is.URL,
				"Authentication__Audience=tracktrace-api", "Authentication__RequireHttpsMetadata=false"))
			bearer := func(sub, tenant, scope string) []string {
				return []string{"Authorization", "Bearer " + is.token(t, sub, tenant, scope, time.Hour)}
			}
			const admin = "tracktrace.read tracktrace.write tracktrace.admin"
			acmeAdmin := bearer("alice", "acme", admin)
			acmeRead := bearer("auditor", "acme", "tracktrace.read")
			acmeWrite := bearer("driver", "acme", "tracktrace.read tracktrace.write")
			globexAdmin := bearer("bob", "globex", admin)
			validate := openAPIValidator(t)
			must := func(want int, r response) response {
				t.Helper()
				if r.StatusCode != want {
					t.Fatalf("%s %s = %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.Body)
				}
				validate(t, r)
				return r
			}
			type site struct {
				ID, Name  string
				Geometry  json.RawMessage
				UpdatedAt time.Time
			}
			siteOf := func(r response) site {
				t.Helper()
				var s site
				r.JSON(t, &s)
				return s
			}

			maasvlakte := json.RawMessage(`{"type": "Polygon", "coordinates": [[[3.9950, 51.9620], [4.0050, 51.9400],
				[4.0400, 51.9400], [4.0620, 51.9500], [4.0550, 51.9680], [4.0180, 51.9780], [3.9950, 51.9620]]]}`)
			must(403, srv.do(t, "PUT", "/api/v1/sites/maasvlakte", map[string]any{"geometry": maasvlakte}, acmeRead...))
			must(403, srv.do(t, "PUT", "/api/v1/sites/maasvlakte", map[string]any{"geometry": maasvlakte}, acmeWrite...))
			r := must(201, srv.do(t, "PUT", "/api/v1/sites/maasvlakte",
				map[string]any{"name": "Maasvlakte terminals", "geometry": maasvlakte}, acmeAdmin...))
			if loc := r.Header.Get("Location"); loc != "/api/v1/sites/maasvlakte" {
				t.Errorf("Location %q", loc)
			}
			created := siteOf(r)
			if created.ID != "maasvlakte" || created.Name != "Maasvlakte terminals" || !sameJSON(created.Geometry, maasvlakte) ||
				time.Since(created.UpdatedAt) > time.Minute {
				t.Errorf("created %+v", created)
			}
			if got := siteOf(must(200, srv.do(t, "GET", "/api/v1/sites/maasvlakte", nil, acmeRead...))); !sameJSON(got.Geometry, maasvlakte) ||
				got.Name != created.Name || !got.UpdatedAt.Equal(created.UpdatedAt) {
				t.Errorf("read %+v, want %+v", got, created)
			}

			// Replaced by Taveuni cut at the 180th meridian; a PUT without a
			// name leaves none.
			taveuni := json.RawMessage(`{"type": "MultiPolygon", "coordinates": [
				[[[179.85, -16.70], [180, -16.70], [180, -17.05], [179.85, -17.05], [179.85, -16.70]]],
				[[[-180, -16.70], [-179.85, -16.70], [-179.85, -17.05], [-180, -17.05], [-180, -16.70]]]]}`)
			must(200, srv.do(t, "PUT", "/api/v1/sites/maasvlakte", map[string]any{"geometry": taveuni}, acmeAdmin...))
			if got := siteOf(must(200, srv.do(t, "GET", "/api/v1/sites/maasvlakte", nil, acmeRead...))); !sameJSON(got.Geometry, taveuni) || got.Name != "" {
				t.Errorf("replaced: %+v", got)
			}

			schiphol := json.RawMessage(`{"type": "Point", "coordinates": [4.7683, 52.3105], "radius": 3000}`)
			odd := "Gate 3 — Überseehafen"
			must(201, srv.do(t, "PUT", "/api/v1/sites/schiphol", map[string]any{"geometry": schiphol}, acmeAdmin...))
			must(201, srv.do(t, "PUT", "/api/v1/sites/"+url.PathEscape(odd), map[string]any{"geometry": schiphol}, acmeAdmin...))
			if got := siteOf(must(200, srv.do(t, "GET", "/api/v1/sites/"+url.PathEscape(odd), nil, acmeRead...))); got.ID != odd {
				t.Errorf("read %q as %q", odd, got.ID)
			}

			// Another tenant: nothing to read, list, replace or delete.
			must(404, srv.do(t, "GET", "/api/v1/sites/maasvlakte", nil, globexAdmin...))
			must(404, srv.do(t, "DELETE", "/api/v1/sites/maasvlakte", nil, globexAdmin...))
			var page struct {
				Items      []site
				NextCursor string
			}
			must(200, srv.do(t, "GET", "/api/v1/sites", nil, globexAdmin...)).JSON(t, &page)
			if len(page.Items) != 0 {
				t.Errorf("globex lists %+v", page.Items)
			}

			// acme's sites, a page at a time, by id (bytewise).
			var ids []string
			cursor := ""
			for range 5 {
				path := "/api/v1/sites?limit=2"
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				page.NextCursor = ""
				must(200, srv.do(t, "GET", path, nil, acmeRead...)).JSON(t, &page)
				for _, s := range page.Items {
					ids = append(ids, s.ID)
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if want := []string{odd, "maasvlakte", "schiphol"}; strings.Join(ids, "|") != strings.Join(want, "|") {
				t.Errorf("listed %q, want %q", ids, want)
			}
			must(200, srv.do(t, "GET", "/api/v1/sites?limit=2", nil, acmeRead...)).JSON(t, &page)
			must(400, srv.do(t, "GET", "/api/v1/sites?cursor="+url.QueryEscape(page.NextCursor), nil, globexAdmin...))

			// Refusals name the fault.
			for _, tc := range []struct {
				name, id string
				body     any
				field    string
				message  string
			}{
				{"unclosed ring", "yard", map[string]any{"geometry": json.RawMessage(
					`{"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52.1]]]}`)}, "geometry/coordinates/0", "not closed"},
				{"latitude out of range", "yard", map[string]any{"geometry": json.RawMessage(
					`{"type": "Polygon", "coordinates": [[[4, 52], [4.1, 92], [4.1, 52.1], [4, 52]]]}`)}, "geometry/coordinates/0/1", "latitude 92"},
				{"circle too large", "yard", map[string]any{"geometry": json.RawMessage(
					`{"type": "Point", "coordinates": [4, 52], "radius": 250000}`)}, "geometry/radius", "100000"},
				{"a line", "yard", map[string]any{"geometry": json.RawMessage(
					`{"type": "LineString", "coordinates": [[4, 52], [4.1, 52]]}`)}, "geometry/type", "LineString"},
				{"no geometry", "yard", map[string]any{"name": "yard"}, "geometry", "required"},
				{"id too long", strings.Repeat("x", 129), map[string]any{"geometry": schiphol}, "siteId", "128"},
				{"id with a slash", url.PathEscape("a/b"), map[string]any{"geometry": schiphol}, "siteId", "'/'"},
				{"name with control bytes", "yard", map[string]any{"name": "a\x00b", "geometry": schiphol}, "name", "printable"},
			} {
				r := srv.do(t, "PUT", "/api/v1/sites/"+tc.id, tc.body, acmeAdmin...)
				var problem struct {
					Errors []struct{ Field, Message string }
				}
				if r.StatusCode != 400 || r.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s: %d %s, want a 400 problem", tc.name, r.StatusCode, r.Body)
					continue
				}
				validate(t, r)
				r.JSON(t, &problem)
				if len(problem.Errors) != 1 || problem.Errors[0].Field != tc.field || !strings.Contains(problem.Errors[0].Message, tc.message) {
					t.Errorf("%s: errors %+v, want one at %s saying %q", tc.name, problem.Errors, tc.field, tc.message)
				}
			}
			must(400, srv.do(t, "PUT", "/api/v1/sites/yard", map[string]any{"geometry": schiphol, "radius": 5}, acmeAdmin...))
			must(415, srv.do(t, "PUT", "/api/v1/sites/yard", nil, append(acmeAdmin, "Content-Type", "text/plain")...))
			big := `{"geometry": {"type": "Point", "coordinates": [4, 52], "radius": 10}, "name": "` + strings.Repeat("x", 1<<20) + `"}`
			must(413, srv.do(t, "PUT", "/api/v1/sites/yard", big, acmeAdmin...))
			must(404, srv.do(t, "GET", "/api/v1/sites/yard", nil, acmeRead...))

			must(403, srv.do(t, "DELETE", "/api/v1/sites/schiphol", nil, acmeRead...))
			must(204, srv.do(t, "DELETE", "/api/v1/sites/schiphol", nil, acmeAdmin...))
			must(404, srv.do(t, "GET", "/api/v1/sites/schiphol", nil, acmeRead...))
			must(404, srv.do(t, "DELETE", "/api/v1/sites/schiphol", nil, acmeAdmin...))
		})
	}
}

func sameJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}
