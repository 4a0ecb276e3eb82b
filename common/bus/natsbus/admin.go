package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/bus"
)

var _ bus.Admin = (*Bus)(nil)

// partitionOf describes the one partition of a stream: offsets are stream
// sequences; an empty stream's first and end are its last sequence + 1.
func partitionOf(st jetstream.StreamState) bus.PartitionInfo {
	end := int64(st.LastSeq) + 1
	p := bus.PartitionInfo{First: end, End: end, Bytes: int64(st.Bytes)}
	if st.Msgs > 0 {
		p.First = int64(st.FirstSeq)
		p.Records = int64(st.Msgs)
	}
	return p
}

// retentionOf returns the stream's limits as a topic's retention (-1: no
// limit).
func retentionOf(cfg jetstream.StreamConfig) bus.TopicConfig {
	r := bus.TopicConfig{RetentionAge: cfg.MaxAge, RetentionBytes: cfg.MaxBytes}
	if r.RetentionAge <= 0 {
		r.RetentionAge = -1
	}
	if r.RetentionBytes <= 0 {
		r.RetentionBytes = -1
	}
	return r
}

// setRetention sets the stream limits that r sets: MaxAge and MaxBytes (0
// and -1 for unlimited). The duplicate window may not be longer than
// MaxAge, so it is shortened to it.
func setRetention(cfg *jetstream.StreamConfig, r bus.TopicConfig) {
	switch {
	case r.RetentionAge > 0:
		cfg.MaxAge = r.RetentionAge
		if cfg.Duplicates == 0 || cfg.Duplicates > cfg.MaxAge {
			cfg.Duplicates = min(cfg.MaxAge, 2*time.Minute)
		}
	case r.RetentionAge < 0:
		cfg.MaxAge = 0
	}
	switch {
	case r.RetentionBytes > 0:
		cfg.MaxBytes = r.RetentionBytes
	case r.RetentionBytes < 0:
		cfg.MaxBytes = -1
	}
}

// topicStream returns the stream of an existing topic with fresh info;
// bus.ErrNotFound when there is none.
func (b *Bus) topicStream(ctx context.Context, topic string) (jetstream.Stream, *jetstream.StreamInfo, error) {
	if b.isClosed() {
		return nil, nil, bus.ErrClosed
	}
	if topic == "" {
		return nil, nil, fmt.Errorf("topic \"\": %w", bus.ErrNotFound)
	}
	s, err := b.js.Stream(ctx, streamName(b.opts.Namespace, topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, fmt.Errorf("topic %q: %w", topic, bus.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading topic %q: %w", topic, b.closedErr(err))
	}
	info := s.CachedInfo()
	if err := b.checkSubjects(topic, info); err != nil {
		return nil, nil, err
	}
	return s, info, nil
}

// groupsOf returns the durable consumers of a stream that are groups
// (their names are escaped group names), sorted by group.
func (b *Bus) groupsOf(ctx context.Context, s jetstream.Stream) (groups []string, infos []*jetstream.ConsumerInfo, err error) {
	l := s.ListConsumers(ctx)
	type g struct {
		name string
		info *jetstream.ConsumerInfo
	}
	var all []g
	for ci := range l.Info() {
		if ci.Config.Durable == "" {
			continue
		}
		if name, ok := unescape(ci.Name); ok {
			all = append(all, g{name, ci})
		}
	}
	if err := l.Err(); err != nil {
		return nil, nil, fmt.Errorf("listing the groups of stream %s: %w", s.CachedInfo().Config.Name, b.closedErr(err))
	}
	slices.SortFunc(all, func(x, y g) int { return strings.Compare(x.name, y.name) })
	for _, x := range all {
		groups = append(groups, x.name)
		infos = append(infos, x.info)
	}
	return groups, infos, nil
}

// topicInfo describes a topic from its stream's info and groups.
func topicInfo(topic string, info *jetstream.StreamInfo, groups []string) bus.TopicInfo {
	p := partitionOf(info.State)
	if groups == nil {
		groups = []string{}
	}
	return bus.TopicInfo{
		Name: topic, Partitions: []bus.PartitionInfo{p}, Records: p.Records, Bytes: p.Bytes,
		Retention: retentionOf(info.Config), Groups: groups,
	}
}

// topicStreams calls f for every topic's stream, sorted by topic.
func (b *Bus) topicStreams(ctx context.Context, f func(topic string, s jetstream.Stream, info *jetstream.StreamInfo) error) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	pattern := "culvert.*"
	if ns := b.opts.Namespace; ns != "" {
		pattern = "culvert." + ns + ".*"
	}
	l := b.js.ListStreams(ctx, jetstream.WithStreamListSubject(pattern))
	type st struct {
		topic string
		info  *jetstream.StreamInfo
	}
	var all []st
	for info := range l.Info() {
		topic, ok := topicOf(b.opts.Namespace, info.Config.Name)
		if ok && b.checkSubjects(topic, info) == nil {
			all = append(all, st{topic, info})
		}
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("listing topics: %w", b.closedErr(err))
	}
	slices.SortFunc(all, func(x, y st) int { return strings.Compare(x.topic, y.topic) })
	for _, x := range all {
		s, err := b.js.Stream(ctx, x.info.Config.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("reading topic %q: %w", x.topic, b.closedErr(err))
		}
		if err := f(x.topic, s, s.CachedInfo()); err != nil {
			return err
		}
	}
	return nil
}

// Topics returns every topic (stream of this bus's namespace), sorted.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicInfo, error) {
	out := []bus.TopicInfo{}
	err := b.topicStreams(ctx, func(topic string, s jetstream.Stream, info *jetstream.StreamInfo) error {
		groups, _, err := b.groupsOf(ctx, s)
		if err != nil {
			return err
		}
		out = append(out, topicInfo(topic, info, groups))
		return nil
	})
	return out, err
}

// Topic describes one topic: its stream's state and limits, and its
// groups (durable consumers).
func (b *Bus) Topic(ctx context.Context, name string) (bus.TopicInfo, error) {
	s, info, err := b.topicStream(ctx, name)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	groups, _, err := b.groupsOf(ctx, s)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	return topicInfo(name, info, groups), nil
}

// CreateTopic creates the topic's stream with cfg's limits (MaxAge,
// MaxBytes; none by default).
func (b *Bus) CreateTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	if name == "" {
		return errors.New("creating a topic: the name must not be empty")
	}
	sc := b.streamConfig(name)
	if _, err := b.js.Stream(ctx, sc.Name); err == nil {
		return fmt.Errorf("topic %q: %w", name, bus.ErrExists)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("creating topic %q: %w", name, b.closedErr(err))
	}
	setRetention(&sc, cfg)
	if _, err := b.js.CreateStream(ctx, sc); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("topic %q: %w", name, bus.ErrExists)
	} else if err != nil {
		return fmt.Errorf("creating topic %q: %w", name, b.closedErr(err))
	}
	return nil
}

// AlterTopic changes the stream's limits that cfg sets (UpdateStream).
func (b *Bus) AlterTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	_, info, err := b.topicStream(ctx, name)
	if err != nil {
		return err
	}
	sc := info.Config
	setRetention(&sc, cfg)
	if _, err := b.js.UpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("altering topic %q: %w", name, b.closedErr(err))
	}
	return nil
}

// DeleteTopic deletes the topic's stream, which deletes its groups
// (consumers) too.
func (b *Bus) DeleteTopic(ctx context.Context, name string, force bool) error {
	_, info, err := b.topicStream(ctx, name)
	if err != nil {
		return err
	}
	if !force {
		live, err := b.liveMembers(ctx, name)
		if err != nil {
			return err
		}
		for k, members := range live {
			return fmt.Errorf("deleting topic %q: group %q %w (%s)", name, k.group, bus.ErrActive, strings.Join(members, ", "))
		}
	}
	err = b.js.DeleteStream(ctx, info.Config.Name)
	b.forget(name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("topic %q: %w", name, bus.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("deleting topic %q: %w", name, b.closedErr(err))
	}
	return nil
}

// Groups returns the groups of topic (every topic's when topic is ""):
// committed is the consumer's ack floor + 1, active means that a member
// has a live entry in the members bucket.
func (b *Bus) Groups(ctx context.Context, topic string) ([]bus.GroupInfo, error) {
	live, err := b.liveMembers(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := []bus.GroupInfo{}
	add := func(topic string, s jetstream.Stream, info *jetstream.StreamInfo) error {
		groups, infos, err := b.groupsOf(ctx, s)
		if err != nil {
			return err
		}
		p := partitionOf(info.State)
		for i, g := range groups {
			out = append(out, groupInfo(topic, g, p, infos[i], live[groupKey{topic, g}]))
		}
		return nil
	}
	if topic == "" {
		return out, b.topicStreams(ctx, add)
	}
	s, info, err := b.topicStream(ctx, topic)
	if err != nil {
		return nil, err
	}
	return out, add(topic, s, info)
}

// groupInfo describes a group on a one-partition topic.
func groupInfo(topic, group string, p bus.PartitionInfo, ci *jetstream.ConsumerInfo, members []string) bus.GroupInfo {
	next := committedOf(ci)
	next = min(max(next, p.First), p.End)
	gp := bus.GroupPartition{Committed: next, End: p.End, Lag: p.End - next}
	return bus.GroupInfo{
		Topic: topic, Group: group, Partitions: []bus.GroupPartition{gp}, Lag: gp.Lag,
		Active: len(members) > 0, Members: members,
	}
}

// committedOf returns the next offset the group reads: after its ack floor
// once it acknowledged a record. Before its first acknowledgement the
// server reports an ack floor of 0 (nats-server 2.9), and the records
// delivered and not acknowledged are the last ones delivered, so the group
// is that many before what it would be delivered next.
func committedOf(ci *jetstream.ConsumerInfo) int64 {
	if ci.AckFloor.Consumer > 0 {
		return int64(ci.AckFloor.Stream) + 1
	}
	return int64(ci.Delivered.Stream) + 1 - int64(ci.NumAckPending)
}

// checkInactive returns bus.ErrActive when the group has a live member.
func (b *Bus) checkInactive(ctx context.Context, topic, group, doing string) error {
	live, err := b.liveMembers(ctx, topic)
	if err != nil {
		return err
	}
	if members := live[groupKey{topic, group}]; len(members) > 0 {
		return fmt.Errorf("%s group %q of topic %q: it %w (%s)", doing, group, topic, bus.ErrActive, strings.Join(members, ", "))
	}
	return nil
}

// ResetGroup moves the group by making its durable consumer again, with
// the same configuration, starting at the offset asked for (JetStream
// cannot move an existing consumer): by start sequence, or by start time
// for bus.ResetTime (the first record the server stored at or after it).
func (b *Bus) ResetGroup(ctx context.Context, topic, group string, opts bus.ResetOptions) error {
	s, info, err := b.topicStream(ctx, topic)
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
	p := partitionOf(info.State)
	name := consumerName(group)
	cfg := b.groupConfig(group)
	exists := false
	if c, err := s.Consumer(ctx, name); err == nil {
		cfg, exists = c.CachedInfo().Config, true
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("reading group %q of topic %q: %w", group, topic, b.closedErr(err))
	}
	cfg.OptStartSeq, cfg.OptStartTime = 0, nil
	cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	switch opts.To {
	case bus.ResetEarliest:
		cfg.OptStartSeq = uint64(p.First)
	case bus.ResetLatest:
		cfg.OptStartSeq = uint64(p.End)
	case bus.ResetOffset:
		if opts.Offset > p.End {
			return fmt.Errorf("resetting group %q of topic %q to offset %d: the end is %d: %w", group, topic, opts.Offset, p.End, bus.ErrOutOfRange)
		}
		cfg.OptStartSeq = uint64(max(opts.Offset, p.First))
	case bus.ResetTime:
		t := opts.Time
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		return fmt.Errorf("resetting group %q: unknown reset %d", group, opts.To)
	}
	if exists {
		if err := s.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("resetting group %q of topic %q: %w", group, topic, b.closedErr(err))
		}
	}
	if _, err := s.CreateConsumer(ctx, cfg); err != nil {
		return fmt.Errorf("resetting group %q of topic %q: %w", group, topic, b.closedErr(err))
	}
	return nil
}

// DeleteGroup deletes the group's durable consumer.
func (b *Bus) DeleteGroup(ctx context.Context, topic, group string, force bool) error {
	s, _, err := b.topicStream(ctx, topic)
	if err != nil {
		return err
	}
	name := consumerName(group)
	if _, err := s.Consumer(ctx, name); errors.Is(err, jetstream.ErrConsumerNotFound) || group == "" {
		return fmt.Errorf("group %q of topic %q: %w", group, topic, bus.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("reading group %q of topic %q: %w", group, topic, b.closedErr(err))
	}
	if !force {
		if err := b.checkInactive(ctx, topic, group, "deleting"); err != nil {
			return err
		}
	}
	if err := s.DeleteConsumer(ctx, name); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("group %q of topic %q: %w", group, topic, bus.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("deleting group %q of topic %q: %w", group, topic, b.closedErr(err))
	}
	return nil
}
