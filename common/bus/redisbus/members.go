package redisbus

import (
	"context"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// A live member of a group says so in the sorted set
// "<prefix>:members:<topic>": its member is memberOf(group, consumer), its
// score the time (Unix ms) until which it counts as there. Subscribe adds
// it, the member renews it every third of claim_idle, Close removes it; a
// member that died stays for claim_idle, as long as its pending records
// stay with it. Each renewal also drops entries that expired claim_idle
// ago.

// MembersKey returns the key of the sorted set of the live members of
// topic's groups.
func (b *Bus) MembersKey(topic string) string { return b.prefix + ":members:" + topic }

// memberOf is a member's entry in the members set: the group's length, ":",
// the group and the consumer name, so that any group name can be read back.
func memberOf(group, consumer string) string {
	return strconv.Itoa(len(group)) + ":" + group + consumer
}

// parseMember is the inverse of memberOf.
func parseMember(m string) (group, consumer string, ok bool) {
	n, rest, ok := strings.Cut(m, ":")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l < 0 || l > len(rest) {
		return "", "", false
	}
	return rest[:l], rest[l:], true
}

// present adds or renews this member's entry.
func (s *subscription) present(ctx context.Context) error {
	now := time.Now()
	key := s.b.MembersKey(s.topic)
	_, err := s.b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, key, goredis.Z{Score: float64(now.Add(s.b.claimIdle).UnixMilli()), Member: memberOf(s.group, s.consumer)})
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now.Add(-s.b.claimIdle).UnixMilli(), 10))
		return nil
	})
	if err != nil {
		return s.b.wrap(err, "saying that member %s of group %q of topic %q is there", s.consumer, s.group, s.topic)
	}
	return nil
}

// heartbeat renews this member's entry every third of claim_idle until
// Close; a renewal that fails is tried again next time.
func (s *subscription) heartbeat() {
	defer close(s.beaten)
	t := time.NewTicker(s.b.claimIdle / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(s.b.claimIdle/3, time.Second))
		s.present(ctx)
		cancel()
	}
}

// absent removes this member's entry.
func (s *subscription) absent(ctx context.Context) error {
	if err := s.b.rdb.ZRem(ctx, s.b.MembersKey(s.topic), memberOf(s.group, s.consumer)).Err(); err != nil {
		return s.b.wrap(err, "leaving group %q of topic %q", s.group, s.topic)
	}
	return nil
}

// liveMembers returns the consumer names of the live members of topic's
// groups, by group, in consumer order.
func (b *Bus) liveMembers(ctx context.Context, topic string) (map[string][]string, error) {
	ms, err := b.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: b.MembersKey(topic), ByScore: true,
		Start: strconv.FormatInt(time.Now().UnixMilli(), 10), Stop: "+inf",
	}).Result()
	if err != nil {
		return nil, b.wrap(err, "reading the members of the groups of topic %q", topic)
	}
	live := map[string][]string{}
	for _, m := range ms {
		if g, c, ok := parseMember(m); ok {
			live[g] = append(live[g], c)
		}
	}
	return live, nil
}
