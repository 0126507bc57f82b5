package auth

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/tlm/tracktrace/internal/tracking"
)

// Scopes are separated by SP only (RFC 6749 §3.3): another space inside the
// claim makes one unknown scope, never two grants.
func TestScopesSplitOnSpaceOnly(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	for _, sep := range []string{"\u00a0", "\t", "\u2003", "\n"} {
		tok := is.token(t, "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
			c["scope"] = "tracktrace.read" + sep + "tracktrace.admin"
		}))
		p, err := v.Verify(t.Context(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if len(p.Scopes) != 0 {
			t.Errorf("scope joined by %q granted %v, want nothing", sep, p.Scopes)
		}
	}
}

// ClockSkew 0 is no leeway, not the default.
func TestZeroClockSkewIsNone(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, func(o *Options) { o.ClockSkew = 0 })
	tok := is.token(t, "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) {
		c["exp"] = is.clock.Now().Unix() - 5
	}))
	if _, err := v.Verify(t.Context(), tok); err == nil {
		t.Fatal("a token expired 5 s ago passed with ClockSkew 0")
	}
}

// Only access tokens: typ JWT or at+jwt (or none); an ID token, a logout
// token or a JOSE+JSON typ is refused.
func TestTokenType(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	payload, err := json.Marshal(is.claims())
	if err != nil {
		t.Fatal(err)
	}
	for typ, ok := range map[string]bool{"JWT": true, "jwt": true, "at+jwt": true, "application/at+JWT": true,
		"": false, "id_token": false, "logout+jwt": false, "JOSE+JSON": false, "JOSE": false} {
		header := map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": typ}
		tok := signJWS(t, "RS256", is.privateKey(t, "rsa-1"), header, payload)
		if _, err := v.Verify(t.Context(), tok); (err == nil) != ok {
			t.Errorf("typ %q: err = %v, want accepted %v", typ, err, ok)
		}
	}
	tok := signJWS(t, "RS256", is.privateKey(t, "rsa-1"), map[string]any{"alg": "RS256", "kid": "rsa-1"}, payload)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("no typ: %v, want accepted", err)
	}
}

// A subject with bidirectional overrides or zero-width characters would be
// recorded as a principal that displays as another.
func TestSubjectFormatCharacters(t *testing.T) {
	is := newTestIssuer(t)
	v := is.verifier(t, nil)
	for _, sub := range []string{"alice\u202egnp.exe", "ad\u200bmin", "\u2066bob\u2069", "x\u00ady"} {
		tok := is.token(t, "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) { c["sub"] = sub }))
		if p, err := v.Verify(t.Context(), tok); err == nil {
			t.Errorf("sub %q accepted as %q", sub, p.Subject)
		}
	}
	tok := is.token(t, "RS256", "rsa-1", "rsa-1", is.with(func(c map[string]any) { c["sub"] = "Zoë Ångström" }))
	if p, err := v.Verify(t.Context(), tok); err != nil || p.Subject != "Zoë Ångström" || !slices.Contains(p.Scopes, tracking.ScopeRead) {
		t.Errorf("a plain non-ASCII subject: %+v, %v", p, err)
	}
}
