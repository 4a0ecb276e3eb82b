package amqpbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/bus"
)

var _ bus.Admin = (*Bus)(nil)

// The registry: AMQP cannot list queues, so the bus records in the stream
// queue <prefix>registry every topic it creates (with the retention it was
// declared with) and every consumer group it creates. A name in the
// registry is a candidate: whether the topic or the group exists is asked
// of RabbitMQ (a passive declaration of its queue) each time.

// registryArgs make the registry: a stream queue kept whole.
var registryArgs = amqp.Table{"x-queue-type": "stream", "x-stream-max-segment-size-bytes": int64(1 << 20)}

func (b *Bus) registryQueue() string { return b.prefix + "registry" }

// entry is one record of the registry: a topic (Group == "") created with
// the retention arguments MaxAge (x-max-age, "" for none) and MaxBytes
// (x-max-length-bytes, 0 for none), or a group of a topic.
type entry struct {
	Topic    string `json:"topic"`
	Group    string `json:"group,omitempty"`
	MaxAge   string `json:"max_age,omitempty"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
}

// topicEntry is the registry's entry of a topic declared with args.
func topicEntry(topic string, args amqp.Table) entry {
	e := entry{Topic: topic}
	e.MaxAge, _ = args["x-max-age"].(string)
	e.MaxBytes, _ = args["x-max-length-bytes"].(int64)
	return e
}

// register appends e to the registry, on a channel of the bus's own.
// The registry may have just been declared by another process, and a
// stream that is still starting refuses messages for a moment (a negative
// acknowledgement, or a connection error that closes the connection):
// register tries again, on a new channel, for up to startWait.
func (b *Bus) register(ctx context.Context, e entry) error {
	q := b.registryQueue()
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	msg := []amqp.Publishing{{Body: body, DeliveryMode: amqp.Persistent, ContentType: "application/json"}}
	for deadline := time.Now().Add(startWait); ; {
		ch, err := b.channel(ctx)
		if err == nil {
			if err = b.declare(ch.Channel, q, registryArgs); err == nil {
				err = ch.send(ctx, q, msg)
			}
			b.release(ch, err != nil)
		}
		if err == nil {
			return nil
		}
		b.forget(q)
		if errors.Is(err, bus.ErrClosed) || time.Now().After(deadline) {
			return fmt.Errorf("writing to the registry %q: %w", q, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("writing to the registry %q: %w", q, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// registry returns the registry's entries, oldest first.
func (b *Bus) registry(ctx context.Context) ([]entry, error) {
	q := b.registryQueue()
	conn, err := b.connection(ctx)
	if err != nil {
		return nil, err
	}
	if exists, err := queueExists(conn, q); err != nil || !exists {
		return nil, err
	}
	last, _, err := b.probe(ctx, q)
	if err != nil || last < 0 {
		return nil, err
	}
	var entries []entry
	reached := int64(-1)
	err = b.scan(ctx, q, "first", func(off int64, d *amqp.Delivery) bool {
		var e entry
		if json.Unmarshal(d.Body, &e) == nil && e.Topic != "" {
			entries = append(entries, e)
		}
		reached = off
		return off < last
	})
	if err == nil && reached < last {
		err = fmt.Errorf("reading the registry %q: the deliveries stopped at offset %d of %d", q, reached, last)
	}
	return entries, err
}

// connection returns the bus's connection.
func (b *Bus) connection(ctx context.Context) (*amqp.Connection, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connLocked(ctx)
}

// scan consumes the stream queue q from the offset specification from (an
// offset, "first", a time) on a channel of its own, calling f with each
// delivery until f returns false or no delivery came for probeFirst.
func (b *Bus) scan(ctx context.Context, q string, from any, f func(off int64, d *amqp.Delivery) bool) error {
	return whileStarting(ctx, func() error {
		conn, err := b.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.Qos(1000, 0, false); err != nil {
			return err
		}
		ds, err := ch.ConsumeWithContext(ctx, q, "", false, false, false, false, amqp.Table{headerOffset: from})
		if err != nil {
			return err
		}
		t := time.NewTimer(probeFirst)
		defer t.Stop()
		for {
			select {
			case d, ok := <-ds:
				if !ok {
					return fmt.Errorf("the channel reading %q was closed", q)
				}
				d.Ack(false)
				off, ok := d.Headers[headerOffset].(int64)
				if !ok {
					return fmt.Errorf("a delivery of %q without %s: is the queue a stream?", q, headerOffset)
				}
				if !f(off, &d) {
					return nil
				}
				t.Reset(probeFirst)
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
}

// topicExists returns an error wrapping bus.ErrNotFound when the topic's
// stream queue does not exist.
func (b *Bus) topicExists(ctx context.Context, topic string) error {
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	exists, err := queueExists(conn, b.topicQueue(topic))
	if err != nil {
		return b.describe(err)
	}
	if !exists {
		return fmt.Errorf("rabbitmq topic %q (stream queue %q): %w", topic, b.topicQueue(topic), bus.ErrNotFound)
	}
	return nil
}

// bounds returns the offsets of the topic's first record and one past its
// last (0 and 0 for a stream that never had a record).
func (b *Bus) bounds(ctx context.Context, topic string) (first, end int64, err error) {
	q := b.topicQueue(topic)
	last, _, err := b.probe(ctx, q)
	if err != nil || last < 0 {
		return 0, 0, b.describe(err)
	}
	first = -1
	err = b.scan(ctx, q, "first", func(off int64, _ *amqp.Delivery) bool {
		first = off
		return false
	})
	if err != nil {
		return 0, 0, b.describe(err)
	}
	if first < 0 || first > last {
		first = last + 1 // truncated meanwhile
	}
	return first, last + 1, nil
}

// lockHeld reports whether a member holds the exclusive queue q.
func lockHeld(conn *amqp.Connection, q string) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(q, false, true, true, false, nil)
	var ae *amqp.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ae) && ae.Code == amqp.ResourceLocked:
		return true, nil
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return false, nil
	}
	return false, err
}

// parseAge reads a RabbitMQ x-max-age: a number and a unit, Y, M, D, h,
// m or s (a year is 365 days, a month 30, as RabbitMQ counts them).
func parseAge(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'Y': 365 * 24 * time.Hour, 'M': 30 * 24 * time.Hour, 'D': 24 * time.Hour,
		'h': time.Hour, 'm': time.Minute, 's': time.Second}[s[len(s)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// retention returns the retention of a topic declared as e says.
func (e entry) retention() bus.TopicConfig {
	tc := bus.TopicConfig{RetentionAge: -1, RetentionBytes: -1}
	if e.MaxAge != "" {
		d, ok := parseAge(e.MaxAge)
		if !ok {
			d = 0 // cannot tell
		}
		tc.RetentionAge = d
	}
	if e.MaxBytes > 0 {
		tc.RetentionBytes = e.MaxBytes
	}
	return tc
}

// known is what the registry says: the topics' last entries, and the
// groups of each topic.
type known struct {
	topics map[string]entry
	groups map[string][]string // topic → sorted groups
}

func (b *Bus) known(ctx context.Context) (known, error) {
	entries, err := b.registry(ctx)
	if err != nil {
		return known{}, b.describe(err)
	}
	k := known{topics: map[string]entry{}, groups: map[string][]string{}}
	for _, e := range entries {
		if e.Group == "" {
			k.topics[e.Topic] = e
		} else if !slices.Contains(k.groups[e.Topic], e.Group) {
			k.groups[e.Topic] = append(k.groups[e.Topic], e.Group)
		}
	}
	for _, gs := range k.groups {
		slices.Sort(gs)
	}
	return k, nil
}

// groupState is a group's register and lock, read from RabbitMQ.
type groupState struct {
	committed int64
	active    bool
}

// groupState returns the group's offset and whether a member holds its
// lock; ok is false when the group has no offset register.
func (b *Bus) groupState(ctx context.Context, topic, group string) (g groupState, ok bool, err error) {
	lockQ, offsetQ := b.groupQueues(topic, group)
	conn, err := b.connection(ctx)
	if err != nil {
		return g, false, err
	}
	if exists, err := queueExists(conn, offsetQ); err != nil || !exists {
		return g, false, b.describe(err)
	}
	if g.active, err = lockHeld(conn, lockQ); err != nil {
		return g, false, b.describe(err)
	}
	_, reg, err := b.probe(ctx, offsetQ)
	if err != nil {
		return g, false, b.describe(err)
	}
	if reg == nil {
		return g, false, nil // made, never written
	}
	if g.committed, err = strconv.ParseInt(string(reg), 10, 64); err != nil || g.committed < 0 {
		return g, false, fmt.Errorf("the offset register %q holds %q, not an offset", offsetQ, reg)
	}
	return g, true, nil
}

// each calls f for each of names, a few at a time, and returns the first
// error.
func each(names []string, f func(i int, name string) error) error {
	sem := make(chan struct{}, 8)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i, name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Topics returns the topics of the registry that exist.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicInfo, error) {
	k, err := b.known(ctx)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(k.topics))
	infos := make([]*bus.TopicInfo, len(names))
	err = each(names, func(i int, name string) error {
		ti, err := b.topic(ctx, name, k)
		if errors.Is(err, bus.ErrNotFound) {
			return nil
		}
		infos[i] = &ti
		return err
	})
	if err != nil {
		return nil, err
	}
	var tis []bus.TopicInfo
	for _, ti := range infos {
		if ti != nil {
			tis = append(tis, *ti)
		}
	}
	return tis, nil
}

// Topic describes a topic: its offsets (read from the stream), the
// retention the registry has for it and the groups with offsets on it.
func (b *Bus) Topic(ctx context.Context, name string) (bus.TopicInfo, error) {
	k, err := b.known(ctx)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	return b.topic(ctx, name, k)
}

func (b *Bus) topic(ctx context.Context, name string, k known) (bus.TopicInfo, error) {
	if err := b.topicExists(ctx, name); err != nil {
		return bus.TopicInfo{}, err
	}
	first, end, err := b.bounds(ctx, name)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	ti := bus.TopicInfo{Name: name, Records: end - first, Bytes: -1, Groups: []string{},
		Partitions: []bus.PartitionInfo{{First: first, End: end, Records: end - first, Bytes: -1}}}
	if e, ok := k.topics[name]; ok {
		ti.Retention = e.retention()
	}
	for _, g := range k.groups[name] {
		if _, ok, err := b.groupState(ctx, name, g); err != nil {
			return bus.TopicInfo{}, err
		} else if ok {
			ti.Groups = append(ti.Groups, g)
		}
	}
	return ti, nil
}

// CreateTopic declares the topic's stream queue with the bus's arguments
// and cfg's retention (x-max-age in seconds, x-max-length-bytes).
func (b *Bus) CreateTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if name == "" {
		return errors.New("rabbitmq bus: a topic needs a name")
	}
	args := maps.Clone(b.stream)
	switch {
	case cfg.RetentionAge < 0:
		delete(args, "x-max-age")
	case cfg.RetentionAge > 0:
		args["x-max-age"] = strconv.FormatInt(int64((cfg.RetentionAge+time.Second-1)/time.Second), 10) + "s"
	}
	switch {
	case cfg.RetentionBytes < 0:
		delete(args, "x-max-length-bytes")
	case cfg.RetentionBytes > 0:
		args["x-max-length-bytes"] = cfg.RetentionBytes
	}
	b.forget(b.topicQueue(name))
	created, err := b.declareTopic(ctx, name, args)
	if err != nil {
		return b.describe(err)
	}
	if !created {
		return fmt.Errorf("rabbitmq topic %q: %w", name, bus.ErrExists)
	}
	return nil
}

// AlterTopic is not supported: RabbitMQ fixes a stream's arguments when it
// is declared.
func (b *Bus) AlterTopic(ctx context.Context, name string, cfg bus.TopicConfig) error {
	if err := b.topicExists(ctx, name); err != nil {
		return err
	}
	return fmt.Errorf("altering rabbitmq topic %q: a stream queue keeps the x-max-age and x-max-length-bytes it was declared with "+
		"(a RabbitMQ policy, set with rabbitmqctl set_policy or the management API, can change them): %w", name, bus.ErrUnsupported)
}

// DeleteTopic deletes the topic's stream queue and its groups' offset
// registers.
func (b *Bus) DeleteTopic(ctx context.Context, name string, force bool) error {
	k, err := b.known(ctx)
	if err != nil {
		return err
	}
	if err := b.topicExists(ctx, name); err != nil {
		return err
	}
	var groups []string
	for _, g := range k.groups[name] {
		st, ok, err := b.groupState(ctx, name, g)
		if err != nil {
			return err
		}
		if st.active && !force {
			return fmt.Errorf("deleting rabbitmq topic %q: group %q %w", name, g, bus.ErrActive)
		}
		if ok || st.active {
			groups = append(groups, g)
		}
	}
	if err := b.deleteQueue(ctx, b.topicQueue(name)); err != nil {
		return err
	}
	for _, g := range groups {
		_, offsetQ := b.groupQueues(name, g)
		if err := b.deleteQueue(ctx, offsetQ); err != nil {
			return err
		}
	}
	return nil
}

// deleteQueue deletes the queue q (on a channel of its own) and forgets
// that it was declared.
func (b *Bus) deleteQueue(ctx context.Context, q string) error {
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return b.describe(err)
	}
	defer ch.Close()
	b.forget(q)
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		return b.describe(fmt.Errorf("deleting queue %q: %w", q, err))
	}
	return nil
}

// Groups returns the registry's groups of topic (of every topic when
// topic is "") that have an offset.
func (b *Bus) Groups(ctx context.Context, topic string) ([]bus.GroupInfo, error) {
	if topic != "" {
		if err := b.topicExists(ctx, topic); err != nil {
			return nil, err
		}
	}
	k, err := b.known(ctx)
	if err != nil {
		return nil, err
	}
	var topics []string
	for t := range k.groups {
		if topic == "" || t == topic {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	found := make([][]bus.GroupInfo, len(topics))
	err = each(topics, func(i int, t string) error {
		if err := b.topicExists(ctx, t); errors.Is(err, bus.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		first, end, err := b.bounds(ctx, t)
		if err != nil {
			return err
		}
		for _, g := range k.groups[t] {
			st, ok, err := b.groupState(ctx, t, g)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			c := max(st.committed, first)
			lag := max(0, end-c)
			found[i] = append(found[i], bus.GroupInfo{Topic: t, Group: g, Active: st.active, Lag: lag,
				Partitions: []bus.GroupPartition{{Committed: c, End: end, Lag: lag}}})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Concat(found...), nil
}

// ResetGroup writes the group's offset register. A forced reset of a group
// with an active member writes it under that member, which goes on from
// where it was and may commit over it.
func (b *Bus) ResetGroup(ctx context.Context, topic, group string, opts bus.ResetOptions) error {
	if err := b.topicExists(ctx, topic); err != nil {
		return err
	}
	lockQ, offsetQ := b.groupQueues(topic, group)
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	active, err := lockHeld(conn, lockQ)
	if err != nil {
		return b.describe(err)
	}
	if active && !opts.Force {
		return fmt.Errorf("resetting group %q of rabbitmq topic %q: %w", group, topic, bus.ErrActive)
	}
	first, end, err := b.bounds(ctx, topic)
	if err != nil {
		return err
	}
	var to int64
	switch opts.To {
	case bus.ResetEarliest:
		to = first
	case bus.ResetLatest:
		to = end
	case bus.ResetOffset:
		if opts.Offset > end {
			return fmt.Errorf("resetting group %q to offset %d: rabbitmq topic %q ends at %d: %w", group, opts.Offset, topic, end, bus.ErrOutOfRange)
		}
		to = max(opts.Offset, first)
	case bus.ResetTime:
		if to, err = b.offsetAt(ctx, topic, opts.Time, end); err != nil {
			return err
		}
	default:
		return fmt.Errorf("resetting group %q: unknown reset %d", group, opts.To)
	}
	existed, err := queueExists(conn, offsetQ)
	if err != nil {
		return b.describe(err)
	}
	ch, err := b.channel(ctx)
	if err != nil {
		return err
	}
	err = b.putRegister(ctx, ch, offsetQ, []byte(strconv.FormatInt(to, 10)))
	b.release(ch, err != nil)
	if err == nil && !existed {
		err = b.register(ctx, entry{Topic: topic, Group: group})
	}
	return b.describe(err)
}

// offsetAt returns the offset of the topic's first record published at or
// after t, end when there is none. RabbitMQ finds the first chunk written
// at or after t in whole seconds; records of that chunk whose time is
// before t are skipped.
func (b *Bus) offsetAt(ctx context.Context, topic string, t time.Time, end int64) (int64, error) {
	at := end
	err := b.scan(ctx, b.topicQueue(topic), t, func(off int64, d *amqp.Delivery) bool {
		if off >= end {
			return false
		}
		if ns, ok := d.Headers[headerTime].(int64); ok && time.Unix(0, ns).Before(t) {
			return true
		}
		at = off
		return false
	})
	if err != nil {
		return 0, b.describe(fmt.Errorf("reading topic %q from %s: %w", topic, t.Format(time.RFC3339Nano), err))
	}
	return at, nil
}

// DeleteGroup deletes the group's offset register.
func (b *Bus) DeleteGroup(ctx context.Context, topic, group string, force bool) error {
	lockQ, offsetQ := b.groupQueues(topic, group)
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	exists, err := queueExists(conn, offsetQ)
	if err != nil {
		return b.describe(err)
	}
	if !exists {
		return fmt.Errorf("group %q of rabbitmq topic %q: %w", group, topic, bus.ErrNotFound)
	}
	active, err := lockHeld(conn, lockQ)
	if err != nil {
		return b.describe(err)
	}
	if active && !force {
		return fmt.Errorf("deleting group %q of rabbitmq topic %q: %w", group, topic, bus.ErrActive)
	}
	return b.deleteQueue(ctx, offsetQ)
}

// groupQueues returns the names of the group's lock and offset register.
func (b *Bus) groupQueues(topic, group string) (lockQ, offsetQ string) {
	id := strconv.Itoa(len(group)) + "." + group + "." + topic
	return b.queueName("lock.", id), b.queueName("offset.", id)
}

// forget drops q from the queues known to be declared: the next use
// declares it again (it was deleted).
func (b *Bus) forget(q string) {
	b.mu.Lock()
	delete(b.declared, q)
	b.mu.Unlock()
}
