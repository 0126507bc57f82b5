package tracking

import (
	"context"
	"hash/maphash"
)

// stripedLock serializes work per (tenant, entity) key over a fixed set of
// stripes. Unlike a sync.Mutex, waiting for a stripe honours the context.
type stripedLock struct {
	seed    maphash.Seed
	stripes []chan struct{}
}

func newStripedLock(n int) *stripedLock {
	l := &stripedLock{seed: maphash.MakeSeed(), stripes: make([]chan struct{}, n)}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

// stripe returns the index of the key's stripe.
func (l *stripedLock) stripe(tenant, id string) int {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(id)
	return int(h.Sum64() % uint64(len(l.stripes)))
}

// tryLock takes stripe i if it is free, without waiting.
func (l *stripedLock) tryLock(i int) bool {
	select {
	case l.stripes[i] <- struct{}{}:
		return true
	default:
		return false
	}
}

// unlock releases stripe i, taken with tryLock.
func (l *stripedLock) unlock(i int) { <-l.stripes[i] }

// lock waits for the key's stripe and returns its release.
func (l *stripedLock) lock(ctx context.Context, tenant, id string) (func(), error) {
	c := l.stripes[l.stripe(tenant, id)]
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
