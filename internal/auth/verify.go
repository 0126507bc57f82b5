package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tlm/tracktrace/internal/tracking"
)

const (
	maxKeyIDLength   = 256 // longest "kid" looked up
	maxSubjectLength = 256 // longest "sub" accepted, in bytes
)

// b64url is the strict unpadded base64url encoding JWS compact form uses.
var b64url = base64.RawURLEncoding.Strict()

// Authenticate verifies the bearer token of an Authorization header value
// (ParseBearer, then Verify).
func (v *Verifier) Authenticate(ctx context.Context, authorization string) (tracking.Principal, error) {
	token, err := ParseBearer(authorization)
	if err != nil {
		return tracking.Principal{}, err
	}
	return v.Verify(ctx, token)
}

// Verify checks a raw bearer token (without the "Bearer " prefix) and
// returns the principal it names. Every error wraps ErrUnauthenticated.
//
// The token must be a compact JWS of at most MaxTokenLength bytes whose
// protected header names an allowed algorithm and the key id of a key in the
// issuer's key set that fits that algorithm; the signature must verify; and
// the claims must carry iss equal to the Authority, an aud containing the
// Audience, an unexpired exp, no future nbf or iat (beyond the clock skew),
// a sub and a well-formed tenant.
func (v *Verifier) Verify(ctx context.Context, bearer string) (tracking.Principal, error) {
	payload, err := v.verifySignature(ctx, bearer, accessTokenType, "token is not an access token")
	if err != nil {
		return tracking.Principal{}, err
	}
	return v.checkClaims(payload)
}

// verifySignature checks that token is a compact JWS of at most
// MaxTokenLength bytes whose protected header names an allowed algorithm,
// a typ (if any) that typeOK accepts (else the error says wrongType), and
// the key id of a key in the issuer's key set that fits the algorithm, and
// that the signature verifies. It returns the payload.
func (v *Verifier) verifySignature(ctx context.Context, token string, typeOK func(string) bool, wrongType string) ([]byte, error) {
	switch {
	case token == "":
		return nil, failure("missing token")
	case len(token) > MaxTokenLength:
		return nil, failure("token too large")
	}
	protected, err := splitCompact(token)
	if err != nil {
		return nil, err
	}
	alg, kid, err := parseHeader(protected, typeOK, wrongType)
	if err != nil {
		return nil, err
	}
	if !v.algorithms[alg] {
		return nil, failure("token algorithm not allowed")
	}
	key, err := v.keys.get(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	sigAlg, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return nil, failure("token algorithm not allowed")
	}
	payload, err := jws.Verify([]byte(token),
		jws.WithKey(sigAlg, key.key),
		jws.WithAlgorithmMatch(true),
		jws.WithCompact(),
	)
	if err != nil {
		return nil, failure("invalid token signature")
	}
	return payload, nil
}

// splitCompact checks that token is the compact serialization of a JWS
// (three non-empty, strictly base64url-encoded segments) and returns the
// decoded protected header. JWE (five segments), unsecured JWS (empty
// signature) and JSON serializations are rejected.
func splitCompact(token string) ([]byte, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, failure("token is not a compact JWS")
	}
	var header []byte
	for i, p := range parts {
		if p == "" {
			if i == 2 {
				return nil, failure("token is not signed")
			}
			return nil, failure("token is not a compact JWS")
		}
		dec, err := b64url.DecodeString(p)
		if err != nil {
			return nil, failure("token is not valid base64url")
		}
		if i == 0 {
			header = dec
		}
	}
	return header, nil
}

// parseHeader reads the protected header and returns its alg and kid.
// Headers that ask for processing tracktrace does not do (crit, b64, zip,
// enc) are rejected; key-carrying headers (jwk, jku, x5c, x5u) are ignored:
// keys only ever come from the issuer's key set.
func parseHeader(raw []byte, typeOK func(string) bool, wrongType string) (alg, kid string, err error) {
	fields, err := decodeObject(raw)
	if err != nil {
		return "", "", failure("token header is not a JSON object")
	}
	for _, name := range []string{"crit", "b64", "zip", "enc"} {
		if _, ok := fields[name]; ok {
			return "", "", failure("token header has unsupported parameters")
		}
	}
	alg, ok := jsonString(fields["alg"])
	if !ok || alg == "" {
		return "", "", failure("token header has no algorithm")
	}
	kid, ok = jsonString(fields["kid"])
	if !ok || kid == "" || len(kid) > maxKeyIDLength {
		return "", "", failure("token header has no usable key id")
	}
	if raw, present := fields["typ"]; present {
		typ, ok := jsonString(raw)
		if !ok {
			return "", "", failure("token header is malformed")
		}
		if !typeOK(typ) {
			return "", "", failure(wrongType)
		}
	}
	return alg, kid, nil
}

// checkClaims validates the verified payload and builds the principal.
//
// jwt.Parse judges the registered claims: iss, aud, a required exp, nbf and
// iat against the clock with the skew. What it is lenient about is checked
// here first: the payload must be one JSON object without duplicate members
// (jwx keeps the last), and the claims it judges must have their RFC 7519
// types (jwx also takes NumericDates as strings, even RFC 3339 ones). The
// required aud also makes jwx read the payload as claims, never as a nested
// JWS. The subject, tenant and scopes are tracktrace's own rules.
func (v *Verifier) checkClaims(payload []byte) (tracking.Principal, error) {
	claims, err := decodeObject(payload)
	if err != nil {
		return tracking.Principal{}, failure("token claims are not a JSON object")
	}
	if err := checkClaimTypes(claims); err != nil {
		return tracking.Principal{}, err
	}
	sub, ok := jsonString(claims["sub"])
	if !ok || !validSubject(sub) {
		return tracking.Principal{}, failure("token has no usable subject")
	}
	tenant, ok := jsonString(claims[v.tenantClaim])
	if !ok || !tracking.IsTenantID(tenant) {
		return tracking.Principal{}, failure("token has no usable tenant")
	}
	scopes, err := parseScopes(claims)
	if err != nil {
		return tracking.Principal{}, err
	}
	if _, err := jwt.Parse(payload, v.claimChecks...); err != nil {
		return tracking.Principal{}, claimFailure(err)
	}
	return tracking.Principal{Tenant: tenant, Subject: sub, Scopes: scopes}, nil
}

// claimChecks returns the jwt.Parse options that validate an already
// verified payload: issuer, audience, lifetime.
func claimChecks(issuer, audience string, skew time.Duration, now func() time.Time) []jwt.ParseOption {
	return []jwt.ParseOption{
		jwt.WithVerify(false), // jws.Verify has checked the signature
		jwt.WithValidate(true),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithAcceptableSkew(skew),
		jwt.WithClock(jwt.ClockFunc(now)),
	}
}

// claimFailure names what jwt.Parse found wrong, in general terms: jwx's
// messages quote claim values.
func claimFailure(err error) error {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return failure("token expired")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return failure("token not yet valid")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return failure("token issued in the future")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return failure("token issuer not accepted")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return failure("token audience not accepted")
	case errors.Is(err, jwt.MissingRequiredClaimError()): // exp is the one required
		return failure("token has no expiry")
	}
	return failure("token claims are malformed")
}

// checkClaimTypes requires iss to be a string, aud a string or an array of
// strings, exp a non-negative number and nbf and iat, when present,
// non-negative numbers.
func checkClaimTypes(claims map[string]json.RawMessage) error {
	if _, ok := jsonString(claims["iss"]); !ok {
		return failure("token issuer not accepted")
	}
	if !stringOrStrings(claims["aud"]) {
		return failure("token audience not accepted")
	}
	switch raw, present := claims["exp"]; {
	case !present || isNull(raw):
		return failure("token has no expiry")
	case !isNumericDate(raw):
		return failure("token expiry is malformed")
	}
	if raw, present := claims["nbf"]; present && !isNumericDate(raw) {
		return failure("token not-before is malformed")
	}
	if raw, present := claims["iat"]; present && !isNumericDate(raw) {
		return failure("token issued-at is malformed")
	}
	return nil
}

// parseScopes collects the tracktrace scopes from the space-separated
// "scope" claim and the "scp" claim (an array of strings, or a
// space-separated string as some issuers send). A claim of any other type
// makes the token invalid; unknown scopes are dropped. The result is sorted
// and never nil.
func parseScopes(claims map[string]json.RawMessage) ([]string, error) {
	scopes := []string{}
	keep := func(s string) {
		if tracking.IsScope(s) && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if raw, present := claims["scope"]; present && !isNull(raw) {
		s, ok := jsonString(raw)
		if !ok {
			return nil, failure("token scope claim is malformed")
		}
		for _, f := range strings.Split(s, " ") {
			keep(f)
		}
	}
	if raw, present := claims["scp"]; present && !isNull(raw) {
		if s, ok := jsonString(raw); ok {
			for _, f := range strings.Split(s, " ") {
				keep(f)
			}
		} else {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, failure("token scp claim is malformed")
			}
			for _, item := range list {
				s, ok := jsonString(item)
				if !ok {
					return nil, failure("token scp claim is malformed")
				}
				keep(s)
			}
		}
	}
	slices.Sort(scopes)
	return scopes, nil
}

// stringOrStrings reports whether raw is a JSON string or an array of
// strings.
func stringOrStrings(raw json.RawMessage) bool {
	if _, ok := jsonString(raw); ok {
		return true
	}
	var list []json.RawMessage
	if len(raw) == 0 || isNull(raw) || json.Unmarshal(raw, &list) != nil {
		return false
	}
	for _, item := range list {
		if _, ok := jsonString(item); !ok {
			return false
		}
	}
	return true
}

// validSubject reports whether sub is a non-empty, bounded, printable UTF-8
// string; it ends up in event metadata and logs. Control and format
// characters (bidirectional overrides, zero-width ones) are refused: they
// make a subject display as another.
func validSubject(sub string) bool {
	if sub == "" || len(sub) > maxSubjectLength || !utf8.ValidString(sub) {
		return false
	}
	for _, r := range sub {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// accessTokenType reports whether a JOSE "typ" header names a JWT access
// token: "JWT" or "at+jwt" (RFC 9068), with or without the "application/"
// prefix, in any case. An ID token's or a logout token's type is refused.
func accessTokenType(typ string) bool {
	t := strings.ToLower(strings.TrimPrefix(strings.ToLower(typ), "application/"))
	return t == "jwt" || t == "at+jwt"
}

// isNumericDate reports whether raw, a JSON value, is a NumericDate
// (RFC 7519 §2): a number, here a non-negative one.
func isNumericDate(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && '0' <= raw[0] && raw[0] <= '9'
}

// decodeObject decodes a JSON object into its members, rejecting anything
// else, duplicate member names (which parsers disagree about) and
// trailing data.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	out := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("malformed object")
		}
		if _, dup := out[name]; dup {
			return nil, errors.New("duplicate member")
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		out[name] = value
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("malformed object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data")
	}
	return out, nil
}

// jsonString decodes raw as a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether raw is the JSON literal null.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
