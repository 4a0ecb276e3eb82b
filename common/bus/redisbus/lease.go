package redisbus

import (
	"context"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/bus"
)

// A position lease is the key "<prefix>:lease:<key>" holding its owner's
// name, set with SET NX PX and renewed (PEXPIRE) by the owner every third
// of claim_idle, the time after which the bus takes a dead member's work
// over everywhere: a dead source's lease expires after claim_idle too.

// takeLease sets the lease to owner if it is free or owner's, for ttl ms.
var takeLease = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	return 1
end
return 0`)

// dropLease deletes the lease if owner holds it.
var dropLease = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

// LeaseKey returns the key of the lease on a position key.
func (b *Bus) LeaseKey(key string) string { return b.prefix + ":lease:" + key }

// Lease takes the lease on key (see bus.PositionStore).
func (p positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	owner := consumerName()
	k := b.LeaseKey(key)
	l, err := bus.RenewedLease(ctx, bus.LeaseOps{
		TTL: b.claimIdle,
		Take: func(ctx context.Context) (bool, error) {
			n, err := takeLease.Run(ctx, b.rdb, []string{k}, owner, b.claimIdle.Milliseconds()).Int()
			if err != nil {
				return false, b.wrap(err, "taking the lease on position %q", key)
			}
			return n == 1, nil
		},
		Release: func(ctx context.Context) error {
			if err := dropLease.Run(ctx, b.rdb, []string{k}, owner).Err(); err != nil {
				return b.wrap(err, "releasing the lease on position %q", key)
			}
			return nil
		},
	}, waiting)
	return l, err
}
