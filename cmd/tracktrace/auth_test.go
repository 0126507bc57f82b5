package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oidcIssuer is a local OpenID provider: discovery and a JWKS with one RSA key.
type oidcIssuer struct {
	*httptest.Server
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &oidcIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": b64.EncodeToString(key.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	is.Server = httptest.NewServer(mux)
	t.Cleanup(is.Close)
	return is
}

// token signs an RS256 token for tenant with the given scopes.
func (is *oidcIssuer) token(t *testing.T, sub, tenant, scope string, expires time.Duration) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	now := time.Now()
	p, _ := json.Marshal(map[string]any{"iss": is.URL, "aud": "tracktrace-api", "sub": sub, "tenant_id": tenant,
		"scope": scope, "iat": now.Unix(), "exp": now.Add(expires).Unix()})
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// With an identity provider: tokens are required, scopes are enforced, and
// no tenant reads, lists, changes or measures another tenant's data.
func TestAuthenticationAndTenantIsolation(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	srv := startServer(t, []string{"EventStore__ConnectionString=file:" + filepath.Join(t.TempDir(), "t.db"),
		"Authentication__Authority=" + is.URL, "Authentication__Audience=tracktrace-api",
		"Authentication__RequireHttpsMetadata=false"})
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	const rw, ro, admin = "tracktrace.read tracktrace.write", "tracktrace.read", "tracktrace.read tracktrace.write tracktrace.admin"
	aWrite := bearer(is.token(t, "alice", "acme", rw, time.Hour))
	aRead := bearer(is.token(t, "auditor", "acme", ro, time.Hour))
	bAdmin := bearer(is.token(t, "bob", "globex", admin, time.Hour))
	operator := bearer(is.token(t, "sre", "ops", "tracktrace.operator", time.Hour))
	expired := bearer(is.token(t, "alice", "acme", rw, -time.Hour))

	register := map[string]any{"entityType": "shipment", "events": []any{
		ev("EntityRegistered", 0, `{"reference":"A-secret"}`),
		ev("OperationStarted", time.Minute, `{"operation":"loading","operationId":"o1"}`),
		ev("OperationCompleted", 2*time.Minute, `{"operation":"loading","operationId":"o1","outcome":"succeeded"}`)}}
	validate := openAPIValidator(t)
	mustStatus := func(want int, r response) response {
		t.Helper()
		if r.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.Body)
		}
		validate(t, r) // 401s, 403s and the rest, against the OpenAPI document
		return r
	}

	// 401s, with a challenge and no hint of why.
	for name, h := range map[string][]string{"none": nil, "garbage": bearer("not.a.token"), "expired": expired,
		"basic": {"Authorization", "Basic YWxpY2U6cGFzcw=="}} {
		r := srv.do(t, "GET", "/api/v1/entities/A-1", nil, h...)
		if r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s token: %d %v", name, r.StatusCode, r.Header)
		}
		validate(t, r)
	}
	// Health and docs stay open.
	mustStatus(200, srv.do(t, "GET", "/health/live", nil))
	mustStatus(200, srv.do(t, "GET", "/openapi.json", nil))

	// Tenant acme records; the principal is the token's subject.
	mustStatus(201, srv.do(t, "POST", "/api/v1/entities/A-1/events", register, aWrite...))
	var events struct {
		Events []struct{ Metadata struct{ Principal string } }
	}
	mustStatus(200, srv.do(t, "GET", "/api/v1/entities/A-1/events", nil, aRead...)).JSON(t, &events)
	if events.Events[0].Metadata.Principal != "alice" {
		t.Errorf("principal recorded as %q, want alice", events.Events[0].Metadata.Principal)
	}
	// Read-only cannot write; the projections, which span every tenant, are
	// the operator's: a tenant's admin neither sees nor rebuilds them.
	mustStatus(403, srv.do(t, "POST", "/api/v1/entities/A-2/events", register, aRead...))
	mustStatus(403, srv.do(t, "POST", "/api/v1/events/batch", map[string]any{"items": []any{}}, aRead...))
	mustStatus(403, srv.do(t, "GET", "/api/v1/projections", nil, aWrite...))
	mustStatus(403, srv.do(t, "POST", "/api/v1/projections/timeline/rebuild", nil, aWrite...))
	mustStatus(403, srv.do(t, "GET", "/api/v1/projections", nil, bAdmin...))
	mustStatus(403, srv.do(t, "POST", "/api/v1/projections/entities/rebuild", nil, bAdmin...))
	mustStatus(200, srv.do(t, "GET", "/api/v1/projections", nil, operator...))
	// acme's reads warm the cache and the projections.
	mustStatus(200, srv.do(t, "GET", "/api/v1/entities/A-1?minVersion=3", nil, aRead...))
	mustStatus(200, srv.do(t, "GET", "/api/v1/entities/A-1/timeline?minVersion=3", nil, aRead...))
	waitProjections(t, srv, operator...)

	// globex sees nothing of acme's, even naming acme in X-Tenant-ID.
	for _, path := range []string{"/api/v1/entities/A-1", "/api/v1/entities/A-1?consistent=true",
		"/api/v1/entities/A-1/events", "/api/v1/entities/A-1/timeline"} {
		mustStatus(404, srv.do(t, "GET", path, nil, append(bAdmin, "X-Tenant-ID", "acme")...))
	}
	if r := mustStatus(200, srv.do(t, "GET", "/api/v1/entities", nil, bAdmin...)); strings.Contains(string(r.Body), "A-1") {
		t.Errorf("globex's list holds acme's entity: %s", r.Body)
	}
	from, to := time.Now().Add(-48*time.Hour).UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339)
	if r := mustStatus(200, srv.do(t, "GET", "/api/v1/metrics/operational?from="+from+"&to="+to, nil, bAdmin...)); strings.Contains(string(r.Body), `"count"`) {
		t.Errorf("globex's metrics count acme's operations: %s", r.Body)
	}
	if r := mustStatus(200, srv.do(t, "GET", "/api/v1/metrics/operational?from="+from+"&to="+to, nil, aRead...)); !strings.Contains(string(r.Body), `"count":1`) {
		t.Errorf("acme's metrics lack its operation: %s", r.Body)
	}
	// globex, even as admin, cannot erase acme's entity.
	mustStatus(404, srv.do(t, "DELETE", "/api/v1/entities/A-1", nil, bAdmin...))
	mustStatus(200, srv.do(t, "GET", "/api/v1/entities/A-1?consistent=true", nil, aRead...))
	// acme's writer is no admin: no erasure either.
	mustStatus(403, srv.do(t, "DELETE", "/api/v1/entities/A-1", nil, aWrite...))
	// globex writing "A-1" makes its own entity; acme's is untouched.
	mustStatus(201, srv.do(t, "POST", "/api/v1/entities/A-1/events", map[string]any{"entityType": "vehicle",
		"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, bAdmin...))
	var st struct {
		EntityType string
		Version    int64
	}
	mustStatus(200, srv.do(t, "GET", "/api/v1/entities/A-1?consistent=true", nil, aRead...)).JSON(t, &st)
	if st.EntityType != "shipment" || st.Version != 3 {
		t.Errorf("acme's entity after globex wrote its own A-1: %+v", st)
	}
	mustStatus(409, srv.do(t, "POST", "/api/v1/entities/A-1/events", map[string]any{"expectedVersion": 3,
		"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, bAdmin...))
}
