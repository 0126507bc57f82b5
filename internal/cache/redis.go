package cache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store on Redis: each group is a hash (one key per entity), so
// that invalidation is one DEL and every replica sees it.
type Redis struct {
	client *redis.Client
	prefix string
}

// NewRedis returns a Store on the client; keys start with prefix.
func NewRedis(client *redis.Client, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, group, field string) ([]byte, bool, error) {
	b, err := r.client.HGet(ctx, r.prefix+group, field).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// Set implements Store. The TTL applies to the group (Redis expires keys,
// not hash fields): a group lives ttl after its newest value.
func (r *Redis) Set(ctx context.Context, group, field string, value []byte, ttl time.Duration) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, r.prefix+group, field, value)
		p.Expire(ctx, r.prefix+group, ttl)
		return nil
	})
	return err
}

// Invalidate implements Store.
func (r *Redis) Invalidate(ctx context.Context, groups ...string) error {
	if len(groups) == 0 {
		return nil
	}
	keys := make([]string, len(groups))
	for i, g := range groups {
		keys[i] = r.prefix + g
	}
	return r.client.Del(ctx, keys...).Err()
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }
