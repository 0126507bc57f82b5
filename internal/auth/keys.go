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
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
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

// keySetConfig configures a keySet.
type keySetConfig struct {
	url        string
	client     *http.Client
	now        func() time.Time
	minRefresh time.Duration
	ttl        time.Duration
	logger     *slog.Logger
}

// keySet is the issuer's JWKS as a jwk.Cache keeps it: fetched once at
// start, refetched in the background every ttl by the cache's httprc client
// (a failed refetch keeps the keys held), and refetched at once when a token
// names a key id it does not know. Those refetches are shared by concurrent
// callers and rate limited to one per minRefresh, so that random key ids
// cannot turn the service into a fetch amplifier.
type keySet struct {
	url    string
	cache  *jwk.Cache
	jwks   *httprc.ResourceBase[jwk.Set] // read directly: no trip through the cache's loop, and still readable after close
	now    func() time.Time
	logger *slog.Logger

	ctx    context.Context // cancelled by close; parents the cache and every refetch
	cancel context.CancelFunc
	ready  atomic.Bool // the first fetch succeeded: later failures are only logged

	unknownKid *rate.Limiter      // refetches for unknown key ids
	refetches  singleflight.Group // shares one refetch among the callers waiting for it
	index      atomic.Pointer[keyIndex]

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	wg     sync.WaitGroup // refetches in flight
}

// keyIndex is one fetched key set's usable keys by key id.
type keyIndex struct {
	set  jwk.Set
	keys map[string][]verificationKey
}

// newKeySet registers the key set's URL with a new jwk.Cache and waits for
// the first fetch. ctx bounds that wait only; the cache lives until close.
func newKeySet(ctx context.Context, cfg keySetConfig) (*keySet, error) {
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k := &keySet{url: cfg.url, now: cfg.now, logger: cfg.logger, ctx: life, cancel: cancel,
		unknownKid: rate.NewLimiter(rate.Every(cfg.minRefresh), 1)}

	// httprc reports failed background fetches only to an error sink; until
	// the first fetch succeeds, its failure is what NewVerifier returns.
	firstFetch, firstFailed := context.WithCancelCause(ctx)
	defer firstFailed(nil)
	sink := errsink.NewFunc(func(_ context.Context, err error) {
		if life.Err() != nil {
			return // closing: the fetch was cancelled
		}
		if !k.ready.Load() {
			firstFailed(err)
			return
		}
		k.logger.Warn("auth: refreshing the key set failed; keeping the keys held", "error", err)
	})
	cache, err := jwk.NewCache(life, httprc.NewClient(
		httprc.WithWorkers(1), // one URL: fetches need not run in parallel
		httprc.WithErrorSink(sink),
		httprc.WithWhitelist(httprc.NewMapWhitelist().Add(cfg.url)),
	))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: starting the key set cache: %w", err)
	}
	k.cache = cache
	err = cache.Register(ctx, cfg.url,
		jwk.WithHTTPClient(cfg.client),
		jwk.WithMaxFetchBodySize(maxDocumentSize),
		jwk.WithIgnoreParseError(true), // one odd key must not cost the others
		jwk.WithConstantInterval(cfg.ttl),
		jwk.WithMinInterval(cfg.minRefresh), // the retry delay after a failed request
		jwk.WithWaitReady(false),
	)
	if err == nil {
		k.jwks, err = cache.LookupResource(ctx, cfg.url)
	}
	if err == nil {
		if err = k.jwks.Ready(firstFetch); err != nil {
			err = context.Cause(firstFetch)
		}
	}
	if err != nil {
		k.close()
		return nil, fmt.Errorf("auth: fetching the key set: %w", err)
	}
	k.ready.Store(true)
	return k, nil
}

// close stops the cache's fetches, cancels those in flight and waits for
// them. The keys held stay readable.
func (k *keySet) close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	k.wg.Wait()
	_ = k.cache.Shutdown(context.Background())
}

var (
	errUnknownKey    = failure("unknown signing key")
	errKeyMismatch   = failure("signing key does not fit the token's algorithm")
	errLookupAborted = errors.New("key lookup interrupted")
)

// get returns the key with id kid that fits alg, refetching the key set
// once if kid is unknown and the rate limit allows.
func (k *keySet) get(ctx context.Context, kid, alg string) (verificationKey, error) {
	if cands, ok := k.current().keys[kid]; ok {
		return pick(cands, alg)
	}
	if err := k.refetch(ctx); err != nil {
		return verificationKey{}, err
	}
	// Also when the refetch was refused: another may have just brought kid.
	if cands, ok := k.current().keys[kid]; ok {
		return pick(cands, alg)
	}
	return verificationKey{}, errUnknownKey
}

// refetch makes the cache fetch the key set now and waits for it, unless
// the limit on unknown-kid refetches is reached or the set is closed; then
// it returns at once. Callers arriving while a refetch is in flight wait for
// that one instead of starting another. The only error is ctx's.
func (k *keySet) refetch(ctx context.Context) error {
	done := k.refetches.DoChan("", func() (any, error) {
		k.mu.Lock()
		if k.closed || !k.unknownKid.AllowN(k.now(), 1) {
			k.mu.Unlock()
			return nil, nil
		}
		k.wg.Add(1)
		k.mu.Unlock()
		defer k.wg.Done()
		if _, err := k.cache.Refresh(k.ctx, k.url); err != nil && k.ctx.Err() == nil {
			k.logger.Warn("auth: refetching the key set for an unknown key id failed; keeping the keys held", "error", err)
		}
		return nil, nil
	})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w: %w", ErrUnauthenticated, errLookupAborted, ctx.Err())
	}
}

// current returns the index of the key set the cache holds now, building
// it when the cache has fetched a new set since the last call.
func (k *keySet) current() *keyIndex {
	set := k.jwks.Resource()
	if idx := k.index.Load(); idx != nil && idx.set == set {
		return idx
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if idx := k.index.Load(); idx != nil && idx.set == set {
		return idx
	}
	idx := &keyIndex{set: set, keys: usableKeys(set, k.logger)}
	k.index.Store(idx)
	return idx
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

// usableKeys returns the verification keys of set by key id. Keys without
// a kid, symmetric keys, keys not meant for signatures and keys of
// unsupported types or sizes are skipped; private keys are reduced to their
// public halves.
func usableKeys(set jwk.Set, logger *slog.Logger) map[string][]verificationKey {
	keys := make(map[string][]verificationKey)
	if set == nil {
		return keys
	}
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
		logger.Warn("auth: skipped unusable keys in the key set", "count", skipped)
	}
	if len(keys) == 0 {
		logger.Warn("auth: the key set holds no usable signing keys")
	}
	return keys
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
