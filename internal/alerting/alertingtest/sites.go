// Package alertingtest holds the conformance suites of alerting's stores:
// every engine's implementation must pass them.
package alertingtest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
)

// Geometries of the scenarios, as the API stores them (compacted).
const (
	rotterdamGate = `{"type":"Point","coordinates":[4.0431,51.9488],"radius":250}`
	hamburgYard   = `{"type":"Polygon","coordinates":[[[9.92,53.5],[9.935,53.5],[9.935,53.507],[9.92,53.507],[9.92,53.5]]]}`
)

var day = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

// RunSites runs the suite of alerting.Sites; open returns an empty store,
// closed at the test's cleanup. Subtests run in parallel.
func RunSites(t *testing.T, open func(t *testing.T) alerting.Sites) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s alerting.Sites)
	}{
		{"PutCreatesThenReplaces", testPutReplaces},
		{"TenantsAreApart", testTenantsApart},
		{"ListPagesByID", testListPages},
		{"Delete", testDelete},
		{"ConcurrentPutsCreateOnce", testConcurrentPuts},
		{"VersionMovesWithEveryChange", testSitesVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, t.Context(), open(t))
		})
	}
}

func put(t *testing.T, ctx context.Context, s alerting.Sites, site alerting.Site, wantCreated bool) {
	t.Helper()
	created, err := s.PutSite(ctx, site)
	if err != nil {
		t.Fatalf("PutSite(%s/%s): %v", site.Tenant, site.ID, err)
	}
	if created != wantCreated {
		t.Errorf("PutSite(%s/%s) created = %v, want %v", site.Tenant, site.ID, created, wantCreated)
	}
}

func get(t *testing.T, ctx context.Context, s alerting.Sites, tenant, id string, want alerting.Site) {
	t.Helper()
	got, err := s.Site(ctx, tenant, id)
	if err != nil {
		t.Fatalf("Site(%s, %s): %v", tenant, id, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Site(%s, %s) =\n%+v\nwant\n%+v", tenant, id, got, want)
	}
}

func testPutReplaces(t *testing.T, ctx context.Context, s alerting.Sites) {
	gate := alerting.Site{Tenant: "acme", ID: "rtm-gate", Name: "Rotterdam, gate 3", Geometry: []byte(rotterdamGate),
		UpdatedAt: day.Add(123456 * time.Microsecond)}
	put(t, ctx, s, gate, true)
	get(t, ctx, s, "acme", "rtm-gate", gate)

	moved := alerting.Site{Tenant: "acme", ID: "rtm-gate", Name: "", Geometry: []byte(hamburgYard), UpdatedAt: day.Add(time.Hour)}
	put(t, ctx, s, moved, false)
	get(t, ctx, s, "acme", "rtm-gate", moved)
}

func testTenantsApart(t *testing.T, ctx context.Context, s alerting.Sites) {
	acme := alerting.Site{Tenant: "acme", ID: "yard", Name: "acme's yard", Geometry: []byte(hamburgYard), UpdatedAt: day}
	globex := alerting.Site{Tenant: "globex", ID: "yard", Name: "globex's yard", Geometry: []byte(rotterdamGate), UpdatedAt: day}
	put(t, ctx, s, acme, true)
	if _, err := s.Site(ctx, "globex", "yard"); !errors.Is(err, alerting.ErrSiteNotFound) {
		t.Errorf("globex reads acme's site: %v", err)
	}
	if sites, err := s.ListSites(ctx, "globex", "", 10); err != nil || len(sites) != 0 {
		t.Errorf("globex lists %v, %v; want nothing", sites, err)
	}
	if err := s.DeleteSite(ctx, "globex", "yard"); !errors.Is(err, alerting.ErrSiteNotFound) {
		t.Errorf("globex deletes acme's site: %v", err)
	}
	put(t, ctx, s, globex, true)
	get(t, ctx, s, "acme", "yard", acme)
	if err := s.DeleteSite(ctx, "globex", "yard"); err != nil {
		t.Fatal(err)
	}
	get(t, ctx, s, "acme", "yard", acme)
}

func testListPages(t *testing.T, ctx context.Context, s alerting.Sites) {
	// Bytewise order: upper case before lower case, ASCII before the rest.
	ids := []string{"ä-depot", "a-1", "B", "a", "Z 9"}
	for _, id := range ids {
		put(t, ctx, s, alerting.Site{Tenant: "acme", ID: id, Geometry: []byte(rotterdamGate), UpdatedAt: day}, true)
	}
	put(t, ctx, s, alerting.Site{Tenant: "globex", ID: "Aa", Geometry: []byte(rotterdamGate), UpdatedAt: day}, true)
	var pages [][]string
	after := ""
	for range 10 {
		sites, err := s.ListSites(ctx, "acme", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(sites) == 0 {
			break
		}
		var page []string
		for _, site := range sites {
			page = append(page, site.ID)
		}
		pages = append(pages, page)
		after = page[len(page)-1]
	}
	want := [][]string{{"B", "Z 9"}, {"a", "a-1"}, {"ä-depot"}}
	if !reflect.DeepEqual(pages, want) {
		t.Errorf("pages %q, want %q", pages, want)
	}
	if _, err := s.ListSites(ctx, "acme", "", 0); err == nil {
		t.Errorf("a limit of 0 lists")
	}
}

func testDelete(t *testing.T, ctx context.Context, s alerting.Sites) {
	put(t, ctx, s, alerting.Site{Tenant: "acme", ID: "yard", Geometry: []byte(hamburgYard), UpdatedAt: day}, true)
	if err := s.DeleteSite(ctx, "acme", "yard"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Site(ctx, "acme", "yard"); !errors.Is(err, alerting.ErrSiteNotFound) {
		t.Errorf("a deleted site reads: %v", err)
	}
	if err := s.DeleteSite(ctx, "acme", "yard"); !errors.Is(err, alerting.ErrSiteNotFound) {
		t.Errorf("a second delete: %v, want ErrSiteNotFound", err)
	}
	put(t, ctx, s, alerting.Site{Tenant: "acme", ID: "yard", Geometry: []byte(hamburgYard), UpdatedAt: day}, true)
}

func testConcurrentPuts(t *testing.T, ctx context.Context, s alerting.Sites) {
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range n {
		wg.Go(func() {
			c, err := s.PutSite(ctx, alerting.Site{Tenant: "acme", ID: "gate", Geometry: []byte(rotterdamGate),
				UpdatedAt: day.Add(time.Duration(i) * time.Second)})
			if err != nil {
				t.Errorf("put %d: %v", i, err)
			}
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d of %d puts of one new site created it, want 1", created, n)
	}
}

func testSitesVersion(t *testing.T, ctx context.Context, s alerting.Sites) {
	version := func() alerting.SitesVersion {
		t.Helper()
		v, err := s.SitesVersion(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := version(); v.Count != 0 {
		t.Fatalf("no sites: version %+v", v)
	}
	var seen []alerting.SitesVersion
	step := func(what string) {
		t.Helper()
		v := version()
		for _, old := range seen {
			if v.Equal(old) {
				t.Errorf("after %s the version %+v is an earlier one", what, v)
			}
		}
		seen = append(seen, v)
	}
	step("nothing")
	put(t, ctx, s, alerting.Site{Tenant: "acme", ID: "yard", Geometry: []byte(hamburgYard), UpdatedAt: day}, true)
	step("a create")
	put(t, ctx, s, alerting.Site{Tenant: "acme", ID: "gate", Geometry: []byte(rotterdamGate), UpdatedAt: day.Add(time.Second)}, true)
	step("a second create")
	put(t, ctx, s, alerting.Site{Tenant: "acme", ID: "yard", Geometry: []byte(rotterdamGate), UpdatedAt: day.Add(2 * time.Second)}, false)
	step("a replace")
	if err := s.DeleteSite(ctx, "acme", "gate"); err != nil {
		t.Fatal(err)
	}
	step("a delete")
	// Another tenant's sites are another version.
	before := version()
	put(t, ctx, s, alerting.Site{Tenant: "globex", ID: "yard", Geometry: []byte(hamburgYard), UpdatedAt: day.Add(time.Hour)}, true)
	if v := version(); !v.Equal(before) || v.Count != 1 || !v.UpdatedAt.Equal(day.Add(2*time.Second)) {
		t.Errorf("acme's version %+v after globex put a site, want %+v", v, before)
	}
}
