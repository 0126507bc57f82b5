package httpapi

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// tenantLimiter is a token bucket per tenant: one noisy tenant gets 429s
// while the others are served. Buckets idle for longer than it takes to
// refill are forgotten, so memory follows the active tenants.
type tenantLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newTenantLimiter(perSecond float64, burst int) *tenantLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &tenantLimiter{limit: rate.Limit(perSecond), burst: max(1, burst), buckets: map[string]*bucket{}}
}

// allow takes a token of the tenant's bucket, or says how long to wait.
func (l *tenantLimiter) allow(tenant string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		idle := time.Duration(float64(l.burst)/float64(l.limit)*float64(time.Second)) + time.Minute
		for t, b := range l.buckets {
			if now.Sub(b.seen) > idle {
				delete(l.buckets, t)
			}
		}
		l.swept = now
	}
	b := l.buckets[tenant]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[tenant] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
