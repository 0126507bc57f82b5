package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tlm/tracktrace/internal/auth/authtest"
	consoleauth "github.com/tlm/tracktrace/internal/console/auth"
	"github.com/tlm/tracktrace/internal/console/browsertest"
)

// tabLog records what a browser's tab loads: every document it navigates
// to (each redirect's target included) and every live stream the server
// answered, in order.
type tabLog struct {
	mu        sync.Mutex
	documents []string
	streams   []string
}

// recordTab starts recording b's tab.
func recordTab(t *testing.T, b *browsertest.Browser) *tabLog {
	t.Helper()
	l := &tabLog{}
	err := chromedp.Listen(b.Context(), func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.Type == network.ResourceTypeDocument {
				l.documents = append(l.documents, e.Request.URL)
			}
		case *network.EventResponseReceived:
			if e.Type == network.ResourceTypeEventSource && e.Response.Status == http.StatusOK {
				l.streams = append(l.streams, e.Response.URL)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// mark returns how many documents and streams were recorded so far.
func (l *tabLog) mark() (documents, streams int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.documents), len(l.streams)
}

// documentsSince returns the documents loaded after mark's first count.
func (l *tabLog) documentsSince(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.documents[n:])
}

// waitStream waits until a live stream of url has been answered since
// mark's second count: from then on, the page hears of every new event.
func (l *tabLog) waitStream(t *testing.T, since int, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l.mu.Lock()
		opened := slices.Contains(l.streams[since:], url)
		l.mu.Unlock()
		if opened {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page opened no live stream of %s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](b *browsertest.Browser, expr string) T {
	return browsertest.Run(b, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitJS waits until a JavaScript expression is true in the page.
func waitJS(t *testing.T, b *browsertest.Browser, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 25*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// checkPage keeps screenshots of the page at a phone's and a desktop's
// width and fails the test for each serious accessibility violation.
func checkPage(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	b.Screenshots(name)
	b.CheckAccessibility(name)
}

// entityView is what the test reads of an entity page's live region.
type entityView struct {
	Version    string   `json:"version"`
	Points     int      `json:"points"`
	Rows       int      `json:"rows"`
	Exceptions []string `json:"exceptions"`
}

const readEntityView = `(() => {
	const r = document.getElementById('entity-live');
	return {
		version: r.dataset.version,
		points: r.querySelectorAll('svg.map g.track-point').length,
		rows: r.querySelectorAll('table.timeline tbody tr').length,
		exceptions: [...r.querySelectorAll('li.exception')].map(e => e.dataset.exceptionId + ': ' + e.textContent.replace(/\s+/g, ' ').trim()),
	};
})()`

// Issue 20, done when 1 and 2: in a real browser, on both engines, an
// operator finds an entity by its id and sees its timeline, its map with a
// point per location report and its open exception; a location recorded
// through the API appears on the open page and in the open list without a
// reload; the performance page shows the hand-computed percentiles of a
// seeded set. Every page (list, entity, performance, operations) is kept
// as screenshots at 375 and 1440 px and has no serious accessibility
// violation.
func TestConsoleBrowser(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			srv := startServer(t, eng.env(t))
			// After the server, so that the browser (and its live streams)
			// is gone before the server stops.
			b := browsertest.New(t)
			tab := recordTab(t, b)
			// A browser sends no X-Tenant-ID: without authentication the
			// console shows the default tenant.
			const tenant, entity = "default", "SHP-BROWSER-1"
			base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
			seedConsole(t, srv, tenant, entity, base)

			b.Navigate(srv.URL + "/console/")
			if !evalJS[bool](b, `document.querySelector('tr[data-entity-id="`+entity+`"]') !== null`) {
				t.Errorf("the list does not show %s", entity)
			}
			if banner := evalJS[string](b, `document.querySelector('.banner')?.textContent ?? ''`); !strings.Contains(banner, "No authentication") {
				t.Errorf("no banner says that authentication is off: %q", banner)
			}
			checkPage(t, b, "list")

			// Search.
			_, streams := tab.mark()
			b.Do(chromedp.SendKeys(chromedp.CSS("#search-id"), entity),
				chromedp.Click(chromedp.CSS("form.search button")),
				chromedp.WaitVisible(chromedp.CSS("#entity-live")))
			if got := browsertest.Run(b, chromedp.Location()); got != srv.URL+"/console/entities/"+entity {
				t.Errorf("the search led to %s", got)
			}
			v := evalJS[entityView](b, readEntityView)
			if v.Points != 4 || v.Rows != 6 || v.Version != "6" {
				t.Errorf("the entity page shows %d points on its map and %d timeline rows at version %s, want the 4 location reports and the 6 events",
					v.Points, v.Rows, v.Version)
			}
			if len(v.Exceptions) != 1 || !strings.HasPrefix(v.Exceptions[0], "EX-1: damage high <script>alert('x')</script> crushed") {
				t.Errorf("open exceptions %q, want EX-1's code, severity and description, as text", v.Exceptions)
			}
			checkPage(t, b, "entity")

			// A location reported through the API appears on the open page.
			tab.waitStream(t, streams, srv.URL+"/console/entities/"+entity+"/stream")
			evalJS[chromedp.Void](b, `window.consoleE2E = 'not reloaded'`)
			appendEvents(t, srv, tenant, entity, "shipment", event("LocationReported", base.Add(6*time.Minute), `{"lat": 51.2, "lon": 3.5}`))
			waitJS(t, b, "the new location on the entity page", `document.getElementById('entity-live').dataset.version === '7'`)
			v = evalJS[entityView](b, readEntityView)
			if v.Points != 5 || v.Rows != 7 || len(v.Exceptions) != 1 {
				t.Errorf("after a location report the page shows %d points, %d timeline rows, %d open exceptions; want 5, 7, 1",
					v.Points, v.Rows, len(v.Exceptions))
			}
			if evalJS[string](b, `String(window.consoleE2E)`) != "not reloaded" {
				t.Error("the entity page was reloaded to show the new event")
			}
			if got := evalJS[string](b, `document.getElementById('live-status').textContent`); got != "Updated: LocationReported of "+entity+"." {
				t.Errorf("the update was announced as %q", got)
			}

			// And a new shipment appears in the open list.
			_, streams = tab.mark()
			b.Navigate(srv.URL + "/console/?entityType=shipment")
			tab.waitStream(t, streams, srv.URL+"/console/stream?entityType=shipment")
			evalJS[chromedp.Void](b, `window.consoleE2E = 'not reloaded'`)
			appendEvents(t, srv, tenant, "SHP-BROWSER-2", "shipment", event("EntityRegistered", base, `{}`))
			waitJS(t, b, "the new shipment in the list", `document.querySelector('tr[data-entity-id="SHP-BROWSER-2"]') !== null`)
			if evalJS[string](b, `String(window.consoleE2E)`) != "not reloaded" {
				t.Error("the list was reloaded to show the new entity")
			}

			b.Navigate(srv.URL + "/console/metrics?operation=sort_test")
			cells := evalJS[map[string][2]string](b, `(() => {
				const row = document.querySelector('#operation-durations tbody tr');
				const out = {};
				for (const p of ['p50', 'p95', 'p99']) {
					const td = row.querySelector('td[data-' + p + ']');
					out[p] = [td.dataset[p], td.textContent];
				}
				return out;
			})()`)
			// consolePercentiles as the page writes them.
			shown := map[string]string{"p50": "1 min 45 s", "p95": "7 min 18 s", "p99": "9 min 28 s"}
			for name, want := range consolePercentiles {
				got, err := strconv.ParseFloat(cells[name][0], 64)
				if err != nil || math.Abs(got-want) > 1e-9 || cells[name][1] != shown[name] {
					t.Errorf("%s shows %q (data %q), want %v (%q)", name, cells[name][1], cells[name][0], want, shown[name])
				}
			}
			if got := evalJS[string](b, `document.querySelector('#milestone-punctuality td[data-rate-on-time]').textContent`); got != "75.0 %" {
				t.Errorf("milestones on time: %q, want 75.0 %%", got)
			}
			if n := evalJS[int](b, `[...document.querySelectorAll('figure.chart img')].filter(i => i.complete && i.naturalWidth > 0).length`); n != 2 {
				t.Errorf("%d charts drawn, want 2", n)
			}
			checkPage(t, b, "metrics")

			b.Navigate(srv.URL + "/console/ops")
			if !evalJS[bool](b, `document.querySelector('tr[data-projection="timeline"]') !== null`) {
				t.Error("the operations page lists no timeline projection")
			}
			checkPage(t, b, "ops")
		})
	}
}

// Issue 20, done when 3: with an identity provider, in a real browser on
// both engines: the console sends a stranger to sign in and brings them
// back signed in to their tenant; another tenant's entity is not found by
// its URL; a state change without the session's CSRF token, or from
// another origin, is refused; signing out ends the session, at the issuer
// too, and the old session's cookie is refused afterwards.
func TestConsoleBrowserSignIn(t *testing.T) {
	t.Parallel()
	const clientID, secret = "tracktrace-console", "console-secret"
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			// Plain http: the server's verifier trusts no test certificate.
			is := authtest.NewHTTP(t)
			srv := startServer(t, append(eng.env(t), "Authentication__Authority="+is.URL,
				"Authentication__Audience="+authtest.Audience, "Authentication__RequireHttpsMetadata=false",
				"Console__ClientId="+clientID, "Console__ClientSecret="+secret))
			is.Register(authtest.Client{ID: clientID, Secret: secret, RedirectURIs: []string{srv.URL + "/console/callback"},
				PostLogoutRedirectURIs: []string{srv.URL + "/console/signed-out"}})
			is.SignIn(authtest.User{Subject: "alice", Tenant: "acme", Scopes: []string{"tracktrace.read"}})
			b := browsertest.New(t)
			tab := recordTab(t, b)

			for tenant, entity := range map[string]string{"acme": "SHP-ACME-1", "globex": "SHP-GLOBEX-1"} {
				tok := is.AccessToken(t, authtest.User{Subject: "writer", Tenant: tenant, Scopes: []string{"tracktrace.write"}}, time.Hour)
				r := srv.do(t, "POST", "/api/v1/entities/"+entity+"/events", map[string]any{"entityType": "shipment",
					"events": []any{ev("EntityRegistered", 0, fmt.Sprintf(`{"reference": "%s-secret"}`, tenant)),
						ev("LocationReported", time.Minute, `{"lat": 52.37, "lon": 4.9}`)}}, "Authorization", "Bearer "+tok)
				if r.StatusCode != http.StatusCreated {
					t.Fatalf("append to %s: %d %s", entity, r.StatusCode, r.Body)
				}
				reader := is.AccessToken(t, authtest.User{Subject: "reader", Tenant: tenant, Scopes: []string{"tracktrace.read"}}, time.Hour)
				waitProjected(t, srv, entity, 2, "Authorization", "Bearer "+reader)
			}

			// Signing in: from the page asked for, through the sign-in and
			// the issuer, back to it.
			page := srv.URL + "/console/entities/SHP-ACME-1"
			docs, _ := tab.mark()
			b.Navigate(page)
			chain := tab.documentsSince(docs)
			if len(chain) != 5 || chain[0] != page || !strings.HasPrefix(chain[1], srv.URL+"/console/login?") ||
				!strings.HasPrefix(chain[2], is.URL+"/authorize?") || !strings.HasPrefix(chain[3], srv.URL+"/console/callback?") || chain[4] != page {
				t.Errorf("opening %s went through %q, want the sign-in, the issuer, the callback and back", page, chain)
			}
			who := evalJS[[]string](b, `[document.querySelector('h1').textContent, document.querySelector('[data-tenant]').textContent,
				document.querySelector('.who').textContent, String(document.querySelector('.banner'))]`)
			if who[0] != "Entity SHP-ACME-1" || who[1] != "acme" || !strings.Contains(who[2], "alice") || who[3] != "null" {
				t.Errorf("signed in, the page shows %q, want SHP-ACME-1 for alice of acme and no banner", who)
			}
			b.Navigate(srv.URL + "/console/")
			if list := evalJS[[]string](b, `[...document.querySelectorAll('tr[data-entity-id]')].map(r => r.dataset.entityId)`); !slices.Equal(list, []string{"SHP-ACME-1"}) {
				t.Errorf("acme's list shows %q", list)
			}

			// Another tenant's entity, by its URL.
			res := browsertest.Run(b, chromedp.NavigateResponse(srv.URL+"/console/entities/SHP-GLOBEX-1"))
			if res.Status != http.StatusNotFound {
				t.Errorf("another tenant's entity page: %d, want 404", res.Status)
			}
			if text := evalJS[string](b, `document.body.textContent`); strings.Contains(text, "globex-secret") || !strings.Contains(text, "There is no entity SHP-GLOBEX-1.") {
				t.Errorf("another tenant's entity page says:\n%s", text)
			}
			checkPage(t, b, "not found")
			if got := evalJS[int](b, `fetch('/console/entities/SHP-GLOBEX-1/fragment').then(r => r.status)`); got != http.StatusNotFound {
				t.Errorf("another tenant's entity fragment: %d, want 404", got)
			}

			// State changes without the CSRF token: a script's of the
			// console's own origin (none, or a wrong one) and a form of
			// another origin's page.
			b.Navigate(page)
			for name, init := range map[string]string{
				"no token":    `{method: 'POST'}`,
				"wrong token": `{method: 'POST', headers: {'` + consoleauth.CSRFHeader + `': 'forged'}}`,
				"form body without token": `{method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
					body: 'next=%2Fconsole%2F'}`,
			} {
				if got := evalJS[int](b, `fetch('/console/logout', `+init+`).then(r => r.status)`); got != http.StatusForbidden {
					t.Errorf("a sign-out posted by a script with %s: %d, want 403", name, got)
				}
			}
			evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprintf(w, `<!doctype html><title>Win a prize</title><form method="post" action="%s/console/logout">`+
					`<button type="submit">Claim</button></form>`, srv.URL)
			}))
			t.Cleanup(evil.Close)
			b.Navigate(evil.URL)
			res, err := chromedp.RunResponse(b.Context(), chromedp.Click(chromedp.CSS("button")))
			if err != nil {
				t.Fatalf("posting another origin's form: %v", err)
			}
			if res.Status != http.StatusForbidden {
				t.Errorf("a sign-out form posted from %s: %d, want 403", evil.URL, res.Status)
			}
			docs, _ = tab.mark()
			b.Navigate(page)
			if chain := tab.documentsSince(docs); len(chain) != 1 || len(is.Logouts()) != 0 {
				t.Errorf("after the refused requests, opening %s went through %q (and the issuer saw %d sign-outs): the session should have lasted",
					page, chain, len(is.Logouts()))
			}

			// Signing out.
			cookies, err := chromedp.Call(b.Context(), network.GetCookies, network.GetCookiesParams{URLs: []string{page}})
			if err != nil {
				t.Fatal(err)
			}
			var session string
			for _, c := range cookies.Cookies {
				if c.Name == consoleauth.SessionCookie {
					session = c.Value
				}
			}
			if session == "" {
				t.Fatalf("no session cookie among %d", len(cookies.Cookies))
			}
			docs, _ = tab.mark()
			res, err = chromedp.RunResponse(b.Context(), chromedp.Click(chromedp.CSS("form.sign-out button")))
			if err != nil {
				t.Fatalf("signing out: %v (went through %q)", err, tab.documentsSince(docs))
			}
			if res.Status != http.StatusOK || res.URL != srv.URL+"/console/signed-out" {
				t.Errorf("signing out ended at %s with %d", res.URL, res.Status)
			}
			if chain := tab.documentsSince(docs); len(chain) != 3 || chain[0] != srv.URL+"/console/logout" ||
				!strings.HasPrefix(chain[1], is.URL+"/logout?") || chain[2] != srv.URL+"/console/signed-out" {
				t.Errorf("signing out went through %q, want the console's sign-out, the issuer's and the signed-out page", chain)
			}
			if logouts := is.Logouts(); len(logouts) != 1 || logouts[0].Get("client_id") != clientID {
				t.Errorf("the issuer's end-session endpoint got %v", logouts)
			}
			checkPage(t, b, "signed out")
			// The old page now sends the browser to sign in (which the
			// test issuer then does at once)…
			docs, _ = tab.mark()
			b.Navigate(page)
			if chain := tab.documentsSince(docs); len(chain) < 2 || !strings.HasPrefix(chain[1], srv.URL+"/console/login?") {
				t.Errorf("after signing out, opening %s went through %q, want the sign-in", page, chain)
			}
			// …and the old session's cookie is refused.
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, err := http.NewRequest("GET", page, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "text/html")
			req.AddCookie(&http.Cookie{Name: consoleauth.SessionCookie, Value: session})
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/login?") {
				t.Errorf("the signed-out session's cookie: %d to %q, want 303 to the sign-in", resp.StatusCode, loc)
			}
		})
	}
}
