package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// verificationKey is one usable public key from the issuer's key set.
type verificationKey struct {
	alg string // the JWK's "alg", or "" when it has none
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether k may verify a signature made with alg: the JWK's own
// "alg" (if any) must be alg, and the key type, curve and size must be the
// ones alg is defined for. This is what stops an ES256 header from being
// checked against an RSA key, and so on.
func (k verificationKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		pub, ok := k.key.(*rsa.PublicKey)
		return ok && pub.N != nil && pub.N.BitLen() >= minRSABits
	case "ES256", "ES384", "ES512":
		pub, ok := k.key.(*ecdsa.PublicKey)
		return ok && pub.Curve == curveFor(alg)
	case "EdDSA":
		pub, ok := k.key.(ed25519.PublicKey)
		return ok && len(pub) == ed25519.PublicKeySize
	}
	return false
}

// curveFor returns the curve RFC 7518 §3.4 binds an ECDSA algorithm to.
func curveFor(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	return nil
}

// keyCacheConfig configures a keyCache.
type keyCacheConfig struct {
	url        string
	client     *http.Client
	now        func() time.Time
	minRefresh time.Duration
	ttl        time.Duration
	logger     *slog.Logger
}

// keyCache holds the issuer's key set by key id. Lookups of known ids are
// served from memory; a stale set is refreshed in the background; an
// unknown id triggers at most one synchronous refetch per minRefresh.
// Refetches are shared: concurrent callers wait for the same one.
type keyCache struct {
	cfg    keyCacheConfig
	ctx    context.Context // cancelled by close; parents every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup // background fetches

	mu          sync.Mutex
	keys        map[string][]verificationKey // replaced, never mutated
	fetchedAt   time.Time                    // last successful fetch
	lastAttempt time.Time                    // last fetch started, of any kind
	lastForced  time.Time                    // last fetch caused by an unknown kid
	inflight    *fetchCall
	closed      bool
}

// fetchCall is one key set fetch in flight; done is closed when it ends.
type fetchCall struct {
	done chan struct{}
}

func newKeyCache(cfg keyCacheConfig) *keyCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &keyCache{cfg: cfg, ctx: ctx, cancel: cancel}
}

// load fetches the key set synchronously; NewVerifier uses it so that a
// Verifier starts with keys.
func (c *keyCache) load(ctx context.Context) error {
	now := c.cfg.now()
	keys, err := c.fetch(ctx)
	if err != nil {
		return fmt.Errorf("auth: fetching the key set: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys, c.fetchedAt, c.lastAttempt = keys, now, now
	return nil
}

// close stops accepting fetches, cancels those in flight and waits for them.
func (c *keyCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

var (
	errUnknownKey    = failure("unknown signing key")
	errKeyMismatch   = failure("signing key does not fit the token's algorithm")
	errLookupAborted = errors.New("key lookup interrupted")
)

// get returns the key with id kid that fits alg.
func (c *keyCache) get(ctx context.Context, kid, alg string) (verificationKey, error) {
	now := c.cfg.now()
	c.mu.Lock()
	if cands, ok := c.keys[kid]; ok {
		if now.Sub(c.fetchedAt) >= c.cfg.ttl && now.Sub(c.lastAttempt) >= c.cfg.minRefresh {
			c.startFetchLocked(now) // stale: refresh in the background, serve what we have
		}
		c.mu.Unlock()
		return pick(cands, alg)
	}
	call := c.inflight
	if call == nil {
		if !c.lastForced.IsZero() && now.Sub(c.lastForced) < c.cfg.minRefresh {
			c.mu.Unlock()
			return verificationKey{}, errUnknownKey
		}
		c.lastForced = now
		call = c.startFetchLocked(now)
		if call == nil {
			c.mu.Unlock()
			return verificationKey{}, errUnknownKey
		}
	}
	c.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		return verificationKey{}, fmt.Errorf("%w: %w: %w", ErrUnauthenticated, errLookupAborted, ctx.Err())
	}

	c.mu.Lock()
	cands, ok := c.keys[kid]
	c.mu.Unlock()
	if !ok {
		return verificationKey{}, errUnknownKey
	}
	return pick(cands, alg)
}

// pick returns the first candidate that fits alg.
func pick(cands []verificationKey, alg string) (verificationKey, error) {
	for _, k := range cands {
		if k.fits(alg) {
			return k, nil
		}
	}
	return verificationKey{}, errKeyMismatch
}

// startFetchLocked starts a background fetch unless one is in flight or the
// cache is closed, and returns the fetch in flight (nil when closed).
// c.mu must be held.
func (c *keyCache) startFetchLocked(now time.Time) *fetchCall {
	if c.closed {
		return nil
	}
	if c.inflight != nil {
		return c.inflight
	}
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	c.lastAttempt = now
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(call.done)
		keys, err := c.fetch(c.ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inflight = nil
		if err != nil {
			c.cfg.logger.Warn("auth: refreshing the key set failed; keeping the keys held", "error", err)
			return
		}
		c.keys, c.fetchedAt = keys, c.cfg.now()
	}()
	return call
}

// fetch downloads and parses the key set.
func (c *keyCache) fetch(ctx context.Context) (map[string][]verificationKey, error) {
	body, err := getDocument(ctx, c.cfg.client, c.cfg.url)
	if err != nil {
		return nil, err
	}
	return c.parse(body)
}

// parse turns a JWKS document into usable verification keys by key id.
// Keys without a kid, symmetric keys, keys not meant for signatures and
// keys of unsupported types or sizes are skipped; private keys are reduced
// to their public halves.
func (c *keyCache) parse(body []byte) (map[string][]verificationKey, error) {
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true))
	if err != nil {
		return nil, errors.New("the key set is not a valid JWKS document")
	}
	keys := make(map[string][]verificationKey, set.Len())
	skipped := 0
	for i := range set.Len() {
		k, _ := set.Key(i)
		vk, kid, ok := usableKey(k)
		if !ok {
			skipped++
			continue
		}
		keys[kid] = append(keys[kid], vk)
	}
	if skipped > 0 {
		c.cfg.logger.Warn("auth: skipped unusable keys in the key set", "count", skipped)
	}
	if len(keys) == 0 {
		c.cfg.logger.Warn("auth: the key set holds no usable signing keys")
	}
	return keys, nil
}

// usableKey converts a JWK into a verification key, or reports false.
func usableKey(k jwk.Key) (verificationKey, string, bool) {
	if k == nil {
		return verificationKey{}, "", false
	}
	kid, ok := k.KeyID()
	if !ok || kid == "" {
		return verificationKey{}, "", false
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return verificationKey{}, "", false
	}
	if ops, ok := k.KeyOps(); ok && len(ops) > 0 {
		verify := false
		for _, op := range ops {
			if op == jwk.KeyOpVerify {
				verify = true
			}
		}
		if !verify {
			return verificationKey{}, "", false
		}
	}
	var alg string
	if a, ok := k.Algorithm(); ok {
		alg = a.String()
	}
	switch k.KeyType().String() {
	case "RSA", "EC", "OKP":
	default: // "oct" and anything unknown: never a verification key here
		return verificationKey{}, "", false
	}
	pub, err := k.PublicKey()
	if err != nil {
		return verificationKey{}, "", false
	}
	var raw any
	if err := jwk.Export(pub, &raw); err != nil {
		return verificationKey{}, "", false
	}
	switch p := raw.(type) {
	case *rsa.PublicKey:
		if p.N == nil || p.N.BitLen() < minRSABits {
			return verificationKey{}, "", false
		}
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() && p.Curve != elliptic.P384() && p.Curve != elliptic.P521() {
			return verificationKey{}, "", false
		}
	case ed25519.PublicKey:
	default:
		return verificationKey{}, "", false
	}
	return verificationKey{alg: alg, key: raw}, kid, true
}
