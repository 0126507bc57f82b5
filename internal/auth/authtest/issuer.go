// Package authtest is an OpenID Connect issuer for tests: a TLS (or, with
// NewHTTP, a plain http) server with a discovery document, a key set, an
// authorization endpoint that signs in whichever user the test chose (no
// login form), a token endpoint for the authorization code grant with PKCE
// (S256 only), and an end-session endpoint. Its access tokens are what
// tracktrace's API verifies (audience Audience, tenant in tenant_id, scopes
// in scope); its ID tokens are issued to the registered client.
//
// It checks what a real issuer checks of a client (client id and secret,
// registered redirect URI, PKCE verifier, single-use codes), so that a
// client passing against it does the protocol's part right.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Audience is the audience of the issuer's access tokens.
const Audience = "api://tracktrace"

// keyID names the issuer's one signing key.
const keyID = "authtest-1"

// User is who the authorization endpoint signs in.
type User struct {
	Subject string
	Tenant  string   // the tenant_id claim of the access token
	Scopes  []string // the scope claim of the access token
}

// Client is a registered OAuth client.
type Client struct {
	ID           string
	Secret       string // "" for a public client
	RedirectURIs []string
	// PostLogoutRedirectURIs are where the end-session endpoint may send
	// the browser back to.
	PostLogoutRedirectURIs []string
}

// grant is an issued, not yet redeemed, authorization code.
type grant struct {
	client, redirectURI, nonce, challenge string
	user                                  User
	issued                                time.Time
}

// Issuer is a running test issuer. Its fields are set by New; change the
// behaviour through its methods, which are safe for concurrent use.
type Issuer struct {
	// URL is the issuer identifier, and Authentication.Authority.
	URL string

	srv *httptest.Server
	key *rsa.PrivateKey
	jwk json.RawMessage

	mu       sync.Mutex
	clients  map[string]Client
	user     User
	codes    map[string]grant
	idClaims func(map[string]any)
	logouts  []url.Values
}

// New starts an issuer, closed when t ends. Until SignIn says otherwise,
// the authorization endpoint signs in subject "user-1" of tenant "acme"
// with the read and write scopes.
func New(t testing.TB) *Issuer {
	t.Helper()
	return start(t, httptest.NewTLSServer)
}

// NewHTTP starts an issuer as New does, over plain http: for a whole
// tracktrace server under test, whose verifier fetches the discovery
// document and keys with the default HTTP client (which trusts no test
// certificate) and so needs Authentication.RequireHttpsMetadata off.
func NewHTTP(t testing.TB) *Issuer {
	t.Helper()
	return start(t, httptest.NewServer)
}

// start starts an issuer on the server serve makes of its handler.
func start(t testing.TB, serve func(http.Handler) *httptest.Server) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{jwk.KeyIDKey: keyID, jwk.KeyUsageKey: "sig", jwk.AlgorithmKey: jwa.RS256()} {
		if err := pub.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{key: key, jwk: raw, clients: map[string]Client{}, codes: map[string]grant{},
		user: User{Subject: "user-1", Tenant: "acme", Scopes: []string{"tracktrace.read", "tracktrace.write"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", is.discovery)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write([]byte(`{"keys":[` + string(is.jwk) + `]}`))
	})
	mux.HandleFunc("GET /authorize", is.authorize)
	mux.HandleFunc("POST /token", is.token)
	mux.HandleFunc("GET /logout", is.endSession)
	is.srv = serve(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

// HTTPClient returns a client that trusts the issuer's certificate (and
// nothing else's).
func (is *Issuer) HTTPClient() *http.Client { return is.srv.Client() }

// Transport returns a transport that trusts the issuer's certificate, for
// clients that also need a cookie jar or their own redirect policy.
func (is *Issuer) Transport() http.RoundTripper { return is.srv.Client().Transport }

// Register registers (or replaces) a client.
func (is *Issuer) Register(c Client) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.clients[c.ID] = c
}

// SignIn makes u the user the authorization endpoint signs in from now on.
func (is *Issuer) SignIn(u User) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.user = u
}

// TamperIDTokens makes the token endpoint pass every ID token's claims
// through f before signing them (nil stops it): for tests of a client's
// checks.
func (is *Issuer) TamperIDTokens(f func(claims map[string]any)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.idClaims = f
}

// Logouts returns the query of every request the end-session endpoint got.
func (is *Issuer) Logouts() []url.Values {
	is.mu.Lock()
	defer is.mu.Unlock()
	return slices.Clone(is.logouts)
}

// AccessToken returns an access token for u valid for ttl, as the token
// endpoint issues them.
func (is *Issuer) AccessToken(t testing.TB, u User, ttl time.Duration) string {
	t.Helper()
	tok, err := is.accessToken(u, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (is *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                is.URL,
		"jwks_uri":                              is.URL + "/jwks",
		"authorization_endpoint":                is.URL + "/authorize",
		"token_endpoint":                        is.URL + "/token",
		"end_session_endpoint":                  is.URL + "/logout",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
	})
}

// authorize signs the configured user in and sends the browser back to the
// client with a code. Requests it cannot send back (unknown client or
// redirect URI) are answered 400 here, as RFC 6749 §4.1.2.1 says.
func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	is.mu.Lock()
	client, known := is.clients[q.Get("client_id")]
	user := is.user
	is.mu.Unlock()
	redirect := q.Get("redirect_uri")
	if !known || !slices.Contains(client.RedirectURIs, redirect) {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		u, _ := url.Parse(redirect)
		if s := q.Get("state"); s != "" {
			params.Set("state", s)
		}
		u.RawQuery = params.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		back(url.Values{"error": {"invalid_scope"}})
		return
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE with S256 is required"}})
		return
	}
	code := rand.Text()
	is.mu.Lock()
	is.codes[code] = grant{client: client.ID, redirectURI: redirect, nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), user: user, issued: time.Now()}
	is.mu.Unlock()
	back(url.Values{"code": {code}})
}

// token redeems an authorization code, once.
func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	is.mu.Lock()
	client, known := is.clients[id]
	code := r.PostForm.Get("code")
	g, issued := is.codes[code]
	delete(is.codes, code)
	tamper := is.idClaims
	is.mu.Unlock()
	switch {
	case !known || subtle.ConstantTimeCompare([]byte(secret), []byte(client.Secret)) != 1:
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	case r.PostForm.Get("grant_type") != "authorization_code":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	case !issued || g.client != id || g.redirectURI != r.PostForm.Get("redirect_uri") || time.Since(g.issued) > time.Minute:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	access, err := is.accessToken(g.user, time.Hour)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": is.URL, "aud": id, "sub": g.user.Subject, "nonce": g.nonce,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "auth_time": now.Unix()}
	if tamper != nil {
		tamper(claims)
	}
	idToken, err := is.sign(claims, "JWT")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "id_token": idToken,
		"token_type": "Bearer", "expires_in": 3600, "scope": strings.Join(append([]string{"openid"}, g.user.Scopes...), " ")})
}

// endSession records the logout and sends the browser back when it may.
func (is *Issuer) endSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	is.mu.Lock()
	is.logouts = append(is.logouts, q)
	client := is.clients[q.Get("client_id")]
	is.mu.Unlock()
	if back := q.Get("post_logout_redirect_uri"); back != "" && slices.Contains(client.PostLogoutRedirectURIs, back) {
		http.Redirect(w, r, back, http.StatusFound)
		return
	}
	_, _ = w.Write([]byte("signed out\n"))
}

func (is *Issuer) accessToken(u User, ttl time.Duration) (string, error) {
	now := time.Now()
	return is.sign(map[string]any{"iss": is.URL, "aud": Audience, "sub": u.Subject, "tenant_id": u.Tenant,
		"scope": strings.Join(u.Scopes, " "), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix()}, "at+jwt")
}

// sign signs claims with the issuer's key.
func (is *Issuer) sign(claims map[string]any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, keyID); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return "", err
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), is.key, jws.WithProtectedHeaders(h)))
	return string(tok), err
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
