package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/bus"
	kafkaclient "github.com/culvert-dev/culvert/common/client/kafka"
	"github.com/culvert-dev/culvert/common/record"
)

func init() {
	bus.Register("kafka", func(ctx context.Context, u *url.URL) (bus.Bus, error) { return OpenURL(ctx, u) })
}

// Defaults of the URL's options.
const (
	DefaultPartitions     = 1
	DefaultSessionTimeout = 10 * time.Second
	DefaultPositionsTopic = "__culvert_positions"
	DefaultMaxRecords     = 8192
)

// closeTimeout bounds what Close waits for.
const closeTimeout = 5 * time.Second

// Options tunes the bus.
type Options struct {
	// Partitions of each topic the bus creates; 0 means DefaultPartitions.
	Partitions int32
	// Replication factor of each topic the bus creates; 0 means the
	// broker's default.
	Replication int16
	// SessionTimeout of the consumer group members: how long a dead
	// member keeps its partitions; 0 means DefaultSessionTimeout.
	SessionTimeout time.Duration
	// PositionsTopic is the compacted topic of source positions; "" means
	// DefaultPositionsTopic.
	PositionsTopic string
}

// busParams are the URL parameters this package owns; the client package
// owns the others.
var busParams = []string{"partitions", "replication", "session_timeout", "positions_topic"}

// ParseOptions reads the bus's own parameters from a URL and rejects
// parameters nobody knows.
func ParseOptions(u *url.URL) (Options, error) {
	var o Options
	q := u.Query()
	for k := range q {
		if !slices.Contains(busParams, k) && !slices.Contains(kafkaclient.Params, k) {
			return o, fmt.Errorf("bus: unknown Kafka parameter %q (known: %v %v)", k, busParams, kafkaclient.Params)
		}
	}
	if s := q.Get("partitions"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return o, fmt.Errorf("bus: partitions=%q: must be a number from 1 to 10000", s)
		}
		o.Partitions = int32(n)
	}
	if s := q.Get("replication"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 32 {
			return o, fmt.Errorf("bus: replication=%q: must be a number from 1 to 32", s)
		}
		o.Replication = int16(n)
	}
	if s := q.Get("session_timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 100*time.Millisecond {
			return o, fmt.Errorf("bus: session_timeout=%q: must be a duration of at least 100ms, like 10s", s)
		}
		o.SessionTimeout = d
	}
	o.PositionsTopic = q.Get("positions_topic")
	return o, nil
}

// Bus is the Kafka bus.
type Bus struct {
	cfg   kafkaclient.Config
	opts  Options
	shown string

	cl  *kgo.Client // producer, and admin requests
	adm *kadm.Client
	pos *positions

	closed atomic.Bool
	mu     sync.Mutex
	topics map[string]bool // topics known to exist
	subs   map[*subscription]struct{}
}

// OpenURL connects to the cluster named by u (see package client/kafka for
// the connection parameters), creates the positions topic if missing and
// reads it.
func OpenURL(ctx context.Context, u *url.URL) (*Bus, error) {
	opts, err := ParseOptions(u)
	if err != nil {
		return nil, err
	}
	cfg, err := kafkaclient.FromURL(u)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	return Open(ctx, cfg, opts)
}

// Open connects to the cluster of cfg.
func Open(ctx context.Context, cfg kafkaclient.Config, opts Options) (*Bus, error) {
	if opts.Partitions <= 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.Replication <= 0 {
		opts.Replication = -1
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	if opts.PositionsTopic == "" {
		opts.PositionsTopic = DefaultPositionsTopic
	}
	b := &Bus{cfg: cfg, opts: opts, shown: cfg.String(), topics: map[string]bool{}, subs: map[*subscription]struct{}{}}
	cl, err := kafkaclient.NewClient(ctx, cfg, "culvert-bus",
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(1<<17),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	b.cl = cl
	b.adm = kadm.NewClient(cl)
	if err := b.ensureTopic(ctx, opts.PositionsTopic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}); err != nil {
		cl.Close()
		return nil, err
	}
	pcl, err := kafkaclient.NewClient(ctx, cfg, "culvert-bus-positions",
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{opts.PositionsTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("bus: %w", err)
	}
	b.pos = &positions{b: b, cl: pcl, vals: map[string][]byte{}}
	if err := b.pos.catchUp(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Client returns the bus's producer client (also used for admin requests).
func (b *Bus) Client() *kgo.Client { return b.cl }

// wrap turns the error of a Kafka call into the bus's error.
func (b *Bus) wrap(err error, format string, args ...any) error {
	if b.closed.Load() || errors.Is(err, kgo.ErrClientClosed) {
		return bus.ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	return fmt.Errorf(format+" on kafka %s: %s", append(args, b.shown, b.cfg.Scrub(err.Error()))...)
}

// ensureTopic creates topic unless it is known to exist.
func (b *Bus) ensureTopic(ctx context.Context, topic string, partitions int32, configs map[string]*string) error {
	b.mu.Lock()
	known := b.topics[topic]
	b.mu.Unlock()
	if known {
		return nil
	}
	if partitions <= 0 {
		partitions = b.opts.Partitions
	}
	err := retry(ctx, func() error {
		_, err := b.adm.CreateTopic(ctx, partitions, b.opts.Replication, configs, topic)
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		return err
	})
	if err != nil {
		return b.wrap(err, "creating topic %q", topic)
	}
	b.mu.Lock()
	b.topics[topic] = true
	b.mu.Unlock()
	return nil
}

// Close closes the bus's subscriptions, then its clients. It is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	subs := b.subs
	b.subs = map[*subscription]struct{}{}
	b.mu.Unlock()
	for s := range subs {
		s.Close()
	}
	if b.closed.Swap(true) {
		return nil
	}
	if b.pos != nil {
		b.pos.cl.Close()
	}
	b.cl.Close()
	return nil
}

// ToKafka converts a record to a Kafka record of topic: key, value, headers
// and time (a zero time becomes the produce time).
func ToKafka(topic string, r *record.Record) *kgo.Record {
	kr := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Timestamp: r.Time}
	if len(r.Headers) > 0 {
		kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return kr
}

// FromKafka converts a Kafka record to a record with its key, value,
// headers, time and offset.
func FromKafka(kr *kgo.Record) record.Record {
	r := record.Record{Key: kr.Key, Value: kr.Value, Time: kr.Timestamp, Offset: kr.Offset}
	if len(kr.Headers) > 0 {
		r.Headers = make([]record.Header, len(kr.Headers))
		for i, h := range kr.Headers {
			r.Headers[i] = record.Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// Publish produces the batch's records (idempotently, acks=all) and returns
// once every one is acknowledged; then it writes the batch's position to
// the positions topic. See the package documentation for what this
// guarantees.
func (b *Bus) Publish(ctx context.Context, batch bus.Batch) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	recs := make([]*kgo.Record, 0, batch.Len())
	for _, w := range batch.Writes {
		if len(w.Records) == 0 {
			continue
		}
		if err := b.ensureTopic(ctx, w.Topic, 0, nil); err != nil {
			return err
		}
		for i := range w.Records {
			recs = append(recs, ToKafka(w.Topic, &w.Records[i]))
		}
	}
	if len(recs) > 0 {
		if err := b.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
				// Deleted meanwhile (culvert topics delete): the
				// next Publish creates it again.
				b.mu.Lock()
				for _, w := range batch.Writes {
					delete(b.topics, w.Topic)
					b.cl.PurgeTopicsFromProducing(w.Topic)
				}
				b.mu.Unlock()
			}
			return b.wrap(err, "publishing %d records to %q", len(recs), recs[0].Topic)
		}
	}
	if p := batch.Position; p != nil {
		return b.pos.Put(ctx, p.Key, p.Value)
	}
	return nil
}

// Positions returns the position store, kept in the positions topic.
func (b *Bus) Positions() bus.PositionStore { return b.pos }

// positions is the position store: a compacted topic of one partition,
// key = position key, value = position. It is read fully at Open and read
// up to its end again by every Get, so it sees other processes' Puts.
type positions struct {
	b    *Bus
	mu   sync.Mutex
	cl   *kgo.Client // reads the topic's partition 0 from the start
	next int64       // the next offset to read
	vals map[string][]byte
}

func (p *positions) catchUp(ctx context.Context) error {
	topic := p.b.opts.PositionsTopic
	var ends kadm.ListedOffsets
	err := retry(ctx, func() (err error) {
		if ends, err = p.b.adm.ListEndOffsets(ctx, topic); err == nil {
			err = ends.Error()
		}
		return err
	})
	if err != nil {
		return p.b.wrap(err, "reading the end of %q", topic)
	}
	end, _ := ends.Lookup(topic, 0)
	for p.next < end.Offset {
		fs := p.cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			return bus.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %q: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !transient(err) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return p.b.wrap(ferr, "reading %q", topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				delete(p.vals, string(r.Key))
			} else {
				p.vals[string(r.Key)] = r.Value
			}
			p.next = r.Offset + 1
		})
	}
	return nil
}

func (p *positions) Get(ctx context.Context, key string) ([]byte, error) {
	if p.b.closed.Load() {
		return nil, bus.ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.catchUp(ctx); err != nil {
		return nil, err
	}
	v, ok := p.vals[key]
	if !ok {
		return nil, nil
	}
	return slices.Clone(v), nil
}

func (p *positions) Put(ctx context.Context, key string, value []byte) error {
	if p.b.closed.Load() {
		return bus.ErrClosed
	}
	if value == nil {
		value = []byte{} // nil would be a tombstone
	}
	r := &kgo.Record{Topic: p.b.opts.PositionsTopic, Partition: 0, Key: []byte(key), Value: value}
	if err := p.b.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return p.b.wrap(err, "saving position %q", key)
	}
	p.mu.Lock()
	p.vals[key] = slices.Clone(value)
	p.mu.Unlock()
	return nil
}

// Subscribe joins group on topic, creating the topic when missing. A new
// group starting at the end gets the topic's current end offsets committed
// for it first, so that records published after Subscribe returned are read.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	if topic == "" || group == "" {
		return nil, errors.New("kafka bus: subscribe needs a topic and a group")
	}
	if err := b.ensureTopic(ctx, topic, 0, nil); err != nil {
		return nil, err
	}
	starts, ends, err := b.bounds(ctx, topic)
	if err != nil {
		return nil, err
	}
	reset := kgo.NewOffset().AtStart()
	if opts.Start == bus.StartEnd {
		reset = kgo.NewOffset().AtEnd()
		committed, err := b.committed(ctx, topic, group)
		if err != nil {
			return nil, err
		}
		fresh := kadm.Offsets{}
		for p, end := range ends {
			if _, ok := committed[p]; !ok {
				fresh.AddOffset(topic, p, end, -1)
			}
		}
		if len(fresh) > 0 {
			// This fails when the group has live members; they then
			// decide, and the reset offset applies.
			b.adm.CommitOffsets(ctx, group, fresh)
		}
	}
	max := opts.MaxRecords
	if max <= 0 {
		max = DefaultMaxRecords
	}
	s := &subscription{b: b, topic: topic, group: group, max: max, starts: starts, ends: ends, owned: map[int32]bool{}}
	hb := min(3*time.Second, b.opts.SessionTimeout/3)
	cl, err := kafkaclient.NewClient(ctx, b.cfg, "culvert-bus",
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(b.opts.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.own(m[topic], true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.own(m[topic], false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.own(m[topic], false) }),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	s.cl = cl
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		cl.Close()
		return nil, bus.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// bounds returns the first and next offsets of every partition of topic.
func (b *Bus) bounds(ctx context.Context, topic string) (starts, ends map[int32]int64, err error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		var l kadm.ListedOffsets
		err := retry(ctx, func() (err error) {
			if l, err = f(ctx, topic); err == nil {
				err = l.Error()
			}
			return err
		})
		if err != nil {
			return nil, b.wrap(err, "listing the offsets of topic %q", topic)
		}
		m := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) { m[o.Partition] = o.Offset })
		return m, nil
	}
	if starts, err = list(b.adm.ListStartOffsets); err != nil {
		return nil, nil, err
	}
	ends, err = list(b.adm.ListEndOffsets)
	return starts, ends, err
}

// committed returns the group's committed offsets of topic, by partition.
func (b *Bus) committed(ctx context.Context, topic, group string) (map[int32]int64, error) {
	var rs kadm.OffsetResponses
	err := retry(ctx, func() (err error) {
		if rs, err = b.adm.FetchOffsetsForTopics(ctx, group, topic); err == nil {
			err = rs.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			rs = nil // a group that never committed
			return nil
		}
		return err
	})
	if err != nil {
		return nil, b.wrap(err, "reading the offsets of group %q", group)
	}
	m := map[int32]int64{}
	for p, r := range rs[topic] {
		if r.At >= 0 {
			m[p] = r.At
		}
	}
	return m, nil
}

type subscription struct {
	b     *Bus
	cl    *kgo.Client
	topic string
	group string
	max   int
	// starts and ends are the partitions' offsets at Subscribe time.
	starts, ends map[int32]int64

	mu     sync.Mutex
	owned  map[int32]bool // partitions assigned to this member
	caught bool

	closed    atomic.Bool
	closeOnce sync.Once
}

func (s *subscription) own(ps []int32, yes bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if yes {
			s.owned[p] = true
		} else {
			delete(s.owned, p)
		}
	}
}

func (s *subscription) isClosed() bool { return s.closed.Load() || s.b.closed.Load() }

// Poll returns up to MaxRecords records of the partitions assigned to this
// member, in order per partition, blocking until there are some.
func (s *subscription) Poll(ctx context.Context) ([]bus.Message, error) {
	for {
		if s.isClosed() {
			return nil, bus.ErrClosed
		}
		fs := s.cl.PollRecords(ctx, s.max)
		if fs.IsClientClosed() {
			return nil, bus.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !transient(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				var loss *kgo.ErrDataLoss
				if !errors.As(err, &loss) {
					ferr = err
				}
			}
		})
		msgs := make([]bus.Message, 0, fs.NumRecords())
		fs.EachRecord(func(r *kgo.Record) {
			msgs = append(msgs, bus.Message{Record: FromKafka(r), Partition: r.Partition})
		})
		if len(msgs) > 0 {
			return msgs, nil
		}
		if ferr != nil {
			return nil, s.b.wrap(ferr, "reading topic %q for group %q", s.topic, s.group)
		}
	}
}

// Commit commits, for each partition of msgs still assigned to this member,
// the offset after the last message. Partitions handed to another member
// meanwhile are left alone: their new owner reads them again from the last
// commit (at-least-once), so Commit does not fail on a rebalance.
func (s *subscription) Commit(ctx context.Context, msgs []bus.Message) error {
	if s.isClosed() {
		return bus.ErrClosed
	}
	offsets := map[int32]kgo.EpochOffset{}
	s.mu.Lock()
	for _, m := range msgs {
		if s.owned[m.Partition] {
			offsets[m.Partition] = kgo.EpochOffset{Epoch: -1, Offset: m.Offset + 1}
		}
	}
	s.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	cerr := retry(ctx, func() error {
		return kafkaclient.CommitSync(ctx, s.cl, map[string]map[int32]kgo.EpochOffset{s.topic: offsets})
	})
	switch {
	case cerr == nil:
		return nil
	case errors.Is(cerr, kerr.RebalanceInProgress), errors.Is(cerr, kerr.IllegalGeneration),
		errors.Is(cerr, kerr.UnknownMemberID), errors.Is(cerr, kerr.FencedInstanceID):
		// The partitions moved during the commit: their new owner reads
		// the records again (at-least-once).
		return nil
	}
	return s.b.wrap(cerr, "committing %d partitions of topic %q for group %q", len(offsets), s.topic, s.group)
}

// Caught reports whether the group has committed, in every partition, the
// end offset the partition had at Subscribe time.
func (s *subscription) Caught(ctx context.Context) (bool, error) {
	if s.isClosed() {
		return false, bus.ErrClosed
	}
	s.mu.Lock()
	caught := s.caught
	s.mu.Unlock()
	if caught {
		return true, nil
	}
	var committed map[int32]int64
	for p, end := range s.ends {
		if end <= s.starts[p] {
			continue
		}
		if committed == nil {
			var err error
			if committed, err = s.b.committed(ctx, s.topic, s.group); err != nil {
				return false, err
			}
		}
		if c, ok := committed[p]; !ok || c < end {
			return false, nil
		}
	}
	s.mu.Lock()
	s.caught = true
	s.mu.Unlock()
	return true, nil
}

// Lag returns the records between the group's committed offsets (the first
// offset where a partition has none) and the partitions' current ends.
func (s *subscription) Lag(ctx context.Context) (int64, error) {
	if s.isClosed() {
		return 0, bus.ErrClosed
	}
	starts, ends, err := s.b.bounds(ctx, s.topic)
	if err != nil {
		return 0, err
	}
	committed, err := s.b.committed(ctx, s.topic, s.group)
	if err != nil {
		return 0, err
	}
	var lag int64
	for p, end := range ends {
		from, ok := committed[p]
		if !ok || from < starts[p] {
			from = starts[p]
		}
		lag += max(0, end-from)
	}
	return lag, nil
}

// Close leaves the group, so that its partitions go to the other members at
// once; uncommitted records are read again by their next owner. It is
// idempotent.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		done := make(chan struct{})
		go func() { s.cl.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
		}
	})
	return nil
}
