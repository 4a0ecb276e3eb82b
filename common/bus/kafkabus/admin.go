package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/bus"
	kafkaclient "github.com/culvert-dev/culvert/common/client/kafka"
)

var _ bus.Admin = (*Bus)(nil)

// fresh makes kadm ask the cluster for topic metadata instead of answering
// from the client's cache, which can be seconds old (a topic just created
// or deleted): kadm bypasses the cache when authorized operations are
// asked for.
func fresh(ctx context.Context) context.Context { return kadm.WithAuthorizedOps(ctx) }

// Topics returns every topic of the cluster but Kafka's internal ones and
// the bus's positions topic.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicInfo, error) {
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	var td kadm.TopicDetails
	err := retry(ctx, func() (err error) {
		td, err = b.adm.ListTopics(fresh(ctx))
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "listing topics")
	}
	var names []string
	for _, name := range td.Names() {
		if name != b.opts.PositionsTopic {
			names = append(names, name)
		}
	}
	return b.describeTopics(ctx, names, false)
}

// Topic describes one topic.
func (b *Bus) Topic(ctx context.Context, name string) (bus.TopicInfo, error) {
	if b.closed.Load() {
		return bus.TopicInfo{}, bus.ErrClosed
	}
	tis, err := b.describeTopics(ctx, []string{name}, true)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	return tis[0], nil
}

// exists returns the partitions of topic, or an error wrapping
// bus.ErrNotFound.
func (b *Bus) exists(ctx context.Context, topic string) ([]int32, error) {
	var td kadm.TopicDetails
	err := retry(ctx, func() (err error) {
		if td, err = b.adm.ListTopics(fresh(ctx), topic); err == nil {
			err = td[topic].Err
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "describing topic %q", topic)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil || topic == b.opts.PositionsTopic {
		return nil, fmt.Errorf("kafka topic %q: %w", topic, bus.ErrNotFound)
	}
	ps := d.Partitions.Numbers()
	slices.Sort(ps)
	return ps, nil
}

// describeTopics describes names, in their order. A topic that does not
// exist is an error when strict, else left out (deleted while listing).
func (b *Bus) describeTopics(ctx context.Context, names []string, strict bool) ([]bus.TopicInfo, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var td kadm.TopicDetails
	err := retry(ctx, func() (err error) {
		td, err = b.adm.ListTopics(fresh(ctx), names...)
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "describing topics")
	}
	var found []string
	for _, name := range names {
		d, ok := td[name]
		switch {
		case ok && d.Err == nil:
			found = append(found, name)
		case !strict:
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			return nil, fmt.Errorf("kafka topic %q: %w", name, bus.ErrNotFound)
		default:
			return nil, b.wrap(d.Err, "describing topic %q", name)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	list := func(what string, f func(context.Context, ...string) (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
		var l kadm.ListedOffsets
		err := retry(ctx, func() (err error) {
			l, err = f(ctx, found...)
			return err
		})
		if err != nil {
			return nil, b.wrap(err, "listing the %s offsets of %d topics", what, len(found))
		}
		return l, nil
	}
	starts, err := list("start", b.adm.ListStartOffsets)
	if err != nil {
		return nil, err
	}
	ends, err := list("end", b.adm.ListEndOffsets)
	if err != nil {
		return nil, err
	}
	retention, err := b.retention(ctx, found)
	if err != nil {
		return nil, err
	}
	sizes := b.sizes(ctx, found)
	groups, err := b.groupOffsets(ctx)
	if err != nil {
		return nil, err
	}
	tis := make([]bus.TopicInfo, 0, len(found))
	for _, name := range found {
		ti := bus.TopicInfo{Name: name, Retention: retention[name], Partitions: []bus.PartitionInfo{}, Groups: []string{}}
		ps := td[name].Partitions.Numbers()
		slices.Sort(ps)
		for _, p := range ps {
			s, sok := starts.Lookup(name, p)
			e, eok := ends.Lookup(name, p)
			if !sok || !eok || s.Err != nil || e.Err != nil {
				return nil, b.wrap(errors.Join(s.Err, e.Err, errors.New("no offsets")), "listing the offsets of topic %q partition %d", name, p)
			}
			pi := bus.PartitionInfo{Partition: p, First: s.Offset, End: e.Offset, Records: e.Offset - s.Offset, Bytes: -1}
			if size, ok := sizes[name][p]; ok {
				pi.Bytes = size
			}
			ti.Records += pi.Records
			ti.Partitions = append(ti.Partitions, pi)
		}
		ti.Bytes = sumBytes(ti.Partitions)
		for _, g := range groups {
			if _, ok := g.offsets[name]; ok {
				ti.Groups = append(ti.Groups, g.name)
			}
		}
		tis = append(tis, ti)
	}
	return tis, nil
}

// sumBytes sums the partitions' sizes, -1 when one is unknown.
func sumBytes(ps []bus.PartitionInfo) int64 {
	var n int64
	for _, p := range ps {
		if p.Bytes < 0 {
			return -1
		}
		n += p.Bytes
	}
	return n
}

// sizes returns the size of each partition of topics (its largest
// replica's); a partition is missing when the cluster does not tell
// (DescribeLogDirs refused).
func (b *Bus) sizes(ctx context.Context, topics []string) map[string]map[int32]int64 {
	set := kadm.TopicsSet{}
	for _, t := range topics {
		set.Add(t)
	}
	sizes := map[string]map[int32]int64{}
	dirs, err := b.adm.DescribeAllLogDirs(ctx, set)
	if err != nil {
		return sizes
	}
	dirs.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			return
		}
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if sizes[p.Topic] == nil {
				sizes[p.Topic] = map[int32]int64{}
			}
			sizes[p.Topic][p.Partition] = max(sizes[p.Topic][p.Partition], p.Size)
		})
	})
	return sizes
}

// Kafka's topic configs of retention.
const (
	retentionMs    = "retention.ms"
	retentionBytes = "retention.bytes"
)

// retention returns the retention.ms and retention.bytes of topics.
func (b *Bus) retention(ctx context.Context, topics []string) (map[string]bus.TopicConfig, error) {
	var rcs kadm.ResourceConfigs
	err := retry(ctx, func() (err error) {
		rcs, err = b.adm.DescribeTopicConfigs(ctx, topics...)
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "describing the configs of %d topics", len(topics))
	}
	m := map[string]bus.TopicConfig{}
	for _, rc := range rcs {
		if rc.Err != nil {
			continue // deleted meanwhile: zero, "cannot tell"
		}
		var tc bus.TopicConfig
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			n, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				continue
			}
			switch c.Key {
			case retentionMs:
				tc.RetentionAge = time.Duration(n) * time.Millisecond
				if n < 0 {
					tc.RetentionAge = -1
				}
			case retentionBytes:
				tc.RetentionBytes = max(n, -1)
			}
		}
		m[rc.Name] = tc
	}
	return m, nil
}

// retentionConfigs turns the set fields of cfg into Kafka topic configs.
func retentionConfigs(cfg bus.TopicConfig) map[string]*string {
	m := map[string]*string{}
	switch {
	case cfg.RetentionAge < 0:
		m[retentionMs] = kadm.StringPtr("-1")
	case cfg.RetentionAge > 0:
		m[retentionMs] = kadm.StringPtr(strconv.FormatInt(max(1, cfg.RetentionAge.Milliseconds()), 10))
	}
	switch {
	case cfg.RetentionBytes < 0:
		m[retentionBytes] = kadm.StringPtr("-1")
	case cfg.RetentionBytes > 0:
		m[retentionBytes] = kadm.StringPtr(strconv.FormatInt(cfg.RetentionBytes, 10))
	}
	return m
}

// CreateTopic creates a topic with the bus's partitions and replication
// and cfg's retention as its retention.ms and retention.bytes.
func (b *Bus) CreateTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if name == "" || name == b.opts.PositionsTopic {
		return fmt.Errorf("kafka bus: %q cannot be created as a topic", name)
	}
	err := retry(ctx, func() error {
		_, err := b.adm.CreateTopic(ctx, b.opts.Partitions, b.opts.Replication, retentionConfigs(cfg), name)
		return err
	})
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka topic %q: %w", name, bus.ErrExists)
	}
	if err != nil {
		return b.wrap(err, "creating topic %q", name)
	}
	b.mu.Lock()
	b.topics[name] = true
	b.mu.Unlock()
	return nil
}

// AlterTopic sets the topic's retention.ms and retention.bytes that cfg
// sets (IncrementalAlterConfigs).
func (b *Bus) AlterTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if _, err := b.exists(ctx, name); err != nil {
		return err
	}
	var alter []kadm.AlterConfig
	for k, v := range retentionConfigs(cfg) {
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
	}
	if len(alter) == 0 {
		return nil
	}
	err := retry(ctx, func() error {
		rs, err := b.adm.AlterTopicConfigs(ctx, alter, name)
		if err == nil {
			for _, r := range rs {
				if r.Err != nil {
					return r.Err
				}
			}
		}
		return err
	})
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka topic %q: %w", name, bus.ErrNotFound)
	}
	if err != nil {
		return b.wrap(err, "altering the retention of topic %q", name)
	}
	return nil
}

// DeleteTopic deletes the topic and its groups' committed offsets on it.
func (b *Bus) DeleteTopic(ctx context.Context, name string, force bool) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if _, err := b.exists(ctx, name); err != nil {
		return err
	}
	groups, err := b.groupOffsets(ctx)
	if err != nil {
		return err
	}
	var on []groupOffsets
	for _, g := range groups {
		if _, ok := g.offsets[name]; ok {
			if len(g.members) > 0 && !force {
				return fmt.Errorf("deleting kafka topic %q: group %q %w (members %s)", name, g.name, bus.ErrActive, strings.Join(g.members, ", "))
			}
			on = append(on, g)
		}
	}
	// The offsets of groups without members go first (OffsetDelete needs
	// the topic); Kafka drops those of a deleted topic itself, so the
	// active ones' (force) are removed by Kafka.
	for _, g := range on {
		if len(g.members) == 0 {
			if err := b.deleteOffsets(ctx, name, g); err != nil {
				return err
			}
		}
	}
	err = retry(ctx, func() error {
		r, err := b.adm.DeleteTopic(ctx, name)
		if err == nil {
			err = r.Err
		}
		return err
	})
	b.mu.Lock()
	delete(b.topics, name)
	b.mu.Unlock()
	b.cl.PurgeTopicsFromClient(name)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka topic %q: %w", name, bus.ErrNotFound)
	}
	if err != nil {
		return b.wrap(err, "deleting topic %q", name)
	}
	return nil
}

// groupOffsets is a consumer group: its members and committed offsets.
type groupOffsets struct {
	name    string
	empty   bool // Kafka's state Empty
	members []string
	offsets map[string]map[int32]int64 // topic → partition → next offset
}

// groupOffsets returns the cluster's consumer groups that have committed
// offsets on a topic other than the positions topic, sorted by name.
func (b *Bus) groupOffsets(ctx context.Context) ([]groupOffsets, error) {
	var listed kadm.ListedGroups
	err := retry(ctx, func() (err error) {
		listed, err = b.adm.ListGroups(ctx)
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "listing consumer groups")
	}
	var names []string
	for _, l := range listed {
		if l.ProtocolType == "" || l.ProtocolType == "consumer" {
			names = append(names, l.Group)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	fetched := b.adm.FetchManyOffsets(ctx, names...)
	var gs []groupOffsets
	for _, name := range names {
		f, ok := fetched[name]
		if !ok || errors.Is(f.Err, kerr.GroupIDNotFound) {
			continue // gone meanwhile
		}
		if f.Err != nil {
			return nil, b.wrap(f.Err, "reading the offsets of group %q", name)
		}
		g := groupOffsets{name: name, offsets: map[string]map[int32]int64{}}
		for topic, ps := range f.Fetched {
			if topic == b.opts.PositionsTopic {
				continue
			}
			for p, r := range ps {
				if r.Err == nil && r.At >= 0 {
					if g.offsets[topic] == nil {
						g.offsets[topic] = map[int32]int64{}
					}
					g.offsets[topic][p] = r.At
				}
			}
		}
		if len(g.offsets) > 0 {
			gs = append(gs, g)
		}
	}
	if len(gs) == 0 {
		return nil, nil
	}
	described, err := b.describeGroups(ctx, gs)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		d := described[gs[i].name]
		gs[i].empty = d.State == "Empty"
		gs[i].members = members(d)
	}
	return gs, nil
}

func (b *Bus) describeGroups(ctx context.Context, gs []groupOffsets) (kadm.DescribedGroups, error) {
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.name
	}
	var described kadm.DescribedGroups
	err := retry(ctx, func() (err error) {
		if described, err = b.adm.DescribeGroups(ctx, names...); err == nil {
			err = described.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "describing consumer groups")
	}
	return described, nil
}

// members names a described group's members: client id@host (member id).
func members(d kadm.DescribedGroup) []string {
	var ms []string
	for _, m := range d.Members {
		ms = append(ms, fmt.Sprintf("%s@%s (%s)", m.ClientID, strings.TrimPrefix(m.ClientHost, "/"), m.MemberID))
	}
	slices.Sort(ms)
	return ms
}

// group returns the group's committed offsets and members; ok is false
// when it has none on any topic.
func (b *Bus) group(ctx context.Context, group string) (g groupOffsets, ok bool, err error) {
	var rs kadm.OffsetResponses
	err = retry(ctx, func() (err error) {
		if rs, err = b.adm.FetchOffsets(ctx, group); err == nil {
			err = rs.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			rs = nil
			return nil
		}
		return err
	})
	if err != nil {
		return g, false, b.wrap(err, "reading the offsets of group %q", group)
	}
	g = groupOffsets{name: group, offsets: map[string]map[int32]int64{}}
	for topic, ps := range rs {
		for p, r := range ps {
			if r.Err == nil && r.At >= 0 {
				if g.offsets[topic] == nil {
					g.offsets[topic] = map[int32]int64{}
				}
				g.offsets[topic][p] = r.At
			}
		}
	}
	described, err := b.describeGroups(ctx, []groupOffsets{g})
	if err != nil {
		return g, false, err
	}
	d := described[group]
	g.empty = d.State == "Empty"
	g.members = members(d)
	return g, len(g.offsets) > 0, nil
}

// Groups returns the consumer groups with committed offsets on topic (on
// every topic when topic is "").
func (b *Bus) Groups(ctx context.Context, topic string) ([]bus.GroupInfo, error) {
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	if topic != "" {
		if _, err := b.exists(ctx, topic); err != nil {
			return nil, err
		}
	}
	groups, err := b.groupOffsets(ctx)
	if err != nil {
		return nil, err
	}
	topics := map[string]bool{}
	for _, g := range groups {
		for t := range g.offsets {
			if topic == "" || t == topic {
				topics[t] = true
			}
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	var td kadm.TopicDetails
	err = retry(ctx, func() (err error) {
		td, err = b.adm.ListTopics(fresh(ctx), slices.Collect(maps.Keys(topics))...)
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "describing topics")
	}
	var infos []bus.GroupInfo
	for t := range topics {
		if d, ok := td[t]; !ok || d.Err != nil {
			continue // offsets left of a deleted topic
		}
		starts, ends, err := b.bounds(ctx, t)
		if err != nil {
			return nil, err
		}
		parts := make([]int32, 0, len(ends))
		for p := range ends {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		for _, g := range groups {
			committed, ok := g.offsets[t]
			if !ok {
				continue
			}
			gi := bus.GroupInfo{Topic: t, Group: g.name, Active: len(g.members) > 0, Members: g.members}
			for _, p := range parts {
				c, ok := committed[p]
				if !ok || c < starts[p] {
					c = starts[p]
				}
				lag := max(0, ends[p]-c)
				gi.Partitions = append(gi.Partitions, bus.GroupPartition{Partition: p, Committed: c, End: ends[p], Lag: lag})
				gi.Lag += lag
			}
			infos = append(infos, gi)
		}
	}
	slices.SortFunc(infos, func(x, y bus.GroupInfo) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return strings.Compare(x.Group, y.Group)
	})
	return infos, nil
}

// ResetGroup commits the group's new offsets on topic. A group with
// members refuses commits from outside it, so a forced reset joins the
// group for the time of the commit (the members keep their positions in
// memory and may commit over it).
func (b *Bus) ResetGroup(ctx context.Context, topic, group string, opts bus.ResetOptions) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if _, err := b.exists(ctx, topic); err != nil {
		return err
	}
	starts, ends, err := b.bounds(ctx, topic)
	if err != nil {
		return err
	}
	to := map[int32]int64{}
	switch opts.To {
	case bus.ResetEarliest:
		to = starts
	case bus.ResetLatest:
		to = ends
	case bus.ResetOffset:
		for p, end := range ends {
			if opts.Offset > end {
				return fmt.Errorf("resetting group %q to offset %d: partition %d of topic %q ends at %d: %w", group, opts.Offset, p, topic, end, bus.ErrOutOfRange)
			}
			to[p] = max(opts.Offset, starts[p])
		}
	case bus.ResetTime:
		var l kadm.ListedOffsets
		err := retry(ctx, func() (err error) {
			if l, err = b.adm.ListOffsetsAfterMilli(ctx, opts.Time.UnixMilli(), topic); err == nil {
				err = l.Error()
			}
			return err
		})
		if err != nil {
			return b.wrap(err, "listing the offsets of topic %q at %s", topic, opts.Time.Format(time.RFC3339Nano))
		}
		for p, end := range ends {
			o, ok := l.Lookup(topic, p)
			if !ok || o.Offset < 0 || o.Offset > end {
				to[p] = end
			} else {
				to[p] = max(o.Offset, starts[p])
			}
		}
	default:
		return fmt.Errorf("resetting group %q: unknown reset %d", group, opts.To)
	}
	offsets := kadm.Offsets{}
	for p, o := range to {
		offsets.AddOffset(topic, p, o, -1)
	}
	g, _, err := b.group(ctx, group)
	if err != nil {
		return err
	}
	if len(g.members) > 0 {
		if !opts.Force {
			return fmt.Errorf("resetting group %q of topic %q: %w (members %s)", group, topic, bus.ErrActive, strings.Join(g.members, ", "))
		}
		return b.commitAsMember(ctx, topic, group, offsets)
	}
	err = retry(ctx, func() error { return b.adm.CommitAllOffsets(ctx, group, offsets) })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.RebalanceInProgress):
		// A member joined meanwhile.
		if !opts.Force {
			return fmt.Errorf("resetting group %q of topic %q: %w (a member joined)", group, topic, bus.ErrActive)
		}
		return b.commitAsMember(ctx, topic, group, offsets)
	}
	return b.wrap(err, "resetting group %q of topic %q", group, topic)
}

// commitAsMember joins group, commits offsets as its member and leaves.
func (b *Bus) commitAsMember(ctx context.Context, topic, group string, offsets kadm.Offsets) error {
	cl, err := kafkaclient.NewClient(ctx, b.cfg, "culvert-admin",
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(b.opts.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, b.opts.SessionTimeout/3)),
	)
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	defer cl.Close() // leaves the group
	commit := map[string]map[int32]kgo.EpochOffset{topic: {}}
	offsets.Each(func(o kadm.Offset) { commit[topic][o.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o.At} })
	deadline := time.Now().Add(retryFor)
	for {
		if _, gen := cl.GroupMetadata(); gen >= 0 {
			cerr := kafkaclient.CommitSync(ctx, cl, commit)
			if cerr == nil {
				return nil
			}
			if !transient(cerr) && !errors.Is(cerr, kerr.RebalanceInProgress) && !errors.Is(cerr, kerr.IllegalGeneration) &&
				!errors.Is(cerr, kerr.UnknownMemberID) {
				return b.wrap(cerr, "resetting group %q of topic %q as a member", group, topic)
			}
			err = cerr
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if err == nil {
				err = errors.New("could not join the group")
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return b.wrap(err, "resetting group %q of topic %q as a member", group, topic)
		}
		// Polling drives the join; what it fetches is dropped.
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cl.PollFetches(pctx)
		cancel()
	}
}

// DeleteGroup deletes the group's committed offsets on topic, and the
// group itself when it has no others.
func (b *Bus) DeleteGroup(ctx context.Context, topic, group string, force bool) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	g, _, err := b.group(ctx, group)
	if err != nil {
		return err
	}
	if _, ok := g.offsets[topic]; !ok || topic == b.opts.PositionsTopic {
		if len(g.offsets) == 0 && g.empty && topic != b.opts.PositionsTopic {
			// A group whose members read without committing: Kafka
			// keeps it, without offsets nor members, until it
			// expires. Nothing is lost by deleting it.
			err := retry(ctx, func() error {
				r, err := b.adm.DeleteGroup(ctx, group)
				if err == nil {
					err = r.Err
				}
				return err
			})
			switch {
			case err == nil:
				return nil
			case !errors.Is(err, kerr.GroupIDNotFound) && !errors.Is(err, kerr.NonEmptyGroup):
				return b.wrap(err, "deleting group %q", group)
			}
		}
		return fmt.Errorf("group %q on kafka topic %q: %w", group, topic, bus.ErrNotFound)
	}
	if len(g.members) > 0 {
		if !force {
			return fmt.Errorf("deleting group %q of topic %q: %w (members %s)", group, topic, bus.ErrActive, strings.Join(g.members, ", "))
		}
		return fmt.Errorf("deleting group %q of topic %q: Kafka keeps the offsets of a group that has members (members %s): stop them first: %w",
			group, topic, strings.Join(g.members, ", "), bus.ErrUnsupported)
	}
	return b.deleteOffsets(ctx, topic, g)
}

// deleteOffsets deletes g's offsets on topic (OffsetDelete), then the
// group when it has no others and no members.
func (b *Bus) deleteOffsets(ctx context.Context, topic string, g groupOffsets) error {
	set := kadm.TopicsSet{}
	for p := range g.offsets[topic] {
		set.Add(topic, p)
	}
	err := retry(ctx, func() error {
		rs, err := b.adm.DeleteOffsets(ctx, g.name, set)
		if err == nil {
			err = rs.Error()
		}
		return err
	})
	if errors.Is(err, kerr.GroupSubscribedToTopic) || errors.Is(err, kerr.NonEmptyGroup) {
		return fmt.Errorf("deleting group %q of topic %q: %w (a member joined)", g.name, topic, bus.ErrActive)
	}
	if err != nil {
		return b.wrap(err, "deleting the offsets of group %q on topic %q", g.name, topic)
	}
	if len(g.offsets) == 1 {
		// Nothing left: the group goes too (an error is harmless, the
		// group has no offsets).
		b.adm.DeleteGroup(ctx, g.name)
	}
	return nil
}
