package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/bus"
	redisclient "github.com/culvert-dev/culvert/common/client/redis"
)

func init() {
	open := func(ctx context.Context, u *url.URL) (bus.Bus, error) { return Open(ctx, u) }
	bus.Register("redis", open)
	bus.Register("rediss", open)
}

// Defaults of the URL's options.
const (
	DefaultPrefix     = "culvert"
	DefaultClaimIdle  = 30 * time.Second
	DefaultMaxRecords = 8192
)

// maxBlock bounds one XREADGROUP BLOCK, so that Poll notices a cancelled
// context or a Close within about this time.
const maxBlock = 500 * time.Millisecond

// releasedIdle is the idle time Close gives the entries it hands back, so
// that any member's next XAUTOCLAIM takes them at once.
const releasedIdle = 365 * 24 * time.Hour

// waitAOFTimeout bounds how long a Publish with wait_aof waits for the fsync.
const waitAOFTimeout = 10 * time.Second

// closeTimeout bounds the Redis calls a Close makes.
const closeTimeout = 5 * time.Second

// Bus is a bus on a Redis server, its topics kept as streams.
type Bus struct {
	rdb *goredis.Client
	// txc sends Publish's MULTI/EXEC and never resends it by itself: after a
	// connection lost during EXEC the transaction may have run, and sending
	// it again would store the records twice. Publish finds out instead
	// (see applied).
	txc       *goredis.Client
	prefix    string
	claimIdle time.Duration
	waitAOF   bool
	redacted  string

	closed atomic.Bool
	mu     sync.Mutex
	subs   map[*subscription]struct{}

	retMu     sync.Mutex
	retention map[string]topicRetention // by topic, see retentionOf
}

// Open connects to the Redis named by u (redis:// or rediss://). Besides the
// connection options of package client/redis, u may set prefix (the key
// namespace, default "culvert") and claim_idle (how long an entry stays
// pending with a member before another member takes it over, default 30s)
// and wait_aof (1 or true: Publish also waits, with WAITAOF, until Redis has
// fsynced the transaction to its append-only file; needs Redis 7.2 or later
// with appendonly yes, which Open checks).
func Open(ctx context.Context, u *url.URL) (*Bus, error) {
	c := *u
	q := c.Query()
	b := &Bus{prefix: DefaultPrefix, claimIdle: DefaultClaimIdle, subs: map[*subscription]struct{}{}, retention: map[string]topicRetention{}}
	if p := q.Get("prefix"); p != "" {
		b.prefix = p
	}
	if s := q.Get("claim_idle"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("claim_idle: must be a positive duration like 30s, not %q", s)
		}
		b.claimIdle = d
	}
	switch w := q.Get("wait_aof"); w {
	case "", "0", "false":
	case "1", "true":
		b.waitAOF = true
	default:
		return nil, fmt.Errorf("wait_aof: must be 1 or 0, not %q", w)
	}
	q.Del("prefix")
	q.Del("claim_idle")
	q.Del("wait_aof")
	c.RawQuery = q.Encode()
	b.redacted = bus.Redact(u.String())
	rdb, err := redisclient.Connect(ctx, &c)
	if err != nil {
		return nil, err
	}
	b.rdb = rdb
	txo := *rdb.Options()
	txo.MaxRetries = -1
	b.txc = goredis.NewClient(&txo)
	if b.waitAOF {
		// On a connection that wrote nothing, WAITAOF returns at once where
		// it is supported and appendonly is on, and fails otherwise.
		if err := rdb.WaitAOF(ctx, 1, 0, waitAOFTimeout).Err(); err != nil {
			rdb.Close()
			b.txc.Close()
			return nil, fmt.Errorf("wait_aof: redis %s cannot wait for fsync (it needs Redis 7.2 or later with appendonly yes): %w", b.redacted, err)
		}
	}
	return b, nil
}

// Client returns the Redis client of the bus.
func (b *Bus) Client() *goredis.Client { return b.rdb }

// StreamKey returns the stream key that holds topic.
func (b *Bus) StreamKey(topic string) string { return b.prefix + ":topic:" + topic }

// PositionsKey returns the key of the hash that holds source positions.
func (b *Bus) PositionsKey() string { return b.prefix + ":positions" }

// PublishedKey returns the key of the hash that holds, for each position
// key, the id of the last publish that saved it: how Publish tells whether
// a transaction whose answer was lost ran.
func (b *Bus) PublishedKey() string { return b.prefix + ":published" }

// Close closes the bus's subscriptions, then its connections. It is idempotent.
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
	return errors.Join(b.rdb.Close(), b.txc.Close())
}

// wrap turns the error of a Redis call into the bus's error.
func (b *Bus) wrap(err error, format string, args ...any) error {
	if b.closed.Load() || errors.Is(err, goredis.ErrClosed) {
		return bus.ErrClosed
	}
	return fmt.Errorf(format+" on redis %s: %w", append(args, b.redacted, err)...)
}

// Publish writes the batch's records and position in one MULTI/EXEC
// transaction. It returns once Redis has applied it.
func (b *Bus) Publish(ctx context.Context, batch bus.Batch) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if batch.Len() == 0 && batch.Position == nil {
		return nil
	}
	id := publishID()
	trims := b.trims(ctx, batch)
	var tx func(context.Context, func(goredis.Pipeliner) error) ([]goredis.Cmder, error) = b.txc.TxPipelined
	var conn *goredis.Conn
	if b.waitAOF {
		// WAITAOF waits for the writes of its own connection.
		conn = b.txc.Conn()
		defer conn.Close()
		tx = conn.TxPipelined
	}
	_, err := tx(ctx, func(p goredis.Pipeliner) error {
		for _, w := range batch.Writes {
			key := b.StreamKey(w.Topic)
			for i := range w.Records {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: entryFields(&w.Records[i])})
			}
		}
		for topic, r := range trims {
			r.trim(ctx, p, b.StreamKey(topic))
		}
		if pos := batch.Position; pos != nil {
			p.HSet(ctx, b.PositionsKey(), pos.Key, pos.Value)
			p.HSet(ctx, b.PublishedKey(), pos.Key, id)
		}
		return nil
	})
	if err != nil && batch.Position != nil && b.applied(ctx, batch.Position.Key, id) {
		// The answer was lost, not the transaction: sending it again would
		// store its records twice (the chaos test saw 17,809 records twice
		// after a server restart, when the client still resent it).
		err = nil
		conn = nil // its writes were on the lost connection: nothing to wait for
	}
	if err != nil {
		topic := ""
		if len(batch.Writes) > 0 {
			topic = batch.Writes[0].Topic
		}
		return b.wrap(err, "publishing %d records to %q", batch.Len(), topic)
	}
	if conn != nil {
		acks, err := conn.WaitAOF(ctx, 1, 0, waitAOFTimeout).Result()
		if err != nil {
			return b.wrap(err, "waiting for the fsync of %d records", batch.Len())
		}
		if len(acks) == 0 || acks[0] < 1 {
			return fmt.Errorf("redis %s did not fsync %d records within %v", b.redacted, batch.Len(), waitAOFTimeout)
		}
	}
	return nil
}

// publishID returns a new random id for one Publish.
func publishID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// applied reports whether the publish id is the last one recorded for the
// position key: its transaction ran, though its answer was lost. While the
// server is unreachable it keeps asking, as long as ctx allows: resending
// without knowing could store the records twice. When ctx ends first it says
// no; the source then resumes from the position the bus holds, so a
// transaction that did run is not repeated.
func (b *Bus) applied(ctx context.Context, key, id string) bool {
	wait := 100 * time.Millisecond
	for {
		got, err := b.rdb.HGet(ctx, b.PublishedKey(), key).Result()
		if err == nil || errors.Is(err, goredis.Nil) {
			return got == id
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Positions returns the position store, the hash PositionsKey.
func (b *Bus) Positions() bus.PositionStore { return positions{b} }

type positions struct{ b *Bus }

func (p positions) Get(ctx context.Context, key string) ([]byte, error) {
	if p.b.closed.Load() {
		return nil, bus.ErrClosed
	}
	v, err := p.b.rdb.HGet(ctx, p.b.PositionsKey(), key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, p.b.wrap(err, "reading position %q", key)
	}
	return v, nil
}

func (p positions) Put(ctx context.Context, key string, value []byte) error {
	if p.b.closed.Load() {
		return bus.ErrClosed
	}
	if err := p.b.rdb.HSet(ctx, p.b.PositionsKey(), key, value).Err(); err != nil {
		return p.b.wrap(err, "saving position %q", key)
	}
	return nil
}

// Subscribe joins group on topic as a new consumer with a unique name,
// creating the group (at the start or the end of the stream, as opts say)
// when it does not exist yet.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	if topic == "" || group == "" {
		return nil, errors.New("redis bus: subscribe needs a topic and a group")
	}
	key := b.StreamKey(topic)
	start := "$"
	if opts.Start == bus.StartBeginning {
		start = "0"
	}
	if err := b.rdb.XGroupCreateMkStream(ctx, key, group, start).Err(); err != nil && !goredis.HasErrorPrefix(err, "BUSYGROUP") {
		return nil, b.wrap(err, "creating group %q of topic %q", group, topic)
	}
	last, err := b.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return nil, b.wrap(err, "reading the end of topic %q", topic)
	}
	end := "0-0"
	if len(last) > 0 {
		end = last[0].ID
	}
	max := opts.MaxRecords
	if max <= 0 {
		max = DefaultMaxRecords
	}
	s := &subscription{
		b: b, topic: topic, key: key, group: group, consumer: consumerName(),
		max: int64(max), end: end, claimCursor: "0-0",
		stop: make(chan struct{}), beaten: make(chan struct{}),
	}
	if err := s.present(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, bus.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.heartbeat()
	return s, nil
}

func consumerName() string {
	host, _ := os.Hostname()
	var r [6]byte
	rand.Read(r[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])
}

type subscription struct {
	b        *Bus
	topic    string
	key      string
	group    string
	consumer string
	max      int64
	end      string // the stream's last ID at Subscribe time

	mu          sync.Mutex // serialises Poll's claim state
	claimCursor string
	lastScan    time.Time

	heldMu sync.Mutex
	held   []heldEntry // entries handed to this member and not yet committed, in order

	stop   chan struct{} // closed by Close: heartbeat returns
	beaten chan struct{} // closed when heartbeat returned

	closed    atomic.Bool
	closeOnce sync.Once
}

// heldEntry is an entry handed to a member: its offset and stream ID.
type heldEntry struct {
	offset int64
	id     string
}

func (s *subscription) isClosed() bool { return s.closed.Load() || s.b.closed.Load() }

// claimEvery is how often Poll scans the group's pending entries for ones to
// take over.
func (s *subscription) claimEvery() time.Duration {
	return min(s.b.claimIdle/4, 5*time.Second)
}

// Poll returns entries taken over from members that left them pending
// longer than claim_idle, else new entries, blocking until there are some
// or ctx is done.
func (s *subscription) Poll(ctx context.Context) ([]bus.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.isClosed() {
			return nil, bus.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.claimCursor != "0-0" || time.Since(s.lastScan) >= s.claimEvery() {
			msgs, err := s.claim(ctx)
			if err != nil || len(msgs) > 0 {
				return msgs, err
			}
		}
		block := maxBlock
		if dl, ok := ctx.Deadline(); ok {
			// Leave the reply time to arrive before the deadline.
			if rem := time.Until(dl) - 50*time.Millisecond; rem < block {
				block = rem
			}
		}
		if block < time.Millisecond {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		block = min(block, s.claimEvery())
		streams, err := s.b.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: s.group, Consumer: s.consumer, Streams: []string{s.key, ">"},
			Count: s.max, Block: block,
		}).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.b.wrap(err, "reading topic %q for group %q", s.topic, s.group)
		}
		var msgs []bus.Message
		for _, st := range streams {
			if msgs, err = s.decode(msgs, st.Messages); err != nil {
				return nil, err
			}
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
	}
}

// claim runs one step of the XAUTOCLAIM scan of the group's pending entries.
func (s *subscription) claim(ctx context.Context) ([]bus.Message, error) {
	entries, next, err := s.b.rdb.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
		Stream: s.key, Group: s.group, Consumer: s.consumer,
		MinIdle: s.b.claimIdle, Start: s.claimCursor, Count: s.max,
	}).Result()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.b.wrap(err, "taking over pending records of topic %q for group %q", s.topic, s.group)
	}
	s.claimCursor = next
	if next == "0-0" {
		s.lastScan = time.Now()
	}
	return s.decode(nil, entries)
}

func (s *subscription) decode(msgs []bus.Message, entries []goredis.XMessage) ([]bus.Message, error) {
	held := make([]heldEntry, 0, len(entries))
	for _, e := range entries {
		if e.Values == nil {
			continue // deleted while pending
		}
		r, err := decodeEntry(e.ID, e.Values)
		if err != nil {
			return nil, fmt.Errorf("reading topic %q: %w", s.topic, err)
		}
		msgs = append(msgs, bus.Message{Record: r})
		held = append(held, heldEntry{r.Offset, e.ID})
	}
	s.heldMu.Lock()
	s.held = append(s.held, held...)
	s.heldMu.Unlock()
	return msgs, nil
}

// Commit acknowledges (XACK) every message this member was handed up to and
// including msgs' last one, as the Bus contract says, and msgs themselves.
func (s *subscription) Commit(ctx context.Context, msgs []bus.Message) error {
	if s.isClosed() {
		return bus.ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	last := msgs[len(msgs)-1].Offset
	s.heldMu.Lock()
	upTo := slices.IndexFunc(s.held, func(h heldEntry) bool { return h.offset == last }) + 1
	ids := make([]string, 0, upTo+1)
	for _, h := range s.held[:upTo] {
		ids = append(ids, h.id)
	}
	// msgs are usually among those, in the same order: one forward scan
	// finds them, and any other is acknowledged by its own ID.
	j := 0
	for _, m := range msgs {
		for j < upTo && s.held[j].offset != m.Offset {
			j++
		}
		if j < upTo {
			j++
			continue
		}
		ids = append(ids, offsetToID(m.Offset))
	}
	s.heldMu.Unlock()
	if err := s.b.rdb.XAck(ctx, s.key, s.group, ids...).Err(); err != nil {
		return s.b.wrap(err, "committing %d records of topic %q for group %q", len(ids), s.topic, s.group)
	}
	s.heldMu.Lock()
	s.held = s.held[min(upTo, len(s.held)):]
	s.heldMu.Unlock()
	return nil
}

func (s *subscription) groupInfo(ctx context.Context) (goredis.XInfoGroup, error) {
	groups, err := s.b.rdb.XInfoGroups(ctx, s.key).Result()
	if err != nil {
		return goredis.XInfoGroup{}, s.b.wrap(err, "reading group %q of topic %q", s.group, s.topic)
	}
	for _, g := range groups {
		if g.Name == s.group {
			return g, nil
		}
	}
	return goredis.XInfoGroup{}, fmt.Errorf("redis bus: group %q of topic %q no longer exists", s.group, s.topic)
}

// Caught reports whether every entry up to the stream's last ID at
// Subscribe time was delivered to the group and acknowledged.
func (s *subscription) Caught(ctx context.Context) (bool, error) {
	if s.isClosed() {
		return false, bus.ErrClosed
	}
	if s.end == "0-0" {
		return true, nil
	}
	g, err := s.groupInfo(ctx)
	if err != nil {
		return false, err
	}
	if compareIDs(g.LastDeliveredID, s.end) < 0 {
		return false, nil
	}
	pending, err := s.b.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: s.key, Group: s.group, Start: "-", End: s.end, Count: 1,
	}).Result()
	if err != nil {
		return false, s.b.wrap(err, "reading pending records of group %q of topic %q", s.group, s.topic)
	}
	return len(pending) == 0, nil
}

// Lag returns the group's entries not yet delivered plus those delivered
// and not yet acknowledged.
func (s *subscription) Lag(ctx context.Context) (int64, error) {
	if s.isClosed() {
		return 0, bus.ErrClosed
	}
	g, err := s.groupInfo(ctx)
	if err != nil {
		return 0, err
	}
	lag, err := s.b.undelivered(ctx, s.topic, g)
	if err != nil {
		return 0, err
	}
	return lag + g.Pending, nil
}

// undelivered returns the number of entries of topic after the group's last
// delivered one: XINFO GROUPS' lag, or when Redis cannot tell (entries were
// deleted) a count.
func (b *Bus) undelivered(ctx context.Context, topic string, g goredis.XInfoGroup) (int64, error) {
	if g.Lag >= 0 {
		return g.Lag, nil
	}
	return b.count(ctx, topic, "("+g.LastDeliveredID, "+")
}

// count returns the number of entries of topic from start to end (XRANGE
// bounds).
func (b *Bus) count(ctx context.Context, topic, start, end string) (int64, error) {
	var n int64
	for {
		es, err := b.rdb.XRangeN(ctx, b.StreamKey(topic), start, end, 10000).Result()
		if err != nil {
			return 0, b.wrap(err, "counting records of topic %q", topic)
		}
		n += int64(len(es))
		if len(es) < 10000 {
			return n, nil
		}
		start = "(" + es[len(es)-1].ID
	}
}

// Close leaves the group: entries this member has not acknowledged are
// handed back at once for another member to take over, and the consumer is
// removed when it holds none. It is idempotent.
func (s *subscription) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		close(s.stop)
		<-s.beaten
		if s.b.closed.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		err = errors.Join(s.leave(ctx), s.absent(ctx))
	})
	return err
}

func (s *subscription) leave(ctx context.Context) error {
	held := 0
	start := "-"
	for {
		pending, err := s.b.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{
			Stream: s.key, Group: s.group, Start: start, End: "+", Count: 1000, Consumer: s.consumer,
		}).Result()
		if err != nil {
			return s.b.wrap(err, "leaving group %q of topic %q", s.group, s.topic)
		}
		if len(pending) == 0 {
			break
		}
		held += len(pending)
		args := make([]any, 0, 8+len(pending))
		args = append(args, "XCLAIM", s.key, s.group, s.consumer, 0)
		for _, p := range pending {
			args = append(args, p.ID)
		}
		args = append(args, "IDLE", releasedIdle.Milliseconds(), "JUSTID")
		if err := s.b.rdb.Do(ctx, args...).Err(); err != nil {
			return s.b.wrap(err, "handing back pending records of group %q of topic %q", s.group, s.topic)
		}
		if len(pending) < 1000 {
			break
		}
		start = "(" + pending[len(pending)-1].ID
	}
	if held == 0 {
		if err := s.b.rdb.XGroupDelConsumer(ctx, s.key, s.group, s.consumer).Err(); err != nil {
			return s.b.wrap(err, "leaving group %q of topic %q", s.group, s.topic)
		}
	}
	return nil
}
