// Package auth verifies OIDC/JWT bearer access tokens for tracktrace.
//
// A Verifier is built once from the issuer's OIDC discovery document
// (<Authority>/.well-known/openid-configuration). It keeps the issuer's
// JSON Web Key Set in a jwx jwk.Cache, which refetches it in the background,
// refetches it at once when a token names a key id it does not know (rate
// limited, so random key ids cannot turn the service into a fetch
// amplifier), and checks every token against an
// allow-list of asymmetric JWS algorithms, the issuer, the audience, the
// token's lifetime, the subject and the tenant claim. What it yields is a
// tracking.Principal: who is calling, for which tenant, with which tracktrace
// scopes.
//
// Every verification failure wraps ErrUnauthenticated, which an HTTP layer
// maps to 401. Error messages name what was wrong in general terms only;
// they never echo the token, claim values or key material.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

// MaxTokenLength is the largest bearer token, in bytes, that is looked at.
// Longer tokens are rejected before any parsing.
const MaxTokenLength = 8 << 10

// Defaults applied by NewVerifier to zero Options fields.
const (
	DefaultTenantClaim        = "tenant_id"
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultKeysTTL            = 10 * time.Minute
)

const (
	// fetchTimeout bounds each discovery or JWKS request.
	fetchTimeout = 10 * time.Second
	// maxDocumentSize bounds discovery documents and key sets.
	maxDocumentSize = 1 << 20
	// maxRedirects bounds redirects followed while fetching metadata.
	maxRedirects = 5
	// maxClockSkew is the largest accepted Options.ClockSkew.
	maxClockSkew = 5 * time.Minute
)

// ErrUnauthenticated is wrapped by every error Verify and ParseBearer return:
// the request carries no usable credentials and should be answered with 401.
var ErrUnauthenticated = errors.New("unauthenticated")

// failure returns an error wrapping ErrUnauthenticated. reason must be a
// constant description: it is shown to callers.
func failure(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
}

// Options configure a Verifier. Authority and Audience are required; every
// other field has a default.
type Options struct {
	// Authority is the OIDC issuer URL. The discovery document is read from
	// <Authority>/.well-known/openid-configuration, its "issuer" must equal
	// Authority exactly, and so must every token's "iss" claim.
	Authority string
	// Audience must be one of every token's "aud" values.
	Audience string
	// RequireHTTPSMetadata requires Authority, jwks_uri and every redirect
	// followed while fetching them to use https.
	RequireHTTPSMetadata bool
	// TenantClaim names the claim holding the caller's tenant; default
	// "tenant_id".
	TenantClaim string
	// Algorithms is the allow-list of JWS algorithms. Only asymmetric ones
	// (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA) are accepted;
	// anything else makes NewVerifier fail. Empty means all of them.
	Algorithms []string
	// ClockSkew is the leeway applied to exp, nbf and iat, at most 5
	// minutes; 0 is none (Authentication.ClockSkew defaults to one minute).
	ClockSkew time.Duration
	// HTTPClient fetches the discovery document and the key set; default
	// http.Client. Each request is bounded to 10s, redirects are bounded
	// and, with RequireHTTPSMetadata, must stay on https.
	HTTPClient *http.Client
	// MinRefreshInterval bounds key set refetches caused by unknown key ids
	// to one per interval, and is the delay before a key set request that
	// failed is retried; default 30s.
	MinRefreshInterval time.Duration
	// KeysTTL is the interval at which the key set is refetched in the
	// background; default 10 minutes. A failed refetch keeps the keys held.
	KeysTTL time.Duration
	// Now is the clock token lifetimes and the unknown-kid refetch limit are
	// judged by; default time.Now. The background refetches run on the
	// wall clock.
	Now func() time.Time
	// Logger receives key set fetch problems; default discards.
	Logger *slog.Logger
}

// asymmetricAlgorithms are the only JWS algorithms a Verifier accepts.
var asymmetricAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// Verifier verifies bearer tokens issued by one OIDC authority. It is safe
// for concurrent use. Close it to stop background key refetches.
type Verifier struct {
	provider    Provider
	skew        time.Duration
	now         func() time.Time
	tenantClaim string
	algorithms  map[string]bool
	claimChecks []jwt.ParseOption
	keys        *keySet
	closeOnce   sync.Once
}

// NewVerifier reads the authority's discovery document and key set and
// returns a Verifier for its tokens. ctx bounds the initial fetches, each of
// which also has its own timeout.
func NewVerifier(ctx context.Context, opts Options) (*Verifier, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	client := metadataClient(o.HTTPClient, o.RequireHTTPSMetadata)

	jwksURL, provider, err := discover(ctx, client, o.Authority, o.RequireHTTPSMetadata)
	if err != nil {
		return nil, err
	}

	keys, err := newKeySet(ctx, keySetConfig{
		url:        jwksURL,
		client:     client,
		now:        o.Now,
		minRefresh: o.MinRefreshInterval,
		ttl:        o.KeysTTL,
		logger:     o.Logger,
	})
	if err != nil {
		return nil, err
	}

	algs := make(map[string]bool, len(o.Algorithms))
	for _, a := range o.Algorithms {
		algs[a] = true
	}
	return &Verifier{
		provider:    provider,
		skew:        o.ClockSkew,
		now:         o.Now,
		tenantClaim: o.TenantClaim,
		algorithms:  algs,
		claimChecks: claimChecks(o.Authority, o.Audience, o.ClockSkew, o.Now),
		keys:        keys,
	}, nil
}

// Provider returns the endpoints the authority's discovery document names.
func (v *Verifier) Provider() Provider { return v.provider }

// Close stops background key refetches and waits for any in flight. The
// Verifier keeps verifying against the keys it already holds, but fetches
// no more. Close is idempotent.
func (v *Verifier) Close() error {
	v.closeOnce.Do(v.keys.close)
	return nil
}

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.Authority)
	switch {
	case o.Authority == "":
		return o, errors.New("auth: Authority is required")
	case err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return o, errors.New("auth: Authority must be an absolute http(s) URL")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return o, errors.New("auth: Authority must not carry user info, a query or a fragment")
	case o.RequireHTTPSMetadata && u.Scheme != "https":
		return o, errors.New("auth: Authority must use https while RequireHTTPSMetadata is set")
	}
	if o.Audience == "" {
		return o, errors.New("auth: Audience is required")
	}
	if o.TenantClaim == "" {
		o.TenantClaim = DefaultTenantClaim
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = slices.Clone(asymmetricAlgorithms)
	}
	for _, a := range o.Algorithms {
		if !slices.Contains(asymmetricAlgorithms, a) {
			return o, fmt.Errorf("auth: algorithm %q is not allowed: only asymmetric algorithms are (%s)",
				a, strings.Join(asymmetricAlgorithms, ", "))
		}
	}
	if o.ClockSkew < 0 || o.ClockSkew > maxClockSkew {
		return o, fmt.Errorf("auth: ClockSkew must be between 0 and %v", maxClockSkew)
	}
	if o.MinRefreshInterval < 0 || o.KeysTTL < 0 {
		return o, errors.New("auth: MinRefreshInterval and KeysTTL must not be negative")
	}
	if o.MinRefreshInterval == 0 {
		o.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if o.KeysTTL == 0 {
		o.KeysTTL = DefaultKeysTTL
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// ParseBearer extracts the token from an Authorization header value of the
// form "Bearer <token>" (the scheme is case-insensitive). A missing or
// malformed header, another scheme, or a token with characters outside the
// RFC 6750 b64token alphabet is an error wrapping ErrUnauthenticated.
func ParseBearer(header string) (string, error) {
	h := strings.Trim(header, " \t")
	if h == "" {
		return "", failure("missing bearer token")
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", failure("authorization scheme is not Bearer")
	}
	token := strings.TrimLeft(rest, " ")
	if !ok || token == "" {
		return "", failure("missing bearer token")
	}
	if len(token) > MaxTokenLength {
		return "", failure("bearer token too large")
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	padding := false
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '=':
			padding = true
		case padding:
			return "", failure("malformed bearer token")
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return "", failure("malformed bearer token")
		}
	}
	if token[0] == '=' {
		return "", failure("malformed bearer token")
	}
	return token, nil
}
