package auth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const testClientID = "tracktrace-console"

// idClaims returns a valid ID token claim set for testClientID.
func (is *testIssuer) idClaims(mod func(map[string]any)) map[string]any {
	now := is.clock.Now().Unix()
	c := map[string]any{
		"iss":   is.srv.URL,
		"aud":   testClientID,
		"sub":   "user-42",
		"iat":   now,
		"exp":   now + 300,
		"nonce": "n-0S6_WzA2Mj",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestVerifyIDToken(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)

	good := is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(nil))
	id, err := v.VerifyIDToken(t.Context(), good, testClientID, "n-0S6_WzA2Mj")
	if err != nil {
		t.Fatalf("VerifyIDToken: %v", err)
	}
	if id.Subject != "user-42" || !id.Expiry.Equal(is.clock.Now().Add(300*time.Second).Truncate(time.Second)) {
		t.Errorf("IDToken = %+v", id)
	}

	withTyp := func(typ string) string {
		t.Helper()
		return signJWS(t, "RS256", is.rsa1, map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": typ},
			mustJSON(t, is.idClaims(nil)))
	}
	for _, tc := range []struct {
		name, token, nonce, want string
	}{
		{"another nonce", good, "another", "nonce does not match"},
		{"no nonce claim", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { delete(c, "nonce") })), "n-0S6_WzA2Mj", "nonce does not match"},
		{"another client", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { c["aud"] = "other-client" })), "n-0S6_WzA2Mj", "audience not accepted"},
		{"the API's access token", is.token(t, "RS256", "rsa-1", "rsa-1", is.claims()), "n-0S6_WzA2Mj", "nonce does not match"},
		{"at+jwt", withTyp("at+jwt"), "n-0S6_WzA2Mj", "not an ID token"},
		{"several audiences without azp", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { c["aud"] = []string{testClientID, "other"} })), "n-0S6_WzA2Mj", "authorized party"},
		{"azp of another client", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { c["azp"] = "other" })), "n-0S6_WzA2Mj", "authorized party"},
		{"expired", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { c["exp"] = is.clock.Now().Add(-2 * time.Minute).Unix() })), "n-0S6_WzA2Mj", "expired"},
		{"no iat", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { delete(c, "iat") })), "n-0S6_WzA2Mj", "issued-at"},
		{"another issuer", is.token(t, "RS256", "rsa-1", "rsa-1", is.idClaims(func(c map[string]any) { c["iss"] = "https://evil.example" })), "n-0S6_WzA2Mj", "issuer not accepted"},
		{"HS256", signJWS(t, "HS256", []byte("secret"), map[string]any{"alg": "HS256", "kid": "rsa-1"}, mustJSON(t, is.idClaims(nil))), "n-0S6_WzA2Mj", "algorithm not allowed"},
		{"empty nonce asked", good, "", "no client or nonce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.VerifyIDToken(t.Context(), tc.token, testClientID, tc.nonce)
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUnauthenticated saying %q", err, tc.want)
			}
		})
	}
	if _, err := v.VerifyIDToken(t.Context(), withTyp("JWT"), testClientID, "n-0S6_WzA2Mj"); err != nil {
		t.Errorf("typ JWT: %v", err)
	}
	// An ID token is no bearer token for the API unless it names the API as
	// its audience.
	if _, err := v.Verify(t.Context(), good); err == nil {
		t.Error("an ID token was accepted as an access token")
	}
}

func TestProviderEndpoints(t *testing.T) {
	is := newTestIssuer(t)
	p := is.verifier(t, nil).Provider()
	want := Provider{Issuer: is.srv.URL, AuthorizationEndpoint: is.srv.URL + "/authorize", TokenEndpoint: is.srv.URL + "/token"}
	if p != want {
		t.Errorf("Provider() = %+v, want %+v (the http end_session_endpoint left out under RequireHTTPSMetadata)", p, want)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
