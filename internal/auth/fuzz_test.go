package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/tracking"
)

// FuzzVerify feeds arbitrary bearer strings to a Verifier backed by a local
// issuer. It must never panic, and every failure must wrap
// ErrUnauthenticated; it accepts exactly the tokens the issuer signed, each
// with a well-formed principal.
// The seed corpus is in testdata/fuzz/FuzzVerify; valid tokens for this
// run's keys are added below.
func FuzzVerify(f *testing.F) {
	is := newTestIssuer(f)
	v := is.verifier(f, nil)

	// The tokens this issuer signed: the only ones Verify may accept. A
	// mutation of one that still passes would be a signature bypass.
	signed := map[string]bool{}
	for _, tok := range []string{
		is.token(f, "RS256", "rsa-1", "rsa-1", is.claims()),
		is.token(f, "ES256", "ec-1", "ec-1", is.with(func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = []string{"tracktrace.admin"}
		})),
		is.token(f, "EdDSA", "ed-1", "ed-1", is.claims()),
	} {
		signed[tok] = true
		f.Add(tok)
	}
	f.Add(is.token(f, "RS256", "rsa-1", "unknown", is.claims()))
	f.Add(is.token(f, "ES256", "ec-1", "rsa-1", is.claims()))
	f.Add(signJWS(f, "HS256", []byte("secret"), map[string]any{"alg": "HS256", "kid": "rsa-1"}, []byte(`{}`)))
	f.Add(signJWS(f, "none", nil, map[string]any{"alg": "none"}, []byte(`{"sub":"x"}`)))
	f.Add("")
	f.Add("a.b.c")
	f.Add("a.b.c.d.e")

	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(t.Context(), token)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error does not wrap ErrUnauthenticated: %v", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error echoes the token: %v", err)
			}
			return
		}
		if !signed[token] {
			t.Fatalf("accepted a token the issuer never signed: %q", token)
		}
		if p.Subject == "" || !tracking.IsTenantID(p.Tenant) || p.Scopes == nil || p.Unrestricted {
			t.Fatalf("accepted a token with a malformed principal: %+v", p)
		}
		for _, s := range p.Scopes {
			if !tracking.IsScope(s) {
				t.Fatalf("foreign scope %q kept", s)
			}
		}
	})
}

// FuzzParseBearer checks that ParseBearer never panics, that its failures
// wrap ErrUnauthenticated, and that what it returns is a non-empty b64token
// taken from the header.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{
		"Bearer abc.def.ghi", "bearer x", "Basic dXNlcjpwYXNz", "", "Bearer ", "Bearer a b",
		"Bearer abc==", "Bearer =", "  BEARER   tok  ", "Bearer\ttok", "Bearer tök",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := ParseBearer(header)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error does not wrap ErrUnauthenticated: %v", err)
			}
			if tok != "" {
				t.Fatalf("token %q returned with an error", tok)
			}
			return
		}
		if tok == "" || len(tok) > MaxTokenLength || !strings.Contains(header, tok) {
			t.Fatalf("ParseBearer(%q) = %q", header, tok)
		}
		if strings.ContainsAny(tok, " \t\r\n,;\"") {
			t.Fatalf("token %q has separators", tok)
		}
	})
}
