package auth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiauth "github.com/tlm/tracktrace/internal/auth"
	"github.com/tlm/tracktrace/internal/auth/authtest"
	"github.com/tlm/tracktrace/internal/console/auth"
	"github.com/tlm/tracktrace/internal/tracking"
)

const clientID = "tracktrace-console"

var sessionKey = []byte("0123456789abcdef0123456789abcdef")

// console is a console under test: the auth routes and, behind the
// middleware, a few pages that show what a real page would use.
type console struct {
	srv    *httptest.Server
	issuer *authtest.Issuer
	auth   *auth.Auth
	clock  *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// entities are the test pages' data: entity id → tenant.
var entities = map[string]string{"acme-1": "acme", "globex-1": "globex"}

// newConsole starts a console; with issuer nil, in the embedded mode.
func newConsole(t *testing.T, issuer *authtest.Issuer, mod func(*auth.Options)) *console {
	t.Helper()
	c := &console{issuer: issuer, clock: &clock{t: time.Now()}}
	mux := http.NewServeMux()
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	o := auth.Options{SessionKey: sessionKey, Now: c.clock.Now}
	if issuer != nil {
		issuer.Register(authtest.Client{ID: clientID, Secret: "s3cret",
			RedirectURIs:           []string{c.srv.URL + "/console/callback"},
			PostLogoutRedirectURIs: []string{c.srv.URL + "/console/signed-out"}})
		v, err := apiauth.NewVerifier(t.Context(), apiauth.Options{Authority: issuer.URL, Audience: authtest.Audience,
			RequireHTTPSMetadata: true, HTTPClient: issuer.HTTPClient(), ClockSkew: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Close() })
		o.Verifier, o.ClientID, o.ClientSecret, o.HTTPClient = v, clientID, "s3cret", issuer.HTTPClient()
	}
	if mod != nil {
		mod(&o)
	}
	a, err := auth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	c.auth = a
	a.Routes(mux)
	pages := http.NewServeMux()
	pages.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.Principal(r)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"principal": p, "csrf": auth.CSRFToken(r)})
	})
	pages.HandleFunc("GET /console/entities/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.Principal(r)
		if tenant, ok := entities[r.PathValue("id")]; !ok || tenant != p.Tenant {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, r.PathValue("id"))
	})
	pages.HandleFunc("POST /console/entities/{id}/notes", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/console/", a.Middleware(pages))
	return c
}

// browser is a client with a cookie jar that trusts the issuer and records
// the URLs it is redirected through.
type browser struct {
	*http.Client
	mu     sync.Mutex
	visits []*url.URL
}

func newBrowser(t *testing.T, c *console) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{Client: &http.Client{Jar: jar}}
	if c.issuer != nil {
		b.Transport = c.issuer.Transport()
	}
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.visits = append(b.visits, req.URL)
		return nil
	}
	return b
}

func (b *browser) redirects() []*url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.visits)
}

// get GETs path on the console as a browser navigating and returns the
// final response's status and body.
func (b *browser) get(t *testing.T, c *console, path string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.srv.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post POSTs a form to path with the given headers (name, value, ...),
// without following redirects.
func (b *browser) post(t *testing.T, c *console, path string, form url.Values, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, c.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	nb := *b.Client
	nb.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nb.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// home is the front page's view of the session.
type home struct {
	Principal tracking.Principal
	CSRF      string
}

// signIn opens the console's front page, signing in on the way.
func signIn(t *testing.T, c *console, b *browser) home {
	t.Helper()
	status, body := b.get(t, c, "/console/")
	if status != http.StatusOK {
		t.Fatalf("GET /console/ = %d %s, want 200 after signing in", status, body)
	}
	var h home
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("front page %q: %v", body, err)
	}
	return h
}

func sessionCookie(t *testing.T, c *console, b *browser) *http.Cookie {
	t.Helper()
	u, _ := url.Parse(c.srv.URL + "/console/")
	for _, ck := range b.Jar.Cookies(u) {
		if ck.Name == auth.SessionCookie {
			return ck
		}
	}
	t.Fatal("no session cookie in the jar")
	return nil
}

func TestSignInWithPKCE(t *testing.T) {
	is := authtest.New(t)
	is.SignIn(authtest.User{Subject: "alice", Tenant: "acme", Scopes: []string{"tracktrace.read", "openid", "other"}})
	c := newConsole(t, is, nil)
	b := newBrowser(t, c)

	h := signIn(t, c, b)
	want := tracking.Principal{Tenant: "acme", Subject: "alice", Scopes: []string{"tracktrace.read"}}
	if !slicesEqualPrincipal(h.Principal, want) {
		t.Errorf("principal = %+v, want %+v (the access token's, mapped as the API maps it)", h.Principal, want)
	}
	if h.CSRF == "" {
		t.Error("no CSRF token for the page")
	}
	if c.auth.Embedded() {
		t.Error("Embedded() = true with an authority")
	}

	visits := b.redirects()
	if len(visits) != 4 {
		t.Fatalf("redirects = %v, want login, authorize, callback, front page", visits)
	}
	authz := visits[1].Query()
	if visits[1].Path != "/authorize" || authz.Get("code_challenge_method") != "S256" || len(authz.Get("code_challenge")) != 43 ||
		authz.Get("state") == "" || authz.Get("nonce") == "" || authz.Get("client_id") != clientID ||
		authz.Get("redirect_uri") != c.srv.URL+"/console/callback" || authz.Get("scope") != "openid tracktrace.read tracktrace.write tracktrace.admin" {
		t.Errorf("authorization request = %v", visits[1])
	}
	if visits[3].Path != "/console/" {
		t.Errorf("after sign-in the browser went to %v, want back to /console/", visits[3])
	}

	// A second sign-in starts a new state, nonce and challenge.
	b2 := newBrowser(t, c)
	signIn(t, c, b2)
	again := b2.redirects()[1].Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if again.Get(k) == authz.Get(k) {
			t.Errorf("%s reused across sign-ins", k)
		}
	}
}

func slicesEqualPrincipal(a, b tracking.Principal) bool {
	return a.Tenant == b.Tenant && a.Subject == b.Subject && slices.Equal(a.Scopes, b.Scopes) && a.Unrestricted == b.Unrestricted
}

func TestSignInGoesBackWhereItStarted(t *testing.T) {
	is := authtest.New(t)
	c := newConsole(t, is, nil)
	for _, tc := range []struct{ start, want string }{
		{"/console/entities/acme-1?tab=map", "/console/entities/acme-1"},
	} {
		b := newBrowser(t, c)
		status, body := b.get(t, c, tc.start)
		v := b.redirects()
		if status != http.StatusOK || body != "acme-1" || v[len(v)-1].Path != tc.want || v[len(v)-1].Query().Get("tab") != "map" {
			t.Errorf("GET %s = %d %q via %v", tc.start, status, body, v)
		}
	}
	// A next outside the console is ignored.
	for _, next := range []string{"//evil.example/x", "https://evil.example/console/", "/api/v1/entities", "/console/../api", "/\\evil.example"} {
		b := newBrowser(t, c)
		b.get(t, c, "/console/login?next="+url.QueryEscape(next))
		v := b.redirects()
		if last := v[len(v)-1]; last.Host != strings.TrimPrefix(c.srv.URL, "http://") || last.Path != "/console/" {
			t.Errorf("next=%s: sign-in ended at %v, want /console/", next, last)
		}
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	is := authtest.New(t)
	for _, tc := range []struct {
		name      string
		publicURL string
		secure    bool
	}{
		{"plain http on loopback", "", false},
		{"https public URL", "https://tracktrace.example.com", true},
		{"plain http elsewhere", "http://tracktrace.example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConsole(t, is, func(o *auth.Options) { o.PublicURL = tc.publicURL; o.SessionLifetime = 2 * time.Hour })
			if tc.publicURL != "" {
				is.Register(authtest.Client{ID: clientID, Secret: "s3cret", RedirectURIs: []string{tc.publicURL + "/console/callback"}})
			}
			b := newBrowser(t, c)
			// Follow the flow by hand to the callback, whose answer sets the session.
			resp := getNoRedirect(t, b, c.srv.URL+"/console/login")
			authorize := resp.Header.Get("Location")
			resp = getNoRedirect(t, b, authorize)
			callback, _ := url.Parse(resp.Header.Get("Location"))
			// The issuer sends the browser to the public URL; this test's
			// server stands for it.
			callback.Scheme, callback.Host = "http", strings.TrimPrefix(c.srv.URL, "http://")
			resp = send(t, http.MethodGet, callback.String(), loginCookies(t, b, c))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("callback = %d", resp.StatusCode)
			}
			var session *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == auth.SessionCookie {
					session = ck
				}
			}
			if session == nil {
				t.Fatalf("the callback set no session cookie: %v", resp.Header["Set-Cookie"])
			}
			if !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/console" ||
				session.Secure != tc.secure || session.MaxAge != 7200 || session.Domain != "" {
				t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Lax, Path=/console, Secure=%v, Max-Age=7200, host-only",
					session, tc.secure)
			}
			if strings.Contains(session.Value, "acme") || strings.Contains(session.Value, "user-1") {
				t.Error("the session cookie shows its contents")
			}
		})
	}
}

// getNoRedirect GETs url with b's jar and transport, not following redirects.
func getNoRedirect(t *testing.T, b *browser, u string) *http.Response {
	t.Helper()
	nb := *b.Client
	nb.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	resp, err := nb.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// send makes one request with just these cookies and headers (name,
// value, ...), following no redirect.
func send(t *testing.T, method, u string, cookies []*http.Cookie, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, u, nil)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func loginCookies(t *testing.T, b *browser, c *console) []*http.Cookie {
	t.Helper()
	u, _ := url.Parse(c.srv.URL + "/console/callback")
	return b.Jar.Cookies(u)
}

// startSignIn runs the flow up to the issuer's redirect back to the
// callback and returns that callback URL, unvisited.
func startSignIn(t *testing.T, c *console, b *browser) *url.URL {
	t.Helper()
	resp := getNoRedirect(t, b, c.srv.URL+"/console/login")
	resp = getNoRedirect(t, b, resp.Header.Get("Location"))
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || u.Path != "/console/callback" {
		t.Fatalf("the issuer sent the browser to %q", resp.Header.Get("Location"))
	}
	return u
}

func TestCallbackRefusals(t *testing.T) {
	is := authtest.New(t)
	c := newConsole(t, is, nil)
	problem := func(t *testing.T, b *browser, u string, want int) {
		t.Helper()
		resp := getNoRedirect(t, b, u)
		if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s = %d %s, want %d problem+json", u, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == auth.SessionCookie {
				t.Errorf("a refused callback set a session cookie")
			}
		}
		if status, _ := b.get(t, c, "/console/"); status == http.StatusOK && len(b.redirects()) == 0 {
			t.Errorf("the front page answered without signing in")
		}
	}
	with := func(u *url.URL, k, v string) string {
		q := u.Query()
		q.Set(k, v)
		cp := *u
		cp.RawQuery = q.Encode()
		return cp.String()
	}

	t.Run("another state", func(t *testing.T) {
		b := newBrowser(t, c)
		cb := startSignIn(t, c, b)
		problem(t, b, with(cb, "state", "forged"), http.StatusBadRequest)
	})
	t.Run("no login cookie", func(t *testing.T) {
		b := newBrowser(t, c)
		cb := startSignIn(t, c, b)
		problem(t, newBrowser(t, c), cb.String(), http.StatusBadRequest)
	})
	t.Run("a forged code", func(t *testing.T) {
		b := newBrowser(t, c)
		cb := startSignIn(t, c, b)
		problem(t, b, with(cb, "code", "forged"), http.StatusUnauthorized)
	})
	t.Run("a code redeemed twice", func(t *testing.T) {
		b := newBrowser(t, c)
		cb := startSignIn(t, c, b)
		before := loginCookies(t, b, c)
		if resp := getNoRedirect(t, b, cb.String()); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first callback = %d", resp.StatusCode)
		}
		// Replay with the login cookie the first callback consumed.
		if resp := send(t, http.MethodGet, cb.String(), before); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("replayed callback = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("another nonce", func(t *testing.T) {
		is.TamperIDTokens(func(claims map[string]any) { claims["nonce"] = "replayed" })
		t.Cleanup(func() { is.TamperIDTokens(nil) })
		b := newBrowser(t, c)
		problem(t, b, startSignIn(t, c, b).String(), http.StatusUnauthorized)
	})
	t.Run("an ID token for another client", func(t *testing.T) {
		is.TamperIDTokens(func(claims map[string]any) { claims["aud"] = "another-client" })
		t.Cleanup(func() { is.TamperIDTokens(nil) })
		b := newBrowser(t, c)
		problem(t, b, startSignIn(t, c, b).String(), http.StatusUnauthorized)
	})
	t.Run("an ID token of another subject", func(t *testing.T) {
		is.TamperIDTokens(func(claims map[string]any) { claims["sub"] = "mallory" })
		t.Cleanup(func() { is.TamperIDTokens(nil) })
		b := newBrowser(t, c)
		problem(t, b, startSignIn(t, c, b).String(), http.StatusUnauthorized)
	})
	t.Run("an access token without a tenant", func(t *testing.T) {
		is.SignIn(authtest.User{Subject: "user-1", Tenant: "", Scopes: []string{"tracktrace.read"}})
		t.Cleanup(func() {
			is.SignIn(authtest.User{Subject: "user-1", Tenant: "acme", Scopes: []string{"tracktrace.read"}})
		})
		b := newBrowser(t, c)
		problem(t, b, startSignIn(t, c, b).String(), http.StatusUnauthorized)
	})
	t.Run("the issuer refuses", func(t *testing.T) {
		b := newBrowser(t, c)
		cb := startSignIn(t, c, b)
		q := url.Values{"state": {cb.Query().Get("state")}, "error": {"access_denied"}}
		cb.RawQuery = q.Encode()
		problem(t, b, cb.String(), http.StatusUnauthorized)
	})
	t.Run("an expired sign-in", func(t *testing.T) {
		b := newBrowser(t, c)
		cb := startSignIn(t, c, b)
		c.clock.Advance(11 * time.Minute)
		t.Cleanup(func() { c.clock.Advance(-11 * time.Minute) })
		problem(t, b, cb.String(), http.StatusBadRequest)
	})
}

func TestLogoutEndsTheSession(t *testing.T) {
	is := authtest.New(t)
	c := newConsole(t, is, nil)
	b := newBrowser(t, c)
	h := signIn(t, c, b)
	old := sessionCookie(t, c, b)

	resp := b.post(t, c, "/console/logout", url.Values{auth.CSRFField: {h.CSRF}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	end, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(end.String(), is.URL+"/logout?") || end.Query().Get("client_id") != clientID ||
		end.Query().Get("post_logout_redirect_uri") != c.srv.URL+"/console/signed-out" {
		t.Errorf("logout sent the browser to %v, want the issuer's end-session endpoint", end)
	}
	if got := c.auth.SignOutOrigin(); got != end.Scheme+"://"+end.Host {
		t.Errorf("SignOutOrigin = %q, want the origin logout sends the browser to, %s://%s", got, end.Scheme, end.Host)
	}
	var cleared bool
	for _, ck := range resp.Cookies() {
		cleared = cleared || (ck.Name == auth.SessionCookie && ck.MaxAge < 0 && ck.Path == "/console")
	}
	if !cleared {
		t.Errorf("logout did not delete the session cookie: %v", resp.Header["Set-Cookie"])
	}
	// The issuer ends its session and sends the browser to the signed-out page.
	out, err := b.Get(end.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if out.Request.URL.Path != "/console/signed-out" || !strings.Contains(string(page), "Signed out") || len(is.Logouts()) != 1 {
		t.Errorf("after the issuer's logout: %v %q, issuer logouts %v", out.Request.URL, page, is.Logouts())
	}

	// Replaying the old cookie is refused, for reading and for changing.
	r1 := send(t, http.MethodGet, c.srv.URL+"/console/", []*http.Cookie{old})
	if r1.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r1.Header.Get("Location"), "/console/login") {
		t.Errorf("GET with the logged-out cookie = %d → %q, want a redirect to sign in", r1.StatusCode, r1.Header.Get("Location"))
	}
	r2 := send(t, http.MethodPost, c.srv.URL+"/console/entities/acme-1/notes", []*http.Cookie{old}, auth.CSRFHeader, h.CSRF)
	if r2.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST with the logged-out cookie = %d, want 401", r2.StatusCode)
	}
}

func TestStateChangesNeedTheCSRFToken(t *testing.T) {
	is := authtest.New(t)
	c := newConsole(t, is, nil)
	b := newBrowser(t, c)
	h := signIn(t, c, b)
	other := signIn(t, c, newBrowser(t, c))
	const path = "/console/entities/acme-1/notes"

	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
		want   int
	}{
		{"no token", nil, nil, http.StatusForbidden},
		{"a wrong token", url.Values{auth.CSRFField: {"forged"}}, nil, http.StatusForbidden},
		{"another session's token", nil, []string{auth.CSRFHeader, other.CSRF}, http.StatusForbidden},
		{"the token in the form", url.Values{auth.CSRFField: {h.CSRF}}, nil, http.StatusNoContent},
		{"the token in the header", nil, []string{auth.CSRFHeader, h.CSRF}, http.StatusNoContent},
		{"cross-site, with the token", url.Values{auth.CSRFField: {h.CSRF}}, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"another origin, with the token", nil, []string{auth.CSRFHeader, h.CSRF, "Origin", "https://evil.example"}, http.StatusForbidden},
		{"same origin, with the token", nil, []string{auth.CSRFHeader, h.CSRF, "Sec-Fetch-Site", "same-origin", "Origin", c.srv.URL}, http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.post(t, c, path, tc.form, tc.header...)
			if resp.StatusCode != tc.want {
				t.Fatalf("POST = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusForbidden && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type = %q, want a problem", resp.Header.Get("Content-Type"))
			}
		})
	}
	// Logout is a state change like any other.
	if resp := b.post(t, c, "/console/logout", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the token = %d, want 403", resp.StatusCode)
	}
	if status, _ := b.get(t, c, "/console/"); status != http.StatusOK {
		t.Errorf("the session ended on a refused logout")
	}
}

func TestAnotherTenantIsNotReachable(t *testing.T) {
	is := authtest.New(t)
	is.SignIn(authtest.User{Subject: "alice", Tenant: "acme", Scopes: []string{"tracktrace.read"}})
	c := newConsole(t, is, nil)
	b := newBrowser(t, c)
	signIn(t, c, b)
	if status, body := b.get(t, c, "/console/entities/acme-1"); status != http.StatusOK || body != "acme-1" {
		t.Errorf("own entity = %d %q", status, body)
	}
	// The tenant is the token's: no header or parameter picks another.
	for _, header := range [][]string{nil, {"X-Tenant-ID", "globex"}} {
		if status, _ := b.get(t, c, "/console/entities/globex-1?tenant=globex", header...); status != http.StatusNotFound {
			t.Errorf("another tenant's entity (headers %v) = %d, want 404", header, status)
		}
	}
}

func TestTamperedOrExpiredSessionsAreRefused(t *testing.T) {
	is := authtest.New(t)
	c := newConsole(t, is, nil)
	b := newBrowser(t, c)
	signIn(t, c, b)
	ck := sessionCookie(t, c, b)

	get := func(cookie *http.Cookie) int {
		// A script, not a navigation: 401, no redirect.
		return send(t, http.MethodGet, c.srv.URL+"/console/", []*http.Cookie{cookie}, "Accept", "application/json").StatusCode
	}
	if got := get(ck); got != http.StatusOK {
		t.Fatalf("valid cookie = %d", got)
	}
	flipped := *ck
	flipped.Value = ck.Value[:10] + string(ck.Value[10]^1) + ck.Value[11:]
	if got := get(&flipped); got != http.StatusUnauthorized {
		t.Errorf("tampered cookie = %d, want 401", got)
	}
	c.clock.Advance(auth.DefaultSessionLifetime)
	if got := get(ck); got != http.StatusUnauthorized {
		t.Errorf("expired session = %d, want 401", got)
	}

	// A cookie sealed with another key is nobody's session.
	c2 := newConsole(t, is, func(o *auth.Options) { o.SessionKey = []byte("another key, another console....") })
	if resp := send(t, http.MethodGet, c2.srv.URL+"/console/", []*http.Cookie{ck}, "Accept", "application/json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another key's cookie = %d, want 401", resp.StatusCode)
	}
}

func TestEmbeddedMode(t *testing.T) {
	c := newConsole(t, nil, nil)
	if !c.auth.Embedded() || c.auth.Mode() != auth.ModeEmbedded {
		t.Fatal("no authority, yet not the embedded mode")
	}
	b := newBrowser(t, c)
	h := signIn(t, c, b)
	want := tracking.Principal{Tenant: "default", Subject: "anonymous", Scopes: []string{}, Unrestricted: true}
	if !slicesEqualPrincipal(h.Principal, want) {
		t.Errorf("principal = %+v, want the API's anonymous one %+v", h.Principal, want)
	}
	if len(b.redirects()) != 0 {
		t.Errorf("the embedded console redirected: %v", b.redirects())
	}
	if o := c.auth.SignOutOrigin(); o != "" {
		t.Errorf("SignOutOrigin = %q, want none: the embedded logout stays on the console", o)
	}
	if resp := b.post(t, c, "/console/entities/acme-1/notes", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("CSRF-less POST = %d, want 403", resp.StatusCode)
	}
	if resp := b.post(t, c, "/console/entities/acme-1/notes", url.Values{auth.CSRFField: {h.CSRF}}); resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST with the token = %d, want 204", resp.StatusCode)
	}
	if resp := getNoRedirect(t, b, c.srv.URL+"/console/login"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Errorf("login = %d → %q, want back to the console", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestAuthorityWithoutClient(t *testing.T) {
	is := authtest.New(t)
	c := newConsole(t, is, func(o *auth.Options) { o.ClientID = "" })
	if c.auth.Mode() != auth.ModeUnconfigured {
		t.Fatalf("mode = %v", c.auth.Mode())
	}
	for _, path := range []string{"/console/", "/console/login"} {
		resp := getNoRedirect(t, newBrowser(t, c), c.srv.URL+path)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s = %d %s, want a 503 problem", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    auth.Options
	}{
		{"short key", auth.Options{SessionKey: []byte("short")}},
		{"scopes without openid", auth.Options{SessionKey: sessionKey, Scopes: []string{"tracktrace.read"}}},
		{"public URL with a path", auth.Options{SessionKey: sessionKey, PublicURL: "https://x.example/ops"}},
		{"bad tenant", auth.Options{SessionKey: sessionKey, Tenant: "a b"}},
	} {
		if _, err := auth.New(tc.o); err == nil {
			t.Errorf("%s: New accepted it", tc.name)
		}
	}
}
