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

// setScript stores a value unless the group's floor is above its version.
// KEYS[1] group; ARGV field, value, version, ttl (ms).
var setScript = redis.NewScript(`
local floor = redis.call('HGET', KEYS[1], '` + floorField + `')
if floor and tonumber(floor) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`)

// invalidateScript drops a group's values and leaves its floor, never
// lowering it; an erasure floor keeps its remaining time.
// KEYS[1] group; ARGV version, floor TTL (ms), ErasedFloor.
var invalidateScript = redis.NewScript(`
local floor = tonumber(redis.call('HGET', KEYS[1], '` + floorField + `') or ARGV[1])
if floor >= tonumber(ARGV[3]) then
	for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
		if f ~= '` + floorField + `' then redis.call('HDEL', KEYS[1], f) end
	end
	return 1
end
local v = tonumber(ARGV[1])
if floor > v then v = floor end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '` + floorField + `', string.format('%d', v))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

// Set implements Store. The TTL applies to the group (Redis expires keys,
// not hash fields): a group lives ttl after its newest value.
func (r *Redis) Set(ctx context.Context, group, field string, value []byte, version int64, ttl time.Duration) error {
	return setScript.Run(ctx, r.client, []string{r.prefix + group}, field, value, version, ttl.Milliseconds()).Err()
}

// Invalidate implements Store, in one pipeline for all the groups.
func (r *Redis) Invalidate(ctx context.Context, floors map[string]int64, floorTTL time.Duration) error {
	if len(floors) == 0 {
		return nil
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for g, v := range floors {
			invalidateScript.Eval(ctx, p, []string{r.prefix + g}, v, floorTTL.Milliseconds(), int64(ErasedFloor))
		}
		return nil
	})
	return err
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }
