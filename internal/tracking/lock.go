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

// lock waits for the key's stripe and returns its release.
func (l *stripedLock) lock(ctx context.Context, tenant, id string) (func(), error) {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(id)
	c := l.stripes[h.Sum64()%uint64(len(l.stripes))]
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
