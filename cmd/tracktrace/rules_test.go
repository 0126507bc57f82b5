package main

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// ruleAnswer is the part of a rule's answer the tests look at.
type ruleAnswer struct {
	ID          string
	Kind        string
	Levels      []string
	ExpireAfter string
	Tolerance   string
	ETADelta    string
	After       string
	EntityTypes []string
	Statuses    []string
	SiteIDs     []string
	Generation  int64
}

// An admin creates, lists, reads, replaces and deletes alert rules of the
// tenant; every definition a rule cannot have is refused naming its
// field; another tenant sees none of them. On both engines, every answer
// checked against the OpenAPI document.
func TestRulesAPI(t *testing.T) {
	t.Parallel()
	validate := openAPIValidator(t)
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			do := func(method, path string, body any, tenant string) response {
				t.Helper()
				r := srv.do(t, method, path, body, "X-Tenant-ID", tenant)
				validate(t, r)
				return r
			}
			created := func(body any, tenant string) ruleAnswer {
				t.Helper()
				r := do("POST", "/api/v1/rules", body, tenant)
				if r.StatusCode != http.StatusCreated {
					t.Fatalf("create %v: %d %s", body, r.StatusCode, r.Body)
				}
				var a ruleAnswer
				r.JSON(t, &a)
				if a.ID == "" || r.Header.Get("Location") != "/api/v1/rules/"+a.ID {
					t.Fatalf("create: id %q, Location %q", a.ID, r.Header.Get("Location"))
				}
				return a
			}

			stale := created(map[string]any{"kind": "stale"}, "acme")
			want := ruleAnswer{ID: stale.ID, Kind: "stale", Levels: []string{"P1D", "P2D", "P3D"}, ExpireAfter: "P30D",
				EntityTypes: []string{}, Statuses: []string{"registered", "in_transit", "out_for_delivery"}, Generation: 1}
			if !reflect.DeepEqual(stale, want) {
				t.Errorf("a stale rule's defaults:\n got %+v\nwant %+v", stale, want)
			}
			delay := created(map[string]any{"kind": "delay", "tolerance": "PT2H", "entityTypes": []string{"container"}}, "acme")
			want = ruleAnswer{ID: delay.ID, Kind: "delay", Tolerance: "PT2H", ETADelta: "PT30M", EntityTypes: []string{"container"},
				Statuses: []string{}, Generation: 1}
			if !reflect.DeepEqual(delay, want) {
				t.Errorf("a delay rule:\n got %+v\nwant %+v", delay, want)
			}
			dwell := created(map[string]any{"kind": "dwell", "after": "PT6H", "siteIds": []string{"yard-7"}}, "acme")
			other := created(map[string]any{"kind": "stale", "after": "PT12H"}, "globex")

			// Refusals, each naming the field.
			for _, tc := range []struct {
				name  string
				body  any
				field string
			}{
				{"no kind", map[string]any{}, "kind"},
				{"unknown kind", map[string]any{"kind": "late"}, "kind"},
				{"Go duration", map[string]any{"kind": "stale", "after": "24h"}, "after"},
				{"negative", map[string]any{"kind": "delay", "tolerance": "-PT1H"}, "tolerance"},
				{"too long", map[string]any{"kind": "stale", "levels": []string{"PT1H", "P500D"}}, "levels/1"},
				{"descending", map[string]any{"kind": "stale", "levels": []string{"PT2H", "PT1H"}}, "levels/1"},
				{"expiry too soon", map[string]any{"kind": "stale", "expireAfter": "PT1H"}, "expireAfter"},
				{"setting of another kind", map[string]any{"kind": "stale", "etaDelta": "PT1H"}, "etaDelta"},
				{"dwell without after", map[string]any{"kind": "dwell"}, "after"},
				{"unknown status", map[string]any{"kind": "delay", "statuses": []string{"lost"}}, "statuses/0"},
				{"unknown entity type", map[string]any{"kind": "delay", "entityTypes": []string{"spaceship"}}, "entityTypes/0"},
				{"control bytes in a site id", map[string]any{"kind": "dwell", "after": "PT1H", "siteIds": []string{"a\x00b"}}, "siteIds/0"},
				{"unknown field", map[string]any{"kind": "stale", "threshold": "PT1H"}, "threshold"},
				{"a number for a duration", map[string]any{"kind": "stale", "after": 3600}, "after"},
			} {
				r := do("POST", "/api/v1/rules", tc.body, "acme")
				if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" ||
					!strings.Contains(string(r.Body), `"`+tc.field) {
					t.Errorf("%s: %d %s, want a 400 problem naming %q", tc.name, r.StatusCode, r.Body, tc.field)
				}
			}
			if r := do("POST", "/api/v1/rules", "kind=stale", "acme"); r.StatusCode != http.StatusBadRequest {
				t.Errorf("a body that is not JSON: %d %s", r.StatusCode, r.Body)
			}

			// The tenant's rules, by id, paged.
			var page struct {
				Items     []ruleAnswer
				NextAfter string
			}
			do("GET", "/api/v1/rules?limit=2", nil, "acme").JSON(t, &page)
			if len(page.Items) != 2 || page.NextAfter != page.Items[1].ID {
				t.Fatalf("first page: %+v", page)
			}
			ids := []string{page.Items[0].ID, page.Items[1].ID}
			page.Items, page.NextAfter = nil, ""
			do("GET", "/api/v1/rules?limit=2&after="+ids[1], nil, "acme").JSON(t, &page)
			if len(page.Items) != 1 || page.NextAfter != "" {
				t.Fatalf("second page: %+v", page)
			}
			ids = append(ids, page.Items[0].ID)
			if got, want := strings.Join(ids, ","), strings.Join(slices.Sorted(slices.Values([]string{stale.ID, delay.ID, dwell.ID})), ","); got != want {
				t.Errorf("acme's rules %s, want %s", got, want)
			}
			if r := do("GET", "/api/v1/rules?limit=0", nil, "acme"); r.StatusCode != http.StatusBadRequest {
				t.Errorf("limit=0: %d", r.StatusCode)
			}

			// Replacing moves the generation and keeps the kind.
			r := do("PUT", "/api/v1/rules/"+dwell.ID, map[string]any{"kind": "dwell", "after": "PT8H"}, "acme")
			var replaced ruleAnswer
			r.JSON(t, &replaced)
			if r.StatusCode != http.StatusOK || replaced.After != "PT8H" || replaced.Generation != 2 || len(replaced.SiteIDs) != 0 {
				t.Errorf("replace: %d %s", r.StatusCode, r.Body)
			}
			var got ruleAnswer
			do("GET", "/api/v1/rules/"+dwell.ID, nil, "acme").JSON(t, &got)
			if !reflect.DeepEqual(got, replaced) {
				t.Errorf("read after replace:\n got %+v\nwant %+v", got, replaced)
			}
			if r := do("PUT", "/api/v1/rules/"+dwell.ID, map[string]any{"kind": "stale"}, "acme"); r.StatusCode != http.StatusBadRequest ||
				!strings.Contains(string(r.Body), `"kind"`) {
				t.Errorf("a replace changing the kind: %d %s", r.StatusCode, r.Body)
			}

			// Another tenant neither sees, replaces nor deletes acme's rules.
			page.Items = nil
			do("GET", "/api/v1/rules", nil, "globex").JSON(t, &page)
			if len(page.Items) != 1 || page.Items[0].ID != other.ID {
				t.Errorf("globex's rules: %+v", page.Items)
			}
			for _, method := range []string{"GET", "DELETE"} {
				if r := do(method, "/api/v1/rules/"+stale.ID, nil, "globex"); r.StatusCode != http.StatusNotFound {
					t.Errorf("%s of another tenant's rule: %d %s", method, r.StatusCode, r.Body)
				}
			}
			if r := do("PUT", "/api/v1/rules/"+stale.ID, map[string]any{"kind": "stale"}, "globex"); r.StatusCode != http.StatusNotFound {
				t.Errorf("PUT of another tenant's rule: %d %s", r.StatusCode, r.Body)
			}

			if r := do("DELETE", "/api/v1/rules/"+stale.ID, nil, "acme"); r.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d %s", r.StatusCode, r.Body)
			}
			for _, method := range []string{"GET", "DELETE"} {
				if r := do(method, "/api/v1/rules/"+stale.ID, nil, "acme"); r.StatusCode != http.StatusNotFound {
					t.Errorf("%s after the delete: %d %s", method, r.StatusCode, r.Body)
				}
			}
			if r := do("GET", "/api/v1/rules/"+other.ID, nil, "globex"); r.StatusCode != http.StatusOK {
				t.Errorf("globex's rule after acme's delete: %d", r.StatusCode)
			}
		})
	}
}
