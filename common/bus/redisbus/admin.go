package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/bus"
	redisclient "github.com/culvert-dev/culvert/common/client/redis"
)

var _ bus.Admin = (*Bus)(nil)

// stream is what the admin reads of a topic's stream.
type stream struct {
	part      bus.PartitionInfo
	last      string // the last ID Redis generated (0-0: none)
	groups    []goredis.XInfoGroup
	retention bus.TopicConfig
}

// readStream reads topic's stream, its groups and its retention;
// bus.ErrNotFound when there is no stream.
func (b *Bus) readStream(ctx context.Context, topic string) (stream, error) {
	if b.closed.Load() {
		return stream{}, bus.ErrClosed
	}
	key := b.StreamKey(topic)
	var typ *goredis.StatusCmd
	var info *goredis.XInfoStreamCmd
	var mem *goredis.IntCmd
	var get *goredis.StringCmd
	var groups *goredis.XInfoGroupsCmd
	cmds, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		typ = p.Type(ctx, key)
		info = p.XInfoStream(ctx, key)
		mem = p.MemoryUsage(ctx, key)
		get = p.HGet(ctx, b.RetentionKey(), topic)
		groups = p.XInfoGroups(ctx, key)
		return nil
	})
	// The commands' own errors (no such key) are read below; a pipeline
	// that failed as a whole without them (no connection) leaves every
	// command empty and without error.
	if err := redisclient.PipelineErr(cmds, err); err != nil {
		return stream{}, b.wrap(err, "reading topic %q", topic)
	}
	switch t, err := typ.Result(); {
	case err != nil:
		return stream{}, b.wrap(err, "reading topic %q", topic)
	case t == "none":
		return stream{}, fmt.Errorf("topic %q: %w", topic, bus.ErrNotFound)
	case t != "stream":
		return stream{}, fmt.Errorf("redis bus: key %s holds a %s, not the stream of topic %q", key, t, topic)
	}
	si, err := info.Result()
	if err != nil {
		return stream{}, b.wrap(err, "reading topic %q", topic)
	}
	gs, err := groups.Result()
	if err != nil {
		return stream{}, b.wrap(err, "reading the groups of topic %q", topic)
	}
	slices.SortFunc(gs, func(x, y goredis.XInfoGroup) int { return strings.Compare(x.Name, y.Name) })
	cfg, err := decodeRetention(get)
	if err != nil {
		return stream{}, err
	}
	last := si.LastGeneratedID
	if last == "" {
		last = "0-0"
	}
	end, err := idToOffset(last)
	if err != nil {
		return stream{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	end++
	p := bus.PartitionInfo{First: end, End: end, Records: si.Length, Bytes: -1}
	if n, err := mem.Result(); err == nil {
		p.Bytes = n
	}
	if si.Length > 0 {
		if p.First, err = idToOffset(si.FirstEntry.ID); err != nil {
			return stream{}, fmt.Errorf("topic %q: %w", topic, err)
		}
	}
	return stream{part: p, last: last, groups: gs, retention: reported(cfg)}, nil
}

func (st stream) info(topic string) bus.TopicInfo {
	groups := make([]string, len(st.groups))
	for i, g := range st.groups {
		groups[i] = g.Name
	}
	return bus.TopicInfo{
		Name: topic, Partitions: []bus.PartitionInfo{st.part}, Records: st.part.Records, Bytes: st.part.Bytes,
		Retention: st.retention, Groups: groups,
	}
}

// topicNames returns the topics of the bus (its streams), sorted.
func (b *Bus) topicNames(ctx context.Context) ([]string, error) {
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	prefix := b.StreamKey("")
	var names []string
	iter := b.rdb.ScanType(ctx, 0, globEscape(prefix)+"*", 1000, "stream").Iterator()
	for iter.Next(ctx) {
		names = append(names, strings.TrimPrefix(iter.Val(), prefix))
	}
	if err := iter.Err(); err != nil {
		return nil, b.wrap(err, "listing topics")
	}
	slices.Sort(names)
	return slices.Compact(names), nil // SCAN may return a key twice
}

// globEscape escapes the characters that are special in a SCAN MATCH
// pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

// Topics returns every topic (stream under the bus's prefix), sorted.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicInfo, error) {
	names, err := b.topicNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]bus.TopicInfo, 0, len(names))
	for _, name := range names {
		st, err := b.readStream(ctx, name)
		if errors.Is(err, bus.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st.info(name))
	}
	return out, nil
}

// Topic describes one topic: Records is the stream's length, Bytes its
// MEMORY USAGE (an estimate, -1 where the server refuses it).
func (b *Bus) Topic(ctx context.Context, name string) (bus.TopicInfo, error) {
	st, err := b.readStream(ctx, name)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	return st.info(name), nil
}

// checkBytesRetention returns an error wrapping bus.ErrUnsupported when cfg
// sets a retention in bytes and the server refuses MEMORY USAGE, which
// applying it needs.
func (b *Bus) checkBytesRetention(ctx context.Context, cfg bus.TopicConfig) error {
	if cfg.RetentionBytes <= 0 {
		return nil
	}
	if err := b.rdb.MemoryUsage(ctx, b.RetentionKey()).Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("retention in bytes: redis %s refuses MEMORY USAGE (%v), which measures a topic: %w", b.redacted, err, bus.ErrUnsupported)
	}
	return nil
}

// CreateTopic makes an empty stream for the topic and stores its
// retention.
func (b *Bus) CreateTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if name == "" {
		return errors.New("creating a topic: the name must not be empty")
	}
	if err := b.checkBytesRetention(ctx, cfg); err != nil {
		return err
	}
	key := b.StreamKey(name)
	switch n, err := b.rdb.Exists(ctx, key).Result(); {
	case err != nil:
		return b.wrap(err, "creating topic %q", name)
	case n > 0:
		return fmt.Errorf("topic %q: %w", name, bus.ErrExists)
	}
	stored, _ := json.Marshal(merged(bus.TopicConfig{}, cfg))
	var r [8]byte
	rand.Read(r[:])
	tmp := "culvert-create-" + hex.EncodeToString(r[:])
	// A group made with MKSTREAM and destroyed leaves an empty stream.
	_, err := b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XGroupCreateMkStream(ctx, key, tmp, "$")
		p.XGroupDestroy(ctx, key, tmp)
		p.HSet(ctx, b.RetentionKey(), name, stored)
		return nil
	})
	b.forgetRetention(name)
	if err != nil {
		return b.wrap(err, "creating topic %q", name)
	}
	return nil
}

// AlterTopic stores the retention fields that cfg sets and applies them at
// once (XTRIM), as every later Publish does.
func (b *Bus) AlterTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if err := b.checkBytesRetention(ctx, cfg); err != nil {
		return err
	}
	if _, err := b.readStream(ctx, name); err != nil {
		return err
	}
	cur, _, _, err := b.readRetention(ctx, name)
	if err != nil {
		return err
	}
	stored, _ := json.Marshal(merged(cur, cfg))
	if err := b.rdb.HSet(ctx, b.RetentionKey(), name, stored).Err(); err != nil {
		return b.wrap(err, "altering topic %q", name)
	}
	b.forgetRetention(name)
	r := b.retentionOf(ctx, name)
	if _, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		r.trim(ctx, p, b.StreamKey(name))
		return nil
	}); err != nil {
		return b.wrap(err, "applying the retention of topic %q", name)
	}
	return nil
}

// DeleteTopic deletes the topic's stream (and with it its groups), its
// retention and its members.
func (b *Bus) DeleteTopic(ctx context.Context, name string, force bool) error {
	st, err := b.readStream(ctx, name)
	if err != nil {
		return err
	}
	if !force {
		live, err := b.liveMembers(ctx, name)
		if err != nil {
			return err
		}
		for _, g := range st.groups {
			if ms := live[g.Name]; len(ms) > 0 {
				return fmt.Errorf("deleting topic %q: group %q %w (%s)", name, g.Name, bus.ErrActive, strings.Join(ms, ", "))
			}
		}
	}
	_, err = b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, b.StreamKey(name), b.MembersKey(name))
		p.HDel(ctx, b.RetentionKey(), name)
		return nil
	})
	b.forgetRetention(name)
	if err != nil {
		return b.wrap(err, "deleting topic %q", name)
	}
	return nil
}

// Groups returns the consumer groups of topic (every topic's when topic is
// ""), sorted by topic and group.
func (b *Bus) Groups(ctx context.Context, topic string) ([]bus.GroupInfo, error) {
	topics := []string{topic}
	if topic == "" {
		var err error
		if topics, err = b.topicNames(ctx); err != nil {
			return nil, err
		}
	}
	out := []bus.GroupInfo{}
	for _, t := range topics {
		st, err := b.readStream(ctx, t)
		if errors.Is(err, bus.ErrNotFound) && topic == "" {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		live, err := b.liveMembers(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, g := range st.groups {
			gi, err := b.groupInfo(ctx, t, st, g, live[g.Name])
			if err != nil {
				return nil, err
			}
			out = append(out, gi)
		}
	}
	return out, nil
}

// groupInfo describes a group: its committed offset is that of its oldest
// pending entry (delivered, not acknowledged), else that of the first entry
// after its last delivered one, else the end; its lag counts the entries
// from there to the end.
func (b *Bus) groupInfo(ctx context.Context, topic string, st stream, g goredis.XInfoGroup, members []string) (bus.GroupInfo, error) {
	undelivered, err := b.undelivered(ctx, topic, g)
	if err != nil {
		return bus.GroupInfo{}, err
	}
	next := st.part.End
	lag := undelivered
	if g.Pending == 0 && undelivered > 0 {
		es, err := b.rdb.XRangeN(ctx, b.StreamKey(topic), "("+g.LastDeliveredID, "+", 1).Result()
		if err != nil {
			return bus.GroupInfo{}, b.wrap(err, "reading group %q of topic %q", g.Name, topic)
		}
		if len(es) > 0 {
			if next, err = idToOffset(es[0].ID); err != nil {
				return bus.GroupInfo{}, fmt.Errorf("group %q of topic %q: %w", g.Name, topic, err)
			}
		}
	}
	if g.Pending > 0 {
		pending, err := b.rdb.XPending(ctx, b.StreamKey(topic), g.Name).Result()
		if err != nil {
			return bus.GroupInfo{}, b.wrap(err, "reading group %q of topic %q", g.Name, topic)
		}
		if next, err = idToOffset(pending.Lower); err != nil {
			return bus.GroupInfo{}, fmt.Errorf("group %q of topic %q: %w", g.Name, topic, err)
		}
		n, err := b.count(ctx, topic, pending.Lower, g.LastDeliveredID)
		if err != nil {
			return bus.GroupInfo{}, err
		}
		lag += n
	}
	p := st.part
	next = min(max(next, p.First), p.End)
	slices.Sort(members)
	return bus.GroupInfo{
		Topic: topic, Group: g.Name, Lag: lag,
		Partitions: []bus.GroupPartition{{Committed: next, End: p.End, Lag: lag}},
		Active:     len(members) > 0, Members: members,
	}, nil
}

// checkInactive returns bus.ErrActive when the group has a live member.
func (b *Bus) checkInactive(ctx context.Context, topic, group, doing string) error {
	live, err := b.liveMembers(ctx, topic)
	if err != nil {
		return err
	}
	if ms := live[group]; len(ms) > 0 {
		slices.Sort(ms)
		return fmt.Errorf("%s group %q of topic %q: it %w (%s)", doing, group, topic, bus.ErrActive, strings.Join(ms, ", "))
	}
	return nil
}

// ResetGroup makes the group again (XGROUP DESTROY and CREATE in one
// transaction, so that entries it had pending are not delivered again)
// with its last delivered ID just before the offset asked for. A time
// selects the first entry whose ID, the Redis server's clock in
// milliseconds when it was added, is at or after it.
func (b *Bus) ResetGroup(ctx context.Context, topic, group string, opts bus.ResetOptions) error {
	st, err := b.readStream(ctx, topic)
	if err != nil {
		return err
	}
	if group == "" {
		return errors.New("resetting a group: the group must not be empty")
	}
	if !opts.Force {
		if err := b.checkInactive(ctx, topic, group, "resetting"); err != nil {
			return err
		}
	}
	key := b.StreamKey(topic)
	var id string // the new last delivered ID
	switch opts.To {
	case bus.ResetEarliest:
		id = "0-0"
	case bus.ResetLatest:
		id = st.last
	case bus.ResetOffset:
		if opts.Offset > st.part.End {
			return fmt.Errorf("resetting group %q of topic %q to offset %d: the end is %d: %w", group, topic, opts.Offset, st.part.End, bus.ErrOutOfRange)
		}
		id = offsetToID(opts.Offset - 1)
	case bus.ResetTime:
		id = "0-0"
		if ms := opts.Time.UnixMilli(); ms > 0 {
			before, err := b.rdb.XRevRangeN(ctx, key, "("+strconv.FormatInt(ms, 10)+"-0", "-", 1).Result()
			if err != nil {
				return b.wrap(err, "finding the records of topic %q before %s", topic, opts.Time.Format(time.RFC3339Nano))
			}
			if len(before) > 0 {
				id = before[0].ID
			}
		}
	default:
		return fmt.Errorf("resetting group %q: unknown reset %d", group, opts.To)
	}
	_, err = b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XGroupDestroy(ctx, key, group)
		p.XGroupCreate(ctx, key, group, id)
		return nil
	})
	if err != nil {
		return b.wrap(err, "resetting group %q of topic %q", group, topic)
	}
	return nil
}

// DeleteGroup deletes the group (XGROUP DESTROY).
func (b *Bus) DeleteGroup(ctx context.Context, topic, group string, force bool) error {
	st, err := b.readStream(ctx, topic)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(st.groups, func(g goredis.XInfoGroup) bool { return g.Name == group }) {
		return fmt.Errorf("group %q of topic %q: %w", group, topic, bus.ErrNotFound)
	}
	if !force {
		if err := b.checkInactive(ctx, topic, group, "deleting"); err != nil {
			return err
		}
	}
	n, err := b.rdb.XGroupDestroy(ctx, b.StreamKey(topic), group).Result()
	if err != nil {
		return b.wrap(err, "deleting group %q of topic %q", group, topic)
	}
	if n == 0 {
		return fmt.Errorf("group %q of topic %q: %w", group, topic, bus.ErrNotFound)
	}
	return nil
}
