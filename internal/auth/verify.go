package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tlm/tracktrace/internal/tracking"
)

const (
	maxKeyIDLength   = 256 // longest "kid" looked up
	maxSubjectLength = 256 // longest "sub" accepted, in bytes
)

// b64url is the strict unpadded base64url encoding JWS compact form uses.
var b64url = base64.RawURLEncoding.Strict()

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
	switch {
	case bearer == "":
		return tracking.Principal{}, failure("missing token")
	case len(bearer) > MaxTokenLength:
		return tracking.Principal{}, failure("token too large")
	}
	protected, err := splitCompact(bearer)
	if err != nil {
		return tracking.Principal{}, err
	}
	alg, kid, err := parseHeader(protected)
	if err != nil {
		return tracking.Principal{}, err
	}
	if !v.algorithms[alg] {
		return tracking.Principal{}, failure("token algorithm not allowed")
	}
	key, err := v.keys.get(ctx, kid, alg)
	if err != nil {
		return tracking.Principal{}, err
	}
	sigAlg, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return tracking.Principal{}, failure("token algorithm not allowed")
	}
	payload, err := jws.Verify([]byte(bearer),
		jws.WithKey(sigAlg, key.key),
		jws.WithAlgorithmMatch(true),
		jws.WithCompact(),
	)
	if err != nil {
		return tracking.Principal{}, failure("invalid token signature")
	}
	return v.checkClaims(payload)
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
func parseHeader(raw []byte) (alg, kid string, err error) {
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
	if typ, present := fields["typ"]; present {
		if _, ok := jsonString(typ); !ok {
			return "", "", failure("token header is malformed")
		}
	}
	return alg, kid, nil
}

// checkClaims validates the verified payload and builds the principal.
func (v *Verifier) checkClaims(payload []byte) (tracking.Principal, error) {
	claims, err := decodeObject(payload)
	if err != nil {
		return tracking.Principal{}, failure("token claims are not a JSON object")
	}
	now := v.now()

	if iss, ok := jsonString(claims["iss"]); !ok || iss != v.issuer {
		return tracking.Principal{}, failure("token issuer not accepted")
	}
	if !audienceContains(claims["aud"], v.audience) {
		return tracking.Principal{}, failure("token audience not accepted")
	}

	exp, present, ok := numericDate(claims["exp"])
	switch {
	case !present:
		return tracking.Principal{}, failure("token has no expiry")
	case !ok:
		return tracking.Principal{}, failure("token expiry is malformed")
	case !now.Before(exp.Add(v.skew)):
		return tracking.Principal{}, failure("token expired")
	}
	if nbf, present, ok := numericDate(claims["nbf"]); present {
		if !ok {
			return tracking.Principal{}, failure("token not-before is malformed")
		}
		if nbf.After(now.Add(v.skew)) {
			return tracking.Principal{}, failure("token not yet valid")
		}
	}
	if iat, present, ok := numericDate(claims["iat"]); present {
		if !ok {
			return tracking.Principal{}, failure("token issued-at is malformed")
		}
		if iat.After(now.Add(v.skew)) {
			return tracking.Principal{}, failure("token issued in the future")
		}
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
	return tracking.Principal{Tenant: tenant, Subject: sub, Scopes: scopes}, nil
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
		for _, f := range strings.Fields(s) {
			keep(f)
		}
	}
	if raw, present := claims["scp"]; present && !isNull(raw) {
		if s, ok := jsonString(raw); ok {
			for _, f := range strings.Fields(s) {
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

// audienceContains reports whether the "aud" claim (a string or an array of
// strings) names want.
func audienceContains(raw json.RawMessage, want string) bool {
	if s, ok := jsonString(raw); ok {
		return s == want
	}
	var list []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &list) != nil {
		return false
	}
	found := false
	for _, item := range list {
		s, ok := jsonString(item)
		if !ok {
			return false // a malformed array is not trusted at all
		}
		found = found || s == want
	}
	return found
}

// validSubject reports whether sub is a non-empty, bounded, printable UTF-8
// string; it ends up in event metadata and logs.
func validSubject(sub string) bool {
	if sub == "" || len(sub) > maxSubjectLength || !utf8.ValidString(sub) {
		return false
	}
	for _, r := range sub {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are clamped to it.
const maxNumericDate = 253402300799

// numericDate decodes a NumericDate claim (RFC 7519 §2: a JSON number of
// seconds since the epoch). present is false when the claim is absent or
// null; ok is false when it is present but not a non-negative number.
func numericDate(raw json.RawMessage) (t time.Time, present, ok bool) {
	if len(raw) == 0 || isNull(raw) {
		return time.Time{}, false, false
	}
	s := string(bytes.TrimSpace(raw))
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return time.Time{}, true, false // strings, booleans, objects, arrays
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return time.Time{}, true, false
	}
	if math.IsNaN(f) || f < 0 {
		return time.Time{}, true, false
	}
	if f > maxNumericDate {
		f = maxNumericDate
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
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
