package auth

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/tracking"
)

func TestVerifyAcceptsValidTokens(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)

	tests := []struct {
		name       string
		alg, key   string
		kid        string
		claims     map[string]any
		wantScopes []string
	}{
		{"RS256 scope string", "RS256", "rsa-1", "rsa-1", is.claims(), []string{tracking.ScopeRead, tracking.ScopeWrite}},
		{"ES256 scp array", "ES256", "ec-1", "ec-1", is.with(func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = []string{"tracktrace.admin", "tracktrace.read", "profile"}
		}), []string{tracking.ScopeAdmin, tracking.ScopeRead}},
		{"EdDSA scp string", "EdDSA", "ed-1", "ed-1", is.with(func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = "tracktrace.write"
		}), []string{tracking.ScopeWrite}},
		{"RS256 aud array", "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			c["aud"] = []string{"other", testAudience}
		}), []string{tracking.ScopeRead, tracking.ScopeWrite}},
		{"scope and scp merged", "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			c["scope"] = "tracktrace.read"
			c["scp"] = []string{"tracktrace.admin"}
		}), []string{tracking.ScopeAdmin, tracking.ScopeRead}},
		{"no scopes", "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			delete(c, "scope")
		}), []string{}},
		{"only foreign scopes", "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			c["scope"] = "openid tracktrace.READ tracktrace.read.all"
		}), []string{}},
		{"expired within skew", "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			c["exp"] = is.clock.Now().Unix() - 30
		}), []string{tracking.ScopeRead, tracking.ScopeWrite}},
		{"nbf within skew, no iat", "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			c["nbf"] = is.clock.Now().Unix() + 30
			delete(c, "iat")
		}), []string{tracking.ScopeRead, tracking.ScopeWrite}},
		{"fractional exp", "ES256", "ec-1", "ec-1", is.with(func(c map[string]any) {
			c["exp"] = float64(is.clock.Now().Unix()) + 10.5
		}), []string{tracking.ScopeRead, tracking.ScopeWrite}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), is.token(t, tt.alg, tt.key, tt.kid, tt.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "user-42" || p.Tenant != "acme" {
				t.Errorf("principal = %q/%q, want user-42/acme", p.Subject, p.Tenant)
			}
			if p.Scopes == nil {
				t.Error("Scopes is nil")
			}
			if got := p.Scopes; !slices.Equal(got, tt.wantScopes) {
				t.Errorf("scopes = %v, want %v", got, tt.wantScopes)
			}
		})
	}
}

func TestVerifyCustomTenantClaimAndAlgorithms(t *testing.T) {
	is := newTestIssuer(t)
	is.setKeys(publicJWK(t, &is.rsa1.PublicKey, "rsa-1", "")) // no alg: RS and PS both fit
	v := is.verifier(t, func(o *Options) {
		o.TenantClaim = "org"
		o.Algorithms = []string{"PS256"}
	})
	c := is.with(func(c map[string]any) { delete(c, "tenant_id"); c["org"] = "Org_1.eu-west" })
	p, err := v.Verify(t.Context(), is.token(t, "PS256", "rsa-1", "rsa-1", c))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Tenant != "Org_1.eu-west" {
		t.Errorf("tenant = %q", p.Tenant)
	}
	if _, err := v.Verify(t.Context(), is.token(t, "RS256", "rsa-1", "rsa-1", c)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("RS256 with only PS256 allowed: err = %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	ctx := t.Context()

	old := is.token(t, "RS256", "rsa-1", "rsa-1", is.claims())
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("old key before rotation: %v", err)
	}

	// The issuer rotates to rsa-2 and drops rsa-1.
	is.setKeys(publicJWK(t, &is.rsa2.PublicKey, "rsa-2", "RS256"), publicJWK(t, &is.ec256.PublicKey, "ec-1", "ES256"))
	before := is.jwksFetches.Load()
	fresh := is.token(t, "RS256", "rsa-2", "rsa-2", is.claims())
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if got := is.jwksFetches.Load() - before; got != 1 {
		t.Errorf("JWKS fetches for the new kid = %d, want 1", got)
	}
	if _, err := v.Verify(ctx, old); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("removed key after refresh: err = %v, want ErrUnauthenticated", err)
	}
	// A token whose kid is rsa-2 but which was signed with the removed key.
	forged := is.token(t, "RS256", "rsa-1", "rsa-2", is.claims())
	if _, err := v.Verify(ctx, forged); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("removed key under the new kid: err = %v", err)
	}
	// The new key keeps working, from the cache.
	before = is.jwksFetches.Load()
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("new key again: %v", err)
	}
	if got := is.jwksFetches.Load() - before; got != 0 {
		t.Errorf("JWKS fetches for a cached kid = %d, want 0", got)
	}
}

func TestUnknownKidFetchStorm(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, func(o *Options) { o.MinRefreshInterval = time.Minute })
	if got := is.jwksFetches.Load(); got != 1 {
		t.Fatalf("JWKS fetches at construction = %d, want 1", got)
	}
	claims := is.claims()
	const tokens, workers = 1000, 32
	// One signed token supplies payload and signature; only the header's
	// random kid varies (the signature is never reached).
	parts := strings.Split(is.token(t, "RS256", "rsa-1", "rsa-1", claims), ".")
	toks := make([]string, tokens)
	for i := range toks {
		kid := make([]byte, 12)
		_, _ = rand.Read(kid)
		h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": b64.EncodeToString(kid)})
		toks[i] = b64.EncodeToString(h) + "." + parts[1] + "." + parts[2]
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []error
	next := make(chan string)
	for range workers {
		wg.Go(func() {
			for tok := range next {
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrUnauthenticated) {
					mu.Lock()
					bad = append(bad, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, tok := range toks {
		next <- tok
	}
	close(next)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d unknown-kid tokens not rejected with ErrUnauthenticated, first: %v", len(bad), bad[0])
	}
	if got := is.jwksFetches.Load(); got > 2 {
		t.Fatalf("JWKS fetches = %d, want at most 2", got)
	}
	// Known keys still verify during the storm's aftermath, from the cache.
	if _, err := v.Verify(t.Context(), is.token(t, "ES256", "ec-1", "ec-1", claims)); err != nil {
		t.Fatalf("valid token after storm: %v", err)
	}
	// Once the interval has passed, an unknown kid may cause one more fetch.
	is.clock.Advance(time.Minute)
	for range 10 {
		_, _ = v.Verify(t.Context(), toks[0])
	}
	if got := is.jwksFetches.Load(); got > 3 {
		t.Fatalf("JWKS fetches after the interval = %d, want at most 3", got)
	}
}

func TestKeysTTLRefreshInBackground(t *testing.T) {
	// The background refetch runs on the wall clock (it is the jwk.Cache's
	// own), so the TTL is short and real. Unknown-kid refetches are limited
	// to one an hour on the fake clock, which never moves here: a key can
	// only become known through the background refetch.
	is := newTestIssuer(t)
	v := is.verifier(t, func(o *Options) {
		o.KeysTTL = time.Second
		o.MinRefreshInterval = time.Hour
	})
	tok := func(kid string) string { return is.token(t, "RS256", kid, kid, is.claims()) }
	if _, err := v.Verify(t.Context(), tok("rsa-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok("rsa-2")); !errors.Is(err, ErrUnauthenticated) { // spends the one unknown-kid refetch
		t.Fatalf("unpublished key: err = %v", err)
	}

	// The issuer adds rsa-2; within a TTL or two it becomes known.
	is.setKeys(publicJWK(t, &is.rsa1.PublicKey, "rsa-1", "RS256"), publicJWK(t, &is.rsa2.PublicKey, "rsa-2", "RS256"))
	waitFor(t, func() bool {
		_, err := v.Verify(t.Context(), tok("rsa-2"))
		return err == nil
	})

	// A failing refetch keeps the keys held, and verifications do not
	// cause fetches of their own.
	is.mu.Lock()
	is.jwksOK = false
	is.mu.Unlock()
	failedFrom := is.jwksFetches.Load()
	waitFor(t, func() bool { return is.jwksFetches.Load() > failedFrom })
	before := is.jwksFetches.Load()
	for range 20 {
		for _, kid := range []string{"rsa-1", "rsa-2"} {
			if _, err := v.Verify(t.Context(), tok(kid)); err != nil {
				t.Fatalf("keys must survive a failed refetch: %v", err)
			}
		}
	}
	if got := is.jwksFetches.Load() - before; got > 2 {
		t.Fatalf("fetches during 40 verifications = %d, want at most the background's", got)
	}
}

func TestVerifyHonoursContextWhileFetching(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	gate := make(chan struct{})
	is.mu.Lock()
	is.jwksGate = gate
	is.mu.Unlock()
	defer close(gate)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, is.token(t, "RS256", "rsa-2", "rsa-2", is.claims()))
	if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnauthenticated and DeadlineExceeded", err)
	}
}

func TestCloseStopsFetching(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	before := is.jwksFetches.Load()
	if _, err := v.Verify(t.Context(), is.token(t, "RS256", "rsa-1", "unknown", is.claims())); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("unknown kid after Close: %v", err)
	}
	if _, err := v.Verify(t.Context(), is.token(t, "RS256", "rsa-1", "rsa-1", is.claims())); err != nil {
		t.Fatalf("cached key after Close: %v", err)
	}
	if got := is.jwksFetches.Load() - before; got != 0 {
		t.Fatalf("fetches after Close = %d", got)
	}
}

func TestConcurrentVerify(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	good := []string{
		is.token(t, "RS256", "rsa-1", "rsa-1", is.claims()),
		is.token(t, "ES256", "ec-1", "ec-1", is.claims()),
		is.token(t, "EdDSA", "ed-1", "ed-1", is.claims()),
	}
	bad := is.token(t, "RS256", "rsa-2", "rsa-2", is.claims())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				if _, err := v.Verify(t.Context(), good[(i+j)%len(good)]); err != nil {
					errs <- err
				}
				if _, err := v.Verify(t.Context(), bad); err == nil {
					errs <- errors.New("token from an unpublished key accepted")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestHostileTokens(t *testing.T) {
	is := newTestIssuer(t)
	// Also publish a symmetric key and a too-small RSA key: neither may
	// ever verify anything.
	is.setKeys(
		publicJWK(t, &is.rsa1.PublicKey, "rsa-1", "RS256"),
		publicJWK(t, &is.ec256.PublicKey, "ec-1", "ES256"),
		publicJWK(t, &is.ec384.PublicKey, "ec-384", ""),
		json.RawMessage(`{"kty":"RSA","kid":"rsa-small","e":"AQAB","n":"`+b64.EncodeToString(is.rsaSmall.N.Bytes())+`"}`),
		json.RawMessage(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0","alg":"HS256"}`),
		publicJWK(t, &is.rsa2.PublicKey, "rsa-enc", ""),
	)
	// rsa-enc is published for encryption only.
	is.setKeys(append(is.served[:5:5], json.RawMessage(strings.Replace(string(publicJWK(t, &is.rsa2.PublicKey, "rsa-enc", "")), `"use":"sig"`, `"use":"enc"`, 1)))...)
	v := is.verifier(t, func(o *Options) { o.Algorithms = []string{"RS256", "ES256", "ES384"} })
	now := is.clock.Now().Unix()

	rsaJWK := publicJWK(t, &is.rsa1.PublicKey, "rsa-1", "RS256")
	der, err := x509.MarshalPKIXPublicKey(&is.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	claimsJSON, _ := json.Marshal(is.claims())
	valid := is.token(t, "RS256", "rsa-1", "rsa-1", is.claims())
	parts := strings.Split(valid, ".")
	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid, "typ": "JWT"} }
	tok := func(c map[string]any) string { return is.token(t, "RS256", "rsa-1", "rsa-1", c) }
	without := func(name string) map[string]any { return is.with(func(c map[string]any) { delete(c, name) }) }
	set := func(name string, val any) map[string]any { return is.with(func(c map[string]any) { c[name] = val }) }
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	tests := []struct {
		name  string
		token string
		why   string // a fragment of the expected error message
	}{
		{"empty bearer", "", "missing token"},
		{"alg none, empty signature", signJWS(t, "none", nil, hdr("none", "rsa-1"), claimsJSON), "not signed"},
		{"alg none with a signature", parts[0][:0] + b64.EncodeToString([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + parts[1] + "." + parts[2], "algorithm not allowed"},
		{"alg None", signJWS(t, "RS256", is.rsa1, hdr("None", "rsa-1"), claimsJSON), "algorithm not allowed"},
		{"HS256 with the RSA public key PEM", signJWS(t, "HS256", rsaPEM, hdr("HS256", "rsa-1"), claimsJSON), "algorithm not allowed"},
		{"HS256 with the RSA public JWK", signJWS(t, "HS256", []byte(rsaJWK), hdr("HS256", "rsa-1"), claimsJSON), "algorithm not allowed"},
		{"HS256 with the published oct key", signJWS(t, "HS256", []byte("secret-secret-secret-secret"), hdr("HS256", "hmac"), claimsJSON), "algorithm not allowed"},
		{"RS256 naming the oct key", signJWS(t, "RS256", is.rsa1, hdr("RS256", "hmac"), claimsJSON), "unknown signing key"},
		{"expired", tok(set("exp", now-120)), "expired"},
		{"expired long ago", tok(set("exp", 1)), "expired"},
		{"not yet valid", tok(set("nbf", now+600)), "not yet valid"},
		{"issued in the future", tok(set("iat", now+3600)), "issued in the future"},
		{"wrong issuer", tok(set("iss", "https://evil.example")), "issuer"},
		{"issuer with trailing slash", tok(set("iss", is.srv.URL+"/")), "issuer"},
		{"issuer missing", tok(without("iss")), "issuer"},
		{"wrong audience", tok(set("aud", "api://other")), "audience"},
		{"audience array without ours", tok(set("aud", []string{"api://a", "api://b"})), "audience"},
		{"audience array with a non-string", tok(set("aud", []any{testAudience, 7})), "audience"},
		{"audience missing", tok(without("aud")), "audience"},
		{"audience prefix", tok(set("aud", testAudience+"x")), "audience"},
		{"unknown kid", is.token(t, "RS256", "rsa-1", "nope", is.claims()), "unknown signing key"},
		{"missing kid", signJWS(t, "RS256", is.rsa1, map[string]any{"alg": "RS256"}, claimsJSON), "key id"},
		{"kid not a string", signJWS(t, "RS256", is.rsa1, map[string]any{"alg": "RS256", "kid": 1}, claimsJSON), "key id"},
		{"tampered payload", parts[0] + "." + b64.EncodeToString([]byte(strings.Replace(string(claimsJSON), `"acme"`, `"evil"`, 1))) + "." + parts[2], "signature"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2], 10), "signature"},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:40], "signature"},
		{"signature from another key", parts[0] + "." + parts[1] + "." + strings.Split(is.token(t, "RS256", "rsa-2", "rsa-1", is.claims()), ".")[2], "signature"},
		{"missing tenant", tok(without("tenant_id")), "tenant"},
		{"tenant number", tok(set("tenant_id", 42)), "tenant"},
		{"tenant array", tok(set("tenant_id", []string{"acme"})), "tenant"},
		{"tenant empty", tok(set("tenant_id", "")), "tenant"},
		{"tenant path traversal", tok(set("tenant_id", "../acme")), "tenant"},
		{"tenant too long", tok(set("tenant_id", strings.Repeat("a", 129))), "tenant"},
		{"tenant with newline", tok(set("tenant_id", "acme\nx")), "tenant"},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], "base64"},
		{"header not JSON", b64.EncodeToString([]byte("not json")) + "." + parts[1] + "." + parts[2], "header"},
		{"header JSON array", b64.EncodeToString([]byte(`["RS256"]`)) + "." + parts[1] + "." + parts[2], "header"},
		{"header with crit", signJWS(t, "RS256", is.rsa1, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}, "exp": 1}, claimsJSON), "unsupported"},
		{"header with b64 false", signJWS(t, "RS256", is.rsa1, map[string]any{"alg": "RS256", "kid": "rsa-1", "b64": false}, claimsJSON), "unsupported"},
		{"duplicate alg in header", signRaw(t, "RS256", is.rsa1, []byte(`{"alg":"none","alg":"RS256","kid":"rsa-1"}`), claimsJSON), "header"},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], "base64"},
		{"payload not base64", parts[0] + ".%%%." + parts[2], "base64"},
		{"RS384 not in the allow-list", is.token(t, "RS384", "rsa-1", "rsa-1", is.claims()), "algorithm not allowed"},
		{"PS256 not in the allow-list", is.token(t, "PS256", "rsa-1", "rsa-1", is.claims()), "algorithm not allowed"},
		{"EdDSA not in the allow-list", is.token(t, "EdDSA", "ed-1", "ed-1", is.claims()), "algorithm not allowed"},
		{"oversized token", tok(set("pad", strings.Repeat("x", MaxTokenLength))), "too large"},
		{"missing exp", tok(without("exp")), "no expiry"},
		{"exp as a string", tok(set("exp", fmt.Sprint(now+3600))), "expiry is malformed"},
		{"exp null", tok(set("exp", nil)), "no expiry"},
		{"nbf as a string", tok(set("nbf", "0")), "not-before is malformed"},
		// jwx's decoder would take these; the RFC 7519 types are checked first.
		{"exp as an RFC 3339 string", tok(set("exp", "2099-01-01T00:00:00Z")), "expiry is malformed"},
		{"iat as a string", tok(set("iat", fmt.Sprint(now))), "issued-at is malformed"},
		{"negative nbf", tok(set("nbf", -1)), "not-before is malformed"},
		{"issuer not a string", tok(set("iss", []string{is.srv.URL})), "issuer"},
		{"audience null", tok(set("aud", nil)), "audience"},
		{"missing sub", tok(without("sub")), "subject"},
		{"empty sub", tok(set("sub", "")), "subject"},
		{"sub not a string", tok(set("sub", 42)), "subject"},
		{"sub with control characters", tok(set("sub", "a\x00b")), "subject"},
		{"scope not a string", tok(set("scope", []string{"tracktrace.admin"})), "scope"},
		{"scp with a non-string", tok(set("scp", []any{"tracktrace.admin", 1})), "scp"},
		{"duplicate sub claim", signRaw(t, "RS256", is.rsa1, []byte(`{"alg":"RS256","kid":"rsa-1"}`),
			[]byte(strings.Replace(string(claimsJSON), `"sub":"user-42"`, `"sub":"user-42","sub":"admin"`, 1))), "claims"},
		{"claims not an object", signRaw(t, "RS256", is.rsa1, []byte(`{"alg":"RS256","kid":"rsa-1"}`), []byte(`"hello"`)), "claims"},
		{"JWE-shaped (5 parts)", b64.EncodeToString([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa-1"}`)) + ".a2V5.aXY.Y2lwaGVy.dGFn", "compact"},
		{"ES256 header with the RSA kid", is.token(t, "ES256", "ec-1", "rsa-1", is.claims()), "does not fit"},
		{"RS256 header with the EC kid", is.token(t, "RS256", "rsa-1", "ec-1", is.claims()), "does not fit"},
		{"ES256 header with a P-384 key", is.token(t, "ES256", "ec-384", "ec-384", is.claims()), "does not fit"},
		{"ES384 header with the ES256-only key", is.token(t, "ES384", "ec-384", "ec-1", is.claims()), "does not fit"},
		{"RSA key below 2048 bits", is.token(t, "RS256", "rsa-small", "rsa-small", is.claims()), "unknown signing key"},
		{"encryption key", is.token(t, "RS256", "rsa-2", "rsa-enc", is.claims()), "unknown signing key"},
		{"two segments", parts[0] + "." + parts[1], "compact"},
		{"token twice", valid + "." + valid, "compact"},
		{"token with whitespace", parts[0] + ". " + parts[1] + "." + parts[2], "base64"},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, "compact"},
		{"embedded jwk header with the attacker's key", signJWS(t, "ES256", is.ec384, map[string]any{
			"alg": "ES256", "kid": "attacker", "jwk": json.RawMessage(publicJWK(t, &is.ec384.PublicKey, "attacker", "")),
		}, claimsJSON), "unknown signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tt.token)
			if err == nil {
				t.Fatalf("accepted, principal %+v", p)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, does not wrap ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("err = %q, want it to mention %q", err, tt.why)
			}
			assertSafeMessage(t, err, tt.token)
			if p.Subject != "" || p.Tenant != "" || p.Scopes != nil {
				t.Errorf("a rejected token yielded principal %+v", p)
			}
		})
	}
}

// assertSafeMessage checks that an error does not echo the token.
func assertSafeMessage(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			t.Errorf("error message echoes the token: %q", msg)
		}
	}
	for _, s := range []string{"user-42", "acme", "evil", "BEGIN PUBLIC KEY"} {
		if strings.Contains(msg, s) {
			t.Errorf("error message echoes %q: %q", s, msg)
		}
	}
}

func TestTokenAtTheSizeLimit(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	base := is.token(t, "ES256", "ec-1", "ec-1", is.with(func(c map[string]any) { c["pad"] = "" }))
	// Each padding byte adds 4/3 encoded bytes; fill up to the limit.
	pad := (MaxTokenLength - len(base)) * 3 / 4
	tok := is.token(t, "ES256", "ec-1", "ec-1", is.with(func(c map[string]any) { c["pad"] = strings.Repeat("x", pad) }))
	if len(tok) > MaxTokenLength || len(tok) < MaxTokenLength-4 {
		t.Fatalf("token length %d, want just under %d", len(tok), MaxTokenLength)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("token of %d bytes: %v", len(tok), err)
	}
}

func TestNewVerifierRejectsBadSetups(t *testing.T) {
	is := newTestIssuer(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "http://" + r.Host, "jwks_uri": "http://" + r.Host + "/jwks"})
	}))
	t.Cleanup(plain.Close)

	tests := []struct {
		name  string
		setup func()
		mod   func(*Options)
		want  string
	}{
		{"issuer mismatch", func() { is.docIssuer = "https://other.example" }, nil, "issuer does not equal Authority"},
		{"issuer differs by a trailing slash", func() { is.docIssuer = is.srv.URL + "/" }, nil, "issuer does not equal Authority"},
		{"http authority with RequireHTTPSMetadata", nil, func(o *Options) { o.Authority = plain.URL; o.HTTPClient = plain.Client() }, "https"},
		{"http jwks_uri with RequireHTTPSMetadata", func() { is.docJWKSURI = "http://" + is.srv.Listener.Addr().String() + "/jwks" }, nil, "jwks_uri must use https"},
		{"relative jwks_uri", func() { is.docJWKSURI = "/jwks" }, nil, "absolute"},
		{"HS256 in Algorithms", nil, func(o *Options) { o.Algorithms = []string{"RS256", "HS256"} }, `"HS256" is not allowed`},
		{"none in Algorithms", nil, func(o *Options) { o.Algorithms = []string{"none"} }, `"none" is not allowed`},
		{"lower-case rs256", nil, func(o *Options) { o.Algorithms = []string{"rs256"} }, "not allowed"},
		{"no authority", nil, func(o *Options) { o.Authority = "" }, "Authority is required"},
		{"relative authority", nil, func(o *Options) { o.Authority = "issuer.example" }, "absolute"},
		{"authority with a query", nil, func(o *Options) { o.Authority = is.srv.URL + "?x=1" }, "query"},
		{"no audience", nil, func(o *Options) { o.Audience = "" }, "Audience is required"},
		{"negative skew", nil, func(o *Options) { o.ClockSkew = -time.Second }, "ClockSkew"},
		{"huge skew", nil, func(o *Options) { o.ClockSkew = time.Hour }, "ClockSkew"},
		{"discovery 404", nil, func(o *Options) { o.Authority = is.srv.URL + "/tenant" }, "status 404"},
		{"JWKS unavailable", func() { is.jwksOK = false }, nil, "key set"},
		{"JWKS not JSON", func() { is.jwksRawBody = []byte("<html>") }, nil, "key set"},
		{"untrusted TLS certificate", nil, func(o *Options) { o.HTTPClient = &http.Client{} }, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is.mu.Lock()
			is.docIssuer, is.docJWKSURI, is.jwksOK, is.jwksRawBody = "", "", true, nil
			if tt.setup != nil {
				tt.setup()
			}
			is.mu.Unlock()
			o := is.options()
			if tt.mod != nil {
				tt.mod(&o)
			}
			v, err := NewVerifier(t.Context(), o)
			if err == nil {
				_ = v.Close()
				t.Fatal("NewVerifier succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}

	// Plain http is fine when RequireHTTPSMetadata is off.
	t.Run("http authority without RequireHTTPSMetadata", func(t *testing.T) {
		_, err := NewVerifier(t.Context(), Options{Authority: plain.URL, Audience: testAudience, HTTPClient: plain.Client()})
		// The plain server's JWKS endpoint serves a non-JWKS document, so
		// discovery passing is what is checked here.
		if err == nil || !strings.Contains(err.Error(), "key set") {
			t.Fatalf("err = %v, want discovery to pass and the key set to fail", err)
		}
	})
}

func TestRedirectAwayFromHTTPSRefused(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(plain.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://" + r.Host, "jwks_uri": "https://" + r.Host + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/jwks", http.StatusFound)
	})
	redirecting := httptest.NewTLSServer(mux)
	t.Cleanup(redirecting.Close)
	_, err := NewVerifier(t.Context(), Options{Authority: redirecting.URL, Audience: testAudience, RequireHTTPSMetadata: true, HTTPClient: redirecting.Client()})
	if err == nil || !strings.Contains(err.Error(), "redirect away from https") {
		t.Fatalf("err = %v, want the redirect refused", err)
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc.def.ghi", "abc.def.ghi", true},
		{"BEARER abc.def.ghi", "abc.def.ghi", true},
		{"  Bearer   abc-_.~+/def==  ", "abc-_.~+/def==", true},
		{"", "", false},
		{"   ", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearerabc.def.ghi", "", false},
		{"Bearer abc def", "", false},
		{"Bearer abc,def", "", false},
		{"Bearer ==abc", "", false},
		{"Bearer ab=c", "", false},
		{"Bearer abc\x00", "", false},
		{"Bearer\tabc", "", false},
		{"Bearer " + strings.Repeat("a", MaxTokenLength+1), "", false},
		{"Token abc", "", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.header), func(t *testing.T) {
			got, err := ParseBearer(tt.header)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("ParseBearer = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseBearer = %q, want an error", got)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, does not wrap ErrUnauthenticated", err)
			}
			if got != "" {
				t.Fatalf("token %q returned with an error", got)
			}
		})
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseCancelsFetchInFlight(t *testing.T) {
	is := newTestIssuer(t)
	o := is.options()
	v, err := NewVerifier(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	defer close(gate)
	is.mu.Lock()
	is.jwksGate = gate
	is.mu.Unlock()

	// An unknown key id starts a refetch that hangs at the issuer.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.Verify(ctx, is.token(t, "RS256", "rsa-2", "rsa-2", is.claims())); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the lookup abandoned", err)
	}
	waitFor(t, func() bool { return is.jwksFetches.Load() == 2 })

	done := make(chan struct{})
	go func() { _ = v.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a fetch hung")
	}
	waitFor(t, func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "auth.(*keySet)") && !strings.Contains(stacks, "lestrrat-go/httprc")
	})
}
