package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

// IDToken is what a verified OpenID Connect ID token says.
type IDToken struct {
	Subject string    // sub
	Nonce   string    // nonce, equal to the one asked for
	Expiry  time.Time // exp
}

// VerifyIDToken checks an ID token the authority issued to the client
// clientID at the end of a browser login (OpenID Connect Core §3.1.3.7) and
// returns what it says. Every error wraps ErrUnauthenticated.
//
// It is checked against the same key set and algorithm allow-list as access
// tokens, with the same strictness about the JWS and the claims' types; the
// claims must carry iss equal to the Authority, an aud containing clientID
// (and, when there are several audiences or an azp, azp equal to clientID),
// an unexpired exp, an iat, a sub and a nonce equal to nonce. A typ header,
// when present, must be "JWT": an RFC 9068 access token (at+jwt) is not an
// ID token.
func (v *Verifier) VerifyIDToken(ctx context.Context, raw, clientID, nonce string) (IDToken, error) {
	if clientID == "" || nonce == "" {
		return IDToken{}, failure("no client or nonce to check the ID token against")
	}
	payload, err := v.verifySignature(ctx, raw, idTokenType, "token is not an ID token")
	if err != nil {
		return IDToken{}, err
	}
	claims, err := decodeObject(payload)
	if err != nil {
		return IDToken{}, failure("token claims are not a JSON object")
	}
	if err := checkClaimTypes(claims); err != nil {
		return IDToken{}, err
	}
	if raw, present := claims["iat"]; !present || !isNumericDate(raw) {
		return IDToken{}, failure("token issued-at is malformed")
	}
	sub, ok := jsonString(claims["sub"])
	if !ok || !validSubject(sub) {
		return IDToken{}, failure("token has no usable subject")
	}
	got, ok := jsonString(claims["nonce"])
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return IDToken{}, failure("token nonce does not match")
	}
	if !authorizedParty(claims, clientID) {
		return IDToken{}, failure("token authorized party not accepted")
	}
	opts := append(claimChecks(v.provider.Issuer, clientID, v.skew, v.now), jwt.WithRequiredClaim(jwt.IssuedAtKey))
	tok, err := jwt.Parse(payload, opts...)
	if err != nil {
		return IDToken{}, claimFailure(err)
	}
	exp, _ := tok.Expiration()
	return IDToken{Subject: sub, Nonce: got, Expiry: exp}, nil
}

// authorizedParty applies OpenID Connect Core §3.1.3.7 (4, 5): an azp, if
// present, must be clientID, and must be present when aud names several
// parties.
func authorizedParty(claims map[string]json.RawMessage, clientID string) bool {
	if raw, present := claims["azp"]; present {
		azp, ok := jsonString(raw)
		return ok && azp == clientID
	}
	var auds []string
	if json.Unmarshal(claims["aud"], &auds) == nil && len(auds) > 1 {
		return false
	}
	return true
}

// idTokenType reports whether a JOSE "typ" header may be an ID token's:
// "JWT", with or without the "application/" prefix, in any case.
func idTokenType(typ string) bool {
	return strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "jwt")
}
