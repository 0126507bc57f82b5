package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

const testAudience = "api://tracktrace"

// fakeClock is a settable clock shared by a test and its Verifier.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testIssuer is a local OIDC issuer: a TLS server with a discovery document
// and a JWKS endpoint whose contents a test can change.
type testIssuer struct {
	srv   *httptest.Server
	clock *fakeClock

	rsa1, rsa2, rsaSmall *rsa.PrivateKey
	ec256, ec384         *ecdsa.PrivateKey
	ed                   ed25519.PrivateKey

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64

	mu          sync.Mutex
	served      []json.RawMessage // the JWKS's keys
	docIssuer   string            // issuer in the discovery document; "" = the server URL
	docJWKSURI  string            // jwks_uri; "" = the server's /jwks
	jwksGate    chan struct{}     // when set, /jwks waits for it to close
	jwksOK      bool
	jwksRawBody []byte // when set, served instead of the key list
}

// newTestIssuer starts an issuer serving rsa-1, ec-1 and ed-1.
func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	is := &testIssuer{clock: newFakeClock(), jwksOK: true}
	var err error
	if is.rsa1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		t.Fatal(err)
	}
	if is.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if is.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, is.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	is.setKeys(
		publicJWK(t, &is.rsa1.PublicKey, "rsa-1", "RS256"),
		publicJWK(t, &is.ec256.PublicKey, "ec-1", "ES256"),
		publicJWK(t, is.ed.Public(), "ed-1", ""),
	)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discoveryFetches.Add(1)
		is.mu.Lock()
		iss, uri := is.docIssuer, is.docJWKSURI
		is.mu.Unlock()
		if iss == "" {
			iss = is.srv.URL
		}
		if uri == "" {
			uri = is.srv.URL + "/jwks"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              uri,
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"authorization_endpoint":                is.srv.URL + "/authorize",
			"token_endpoint":                        is.srv.URL + "/token",
			// Plain http while RequireHTTPSMetadata is set: left out.
			"end_session_endpoint": "http://" + is.srv.Listener.Addr().String() + "/logout",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksFetches.Add(1)
		is.mu.Lock()
		gate, ok, raw := is.jwksGate, is.jwksOK, is.jwksRawBody
		body, _ := json.Marshal(map[string]any{"keys": is.served})
		is.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if !ok {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if raw != nil {
			body = raw
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	})
	is.srv = httptest.NewUnstartedServer(mux)
	is.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // tests provoke TLS errors on purpose
	is.srv.StartTLS()
	t.Cleanup(is.srv.Close)
	return is
}

// setKeys replaces the served key set.
func (is *testIssuer) setKeys(keys ...json.RawMessage) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.served = keys
}

// options returns Verifier options for this issuer.
func (is *testIssuer) options() Options {
	return Options{
		Authority:            is.srv.URL,
		Audience:             testAudience,
		RequireHTTPSMetadata: true,
		HTTPClient:           is.srv.Client(),
		Now:                  is.clock.Now,
		ClockSkew:            time.Minute, // Authentication.ClockSkew's default
	}
}

// verifier builds a Verifier with options adjusted by mod, closed at cleanup.
func (is *testIssuer) verifier(t testing.TB, mod func(*Options)) *Verifier {
	t.Helper()
	o := is.options()
	if mod != nil {
		mod(&o)
	}
	v, err := NewVerifier(t.Context(), o)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// claims returns a valid claim set for this issuer at the clock's time.
func (is *testIssuer) claims() map[string]any {
	now := is.clock.Now().Unix()
	return map[string]any{
		"iss":       is.srv.URL,
		"aud":       testAudience,
		"sub":       "user-42",
		"tenant_id": "acme",
		"iat":       now,
		"nbf":       now - 5,
		"exp":       now + 3600,
		"scope":     "tracktrace.read tracktrace.write openid",
	}
}

// with returns a copy of the valid claims changed by mod.
func (is *testIssuer) with(mod func(map[string]any)) map[string]any {
	c := is.claims()
	mod(c)
	return c
}

// token signs claims with the named issuer key: "rsa-1", "rsa-2",
// "rsa-small", "ec-1", "ec-384" or "ed-1", using alg and the key id kid.
func (is *testIssuer) token(t testing.TB, alg, keyName, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return signJWS(t, alg, is.privateKey(t, keyName), map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}, payload)
}

func (is *testIssuer) privateKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	switch name {
	case "rsa-1":
		return is.rsa1
	case "rsa-2":
		return is.rsa2
	case "rsa-small":
		return is.rsaSmall
	case "ec-1":
		return is.ec256
	case "ec-384":
		return is.ec384
	case "ed-1":
		return is.ed
	}
	t.Fatalf("no key %q", name)
	return nil
}

// publicJWK renders a public key as a JWK with kid and (optionally) alg.
func publicJWK(t testing.TB, pub any, kid, alg string) json.RawMessage {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyUsageKey, "sig"); err != nil {
		t.Fatal(err)
	}
	if alg != "" {
		if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var b64 = base64.RawURLEncoding

// signJWS builds a compact JWS by hand, so tests can build tokens no
// well-behaved library would: key is a crypto.Signer, []byte (HMAC) or nil
// (empty signature).
func signJWS(t testing.TB, alg string, key any, header map[string]any, payload []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, alg, key, h, payload)
}

// signRaw signs the given raw header and payload bytes.
func signRaw(t testing.TB, alg string, key any, header, payload []byte) string {
	t.Helper()
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sig, err := signature(alg, key, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

func hashFor(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

func signature(alg string, key any, input []byte) ([]byte, error) {
	if key == nil {
		return nil, nil
	}
	if secret, ok := key.([]byte); ok {
		mac := hmac.New(hashFor(alg).New, secret)
		mac.Write(input)
		return mac.Sum(nil), nil
	}
	if ed, ok := key.(ed25519.PrivateKey); ok {
		return ed25519.Sign(ed, input), nil
	}
	h := hashFor(alg).New()
	h.Write(input)
	digest := h.Sum(nil)
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if strings.HasPrefix(alg, "PS") {
			return rsa.SignPSS(rand.Reader, k, hashFor(alg), digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, k, hashFor(alg), digest)
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	}
	return nil, nil
}
