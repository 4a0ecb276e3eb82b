package natsbus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
	natsclient "github.com/culvert-dev/culvert/common/client/nats"
	"github.com/culvert-dev/culvert/common/record"
)

func init() {
	bus.Register("nats", func(ctx context.Context, u *url.URL) (bus.Bus, error) {
		return OpenURL(ctx, u, zerolog.Nop())
	})
}

// Defaults.
const (
	// DefaultAckWait is how long a delivered record may stay uncommitted
	// before JetStream delivers it again (to any member of the group).
	DefaultAckWait = 30 * time.Second
	// DefaultMaxRecords caps the records one Poll returns.
	DefaultMaxRecords = 8192
	// maxAckPending caps the records a group may hold delivered but not
	// committed; large, so that a sink may poll many batches before a commit.
	maxAckPending = 1 << 20
	// pollWait bounds one wait of Poll for new records.
	pollWait = time.Second
	// publishChunk is how many asynchronous publishes are in flight at once
	// per Publish call.
	publishChunk = 1024
)

// Options tunes the bus.
type Options struct {
	// Replicas is the number of replicas of each stream and of the position
	// bucket; 0 means 1.
	Replicas int
	// AckWait is the consumers' ack wait; 0 means DefaultAckWait.
	AckWait time.Duration
	// Namespace, letters and digits, separates the streams, subjects and
	// position bucket of several users of one account; "" means none.
	Namespace string
}

// busParams are the URL parameters this package owns; the client package
// owns the others.
var busParams = []string{"replicas", "ack_wait", "namespace"}

// ParseOptions reads the bus's own parameters from a URL and rejects
// parameters nobody knows.
func ParseOptions(u *url.URL) (Options, error) {
	var o Options
	q := u.Query()
	for k := range q {
		if !slices.Contains(busParams, k) && !slices.Contains(natsclient.Params, k) {
			return o, fmt.Errorf("bus: unknown NATS parameter %q (known: %v %v)", k, busParams, natsclient.Params)
		}
	}
	if s := q.Get("replicas"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 5 {
			return o, fmt.Errorf("bus: replicas=%q: must be a number from 1 to 5", s)
		}
		o.Replicas = n
	}
	if s := q.Get("ack_wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 100*time.Millisecond {
			return o, fmt.Errorf("bus: ack_wait=%q: must be a duration of at least 100ms, like 30s", s)
		}
		o.AckWait = d
	}
	o.Namespace = q.Get("namespace")
	if !validNamespace(o.Namespace) {
		return o, fmt.Errorf("bus: namespace=%q: must be at most 32 letters and digits", o.Namespace)
	}
	return o, nil
}

// Bus is the NATS JetStream bus.
type Bus struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options

	mu      sync.Mutex
	closed  bool
	streams map[string]jetstream.Stream // by topic
	kv      jetstream.KeyValue          // positions
	members jetstream.KeyValue          // live members of groups
}

// OpenURL connects to the server(s) in u (see package client/nats for the
// connection parameters) and checks that JetStream is enabled. log receives
// connection events (disconnects, reconnects).
func OpenURL(ctx context.Context, u *url.URL, log zerolog.Logger) (*Bus, error) {
	opts, err := ParseOptions(u)
	if err != nil {
		return nil, err
	}
	nc, err := natsclient.ConnectURL(ctx, u, natsclient.Options{Name: "culvert-bus", Log: log})
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	b, err := New(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: %s: %w", natsclient.RedactURL(u), err)
	}
	return b, nil
}

// New makes a bus of an open connection, which the bus then owns (Close
// closes it).
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Bus, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.AckWait <= 0 {
		opts.AckWait = DefaultAckWait
	}
	if !validNamespace(opts.Namespace) {
		return nil, fmt.Errorf("namespace %q: must be at most 32 letters and digits", opts.Namespace)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16*publishChunk))
	if err != nil {
		return nil, err
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return nil, fmt.Errorf("checking JetStream (is the server started with -js?): %w", err)
	}
	return &Bus{nc: nc, js: js, opts: opts, streams: map[string]jetstream.Stream{}}, nil
}

// Conn returns the bus's connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close closes the connection. It is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.nc.Close()
	return nil
}

// closedErr maps an error seen after Close to bus.ErrClosed.
func (b *Bus) closedErr(err error) error {
	if b.isClosed() || errors.Is(err, nats.ErrConnectionClosed) {
		return bus.ErrClosed
	}
	return err
}

// streamConfig is the configuration of a new stream for topic: no limits
// (see TopicConfig for retention).
func (b *Bus) streamConfig(topic string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        streamName(b.opts.Namespace, topic),
		Description: "culvert topic " + strconv.Quote(topic),
		Subjects:    []string{subjectName(b.opts.Namespace, topic)},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    b.opts.Replicas,
		MaxBytes:    -1,
	}
}

// stream returns the stream of topic, creating it when it is missing.
func (b *Bus) stream(ctx context.Context, topic string) (jetstream.Stream, error) {
	b.mu.Lock()
	s, ok := b.streams[topic]
	b.mu.Unlock()
	if ok {
		return s, nil
	}
	name := streamName(b.opts.Namespace, topic)
	s, err := b.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, b.streamConfig(topic))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = b.js.Stream(ctx, name) // created by someone else meanwhile
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening stream %s of topic %q: %w", name, topic, b.closedErr(err))
	}
	if err := b.checkSubjects(topic, s.CachedInfo()); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.streams[topic] = s
	b.mu.Unlock()
	return s, nil
}

// checkSubjects checks that the stream named after topic holds topic's
// subject.
func (b *Bus) checkSubjects(topic string, info *jetstream.StreamInfo) error {
	subject := subjectName(b.opts.Namespace, topic)
	if subs := info.Config.Subjects; !slices.Equal(subs, []string{subject}) {
		return fmt.Errorf("stream %s exists with subjects %v, not %s: it does not hold topic %q", info.Config.Name, subs, subject, topic)
	}
	return nil
}

// forget drops the stream of topic from the cache, after it was deleted
// (here or, as an error found, by another process): the next use creates
// it again.
func (b *Bus) forget(topic string) {
	b.mu.Lock()
	delete(b.streams, topic)
	b.mu.Unlock()
}

// Publish publishes every record asynchronously and returns once the server
// acknowledged each one (stored in its stream), then saves the batch's
// position. The two steps are not atomic: after a crash between them the
// records are there and the position is not, so the source repeats them.
func (b *Bus) Publish(ctx context.Context, batch bus.Batch) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	for _, w := range batch.Writes {
		if len(w.Records) == 0 {
			continue
		}
		if _, err := b.stream(ctx, w.Topic); err != nil {
			return fmt.Errorf("publishing to %q: %w", w.Topic, err)
		}
		subject := subjectName(b.opts.Namespace, w.Topic)
		for i := 0; i < len(w.Records); i += publishChunk {
			chunk := w.Records[i:min(i+publishChunk, len(w.Records))]
			err := b.publishChunk(ctx, subject, chunk)
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				// No stream listens: the topic was deleted (culvert topics
				// delete) since this bus opened it. Make it again, and
				// publish the chunk again (at-least-once).
				b.forget(w.Topic)
				if _, err = b.stream(ctx, w.Topic); err == nil {
					err = b.publishChunk(ctx, subject, chunk)
				}
			}
			if err != nil {
				return fmt.Errorf("publishing to %q: %w", w.Topic, b.closedErr(err))
			}
		}
	}
	if p := batch.Position; p != nil {
		if err := b.Positions().Put(ctx, p.Key, p.Value); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) publishChunk(ctx context.Context, subject string, recs []record.Record) error {
	futures := make([]jetstream.PubAckFuture, 0, len(recs))
	var err error
	for i := range recs {
		var f jetstream.PubAckFuture
		f, err = b.js.PublishMsgAsync(encode(subject, &recs[i]), jetstream.WithStallWait(30*time.Second))
		if err != nil {
			break
		}
		futures = append(futures, f)
	}
	// Wait for every future, even after an error, so that none is left
	// pending when Publish returns.
	for _, f := range futures {
		select {
		case <-f.Ok():
		case e := <-f.Err():
			if err == nil {
				err = e
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// Positions returns the position store: a JetStream key/value bucket.
func (b *Bus) Positions() bus.PositionStore { return positions{b} }

type positions struct{ b *Bus }

// bucket returns the position bucket, creating it when it is missing.
func (b *Bus) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	return b.openBucket(ctx, &b.kv, jetstream.KeyValueConfig{
		Bucket:      bucketName(b.opts.Namespace),
		Description: "culvert source positions",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    b.opts.Replicas,
	})
}

// openBucket returns *cache, else opens the bucket cfg names (creating it
// when it is missing) and keeps it in *cache.
func (b *Bus) openBucket(ctx context.Context, cache *jetstream.KeyValue, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	b.mu.Lock()
	kv, closed := *cache, b.closed
	b.mu.Unlock()
	if closed {
		return nil, bus.ErrClosed
	}
	if kv != nil {
		return kv, nil
	}
	kv, err := b.js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = b.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = b.js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", cfg.Bucket, b.closedErr(err))
	}
	b.mu.Lock()
	*cache = kv
	b.mu.Unlock()
	return kv, nil
}

// Get returns the position stored under key, or nil when there is none.
func (p positions) Get(ctx context.Context, key string) ([]byte, error) {
	kv, err := p.b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, positionKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading position %q: %w", key, p.b.closedErr(err))
	}
	v := e.Value()
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put stores value under key; it returns once the server stored it.
func (p positions) Put(ctx context.Context, key string, value []byte) error {
	kv, err := p.b.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, positionKey(key), value); err != nil {
		return fmt.Errorf("saving position %q: %w", key, p.b.closedErr(err))
	}
	return nil
}

// Subscribe joins group on topic: the group is a durable pull consumer of
// the topic's stream, shared by every member.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if b.isClosed() {
		return nil, bus.ErrClosed
	}
	if group == "" {
		return nil, fmt.Errorf("subscribing to %q: the group must not be empty", topic)
	}
	s, err := b.stream(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("subscribing to %q: %w", topic, err)
	}
	// The end of the topic now: Caught waits for the group to commit it.
	info, err := s.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted by another process since this bus opened it.
		b.forget(topic)
		if s, err = b.stream(ctx, topic); err != nil {
			return nil, fmt.Errorf("subscribing to %q: %w", topic, err)
		}
		info, err = s.Info(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribing to %q: %w", topic, b.closedErr(err))
	}
	end := info.State.LastSeq
	if info.State.Msgs == 0 {
		end = 0
	}
	name := consumerName(group)
	cfg := b.groupConfig(group)
	if opts.Start == bus.StartBeginning {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := s.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = s.CreateConsumer(ctx, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = s.Consumer(ctx, name) // created by another member meanwhile
		}
	}
	if err == nil {
		// The start option applies only to a new group; the ack wait follows the URL.
		if cur := cons.CachedInfo().Config; cur.AckWait != b.opts.AckWait {
			cur.AckWait = b.opts.AckWait
			cons, err = s.UpdateConsumer(ctx, cur)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("joining group %q of topic %q: %w", group, topic, b.closedErr(err))
	}
	maxRecords := opts.MaxRecords
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	sub := &subscription{b: b, stream: s, cons: cons, topic: topic, group: group, max: maxRecords, end: end,
		member: memberName(), pending: map[uint64]jetstream.Msg{}, done: make(chan struct{}), stopped: make(chan struct{})}
	if err := sub.present(ctx); err != nil {
		return nil, fmt.Errorf("joining group %q of topic %q: %w", group, topic, err)
	}
	go sub.keepalive(min(b.opts.AckWait/3, memberRenewMax))
	return sub, nil
}

// groupConfig is the configuration of a new durable consumer for group,
// starting after the end of the stream.
func (b *Bus) groupConfig(group string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName(group),
		Description:   "culvert group " + strconv.Quote(group),
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.opts.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		Replicas:      0, // as the stream
	}
}

// subscription is one member of a group.
type subscription struct {
	b            *Bus
	stream       jetstream.Stream
	cons         jetstream.Consumer
	topic, group string
	max          int
	end          uint64 // the stream's last sequence at subscribe time, 0 if empty
	member       string // this member's name in the members bucket

	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when keepalive returns

	mu      sync.Mutex
	closed  bool
	pending map[uint64]jetstream.Msg // delivered to this member, not yet committed
}

// keepalive tells the server, every interval, that this member is still
// working on the records it holds (an "in progress" acknowledgement resets
// their ack wait). So a live member keeps its records however long it takes,
// and the ack wait can be short: it is how soon a dead member's records go
// to another member.
func (s *subscription) keepalive(interval time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if s.b.isClosed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.present(ctx) // a failure is tried again next time; the entry outlives two
		cancel()
		s.mu.Lock()
		held := make([]jetstream.Msg, 0, len(s.pending))
		for _, m := range s.pending {
			held = append(held, m)
		}
		s.mu.Unlock()
		for _, m := range held {
			if err := m.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				break // the connection is down or closed; try again next time
			}
		}
	}
}

func (s *subscription) check() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.b.isClosed() {
		return bus.ErrClosed
	}
	return nil
}

// Poll returns up to MaxRecords records, in stream order, waiting for at
// least one. A record whose ack wait expired in another member comes again
// here, so offsets may go back after a takeover.
func (s *subscription) Poll(ctx context.Context) ([]bus.Message, error) {
	for {
		if err := s.check(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		msgs, err := s.fetch(func() (jetstream.MessageBatch, error) { return s.cons.FetchNoWait(s.max) })
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		wait := pollWait
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if wait < 10*time.Millisecond {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		msgs, err = s.fetch(func() (jetstream.MessageBatch, error) { return s.cons.Fetch(1, jetstream.FetchMaxWait(wait)) })
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			if s.max > 1 {
				more, err := s.fetch(func() (jetstream.MessageBatch, error) { return s.cons.FetchNoWait(s.max - 1) })
				if err == nil {
					msgs = append(msgs, more...)
				}
			}
			sort.Slice(msgs, func(i, j int) bool { return msgs[i].Offset < msgs[j].Offset })
			return msgs, nil
		}
	}
}

// fetch runs one fetch and turns its messages into bus messages, keeping
// them for Commit.
func (s *subscription) fetch(f func() (jetstream.MessageBatch, error)) ([]bus.Message, error) {
	batch, err := f()
	if err != nil {
		return nil, fmt.Errorf("polling %q: %w", s.topic, s.b.closedErr(err))
	}
	var out []bus.Message
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		r := decode(m.Headers(), m.Data())
		r.Offset = int64(seq)
		out = append(out, bus.Message{Record: r})
		s.mu.Lock()
		if s.pending != nil { // nil once closed
			s.pending[seq] = m
		}
		s.mu.Unlock()
	}
	if err := batch.Error(); err != nil && len(out) == 0 && !errors.Is(err, nats.ErrTimeout) {
		return nil, fmt.Errorf("polling %q: %w", s.topic, s.b.closedErr(err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out, nil
}

// ackBody is JetStream's acknowledgement.
var ackBody = []byte("+ACK")

// ackAnswerWait bounds the wait for the server's answer to a commit's
// acknowledgement.
const ackAnswerWait = 10 * time.Second

// Commit acknowledges every record delivered to this member up to and
// including the last of msgs. The last acknowledgement waits for the
// server's reply, so Caught and Lag see the commit once Commit returned.
func (s *subscription) Commit(ctx context.Context, msgs []bus.Message) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	last := uint64(msgs[len(msgs)-1].Offset)
	s.mu.Lock()
	var seqs []uint64
	for seq := range s.pending {
		if seq <= last {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	acks := make([]jetstream.Msg, len(seqs))
	for i, seq := range seqs {
		acks[i] = s.pending[seq]
	}
	s.mu.Unlock()
	if len(acks) == 0 {
		return nil
	}
	// The acknowledgements go out as plain messages, the last one as a
	// request that waits for the server's answer: the server handles a
	// connection's messages in order, so once it answered it has them all.
	// Unless the connection was lost and made again meanwhile: then
	// messages sent before may be lost although the last one was answered
	// (a restart left the group 7,500 records behind a Commit that had
	// returned), and they are all sent again; the server takes an
	// acknowledgement twice. A request, or its answer, lost in a
	// reconnection is never answered: it waits at most ackAnswerWait,
	// whatever ctx allows, and the caller tries again.
	nc := s.b.nc
	for try := 1; ; try++ {
		reconnects := nc.Stats().Reconnects
		for _, m := range acks[:len(acks)-1] {
			if err := nc.Publish(m.Reply(), ackBody); err != nil {
				return fmt.Errorf("committing offset %d of %q: %w", last, s.topic, s.b.closedErr(err))
			}
		}
		actx, cancel := context.WithTimeout(ctx, ackAnswerWait)
		_, err := nc.RequestWithContext(actx, acks[len(acks)-1].Reply(), ackBody)
		cancel()
		if err != nil {
			return fmt.Errorf("committing offset %d of %q: %w", last, s.topic, s.b.closedErr(err))
		}
		if nc.Stats().Reconnects == reconnects {
			break
		}
		if try == 3 {
			return fmt.Errorf("committing offset %d of %q: the connection to NATS was lost 3 times while the acknowledgements went out", last, s.topic)
		}
	}
	s.mu.Lock()
	for _, seq := range seqs {
		delete(s.pending, seq)
	}
	s.mu.Unlock()
	return nil
}

// Caught reports whether the group has committed every record that was in
// the topic when this member subscribed (its committed offset, see
// committedOf, is past the stream's last sequence then).
func (s *subscription) Caught(ctx context.Context) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	if s.end == 0 {
		return true, nil
	}
	info, err := s.cons.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("reading group %q of %q: %w", s.group, s.topic, s.b.closedErr(err))
	}
	return committedOf(info) > int64(s.end), nil
}

// Lag returns the records from the group's committed offset (see
// committedOf) to the end of the stream: those it has not committed,
// delivered or not.
func (s *subscription) Lag(ctx context.Context) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	cinfo, err := s.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading group %q of %q: %w", s.group, s.topic, s.b.closedErr(err))
	}
	sinfo, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading topic %q: %w", s.topic, s.b.closedErr(err))
	}
	return max(int64(sinfo.State.LastSeq)+1-committedOf(cinfo), 0), nil
}

// Close leaves the group: records delivered to this member and not
// committed are handed back at once (negative acknowledgement) instead of
// after the ack wait. The group's durable consumer stays. Close is idempotent.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	seqs := make([]uint64, 0, len(s.pending))
	for seq := range s.pending {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	naks := make([]jetstream.Msg, len(seqs))
	for i, seq := range seqs {
		naks[i] = s.pending[seq]
	}
	s.pending = nil
	s.mu.Unlock()
	close(s.done)
	<-s.stopped
	if s.b.isClosed() {
		return nil
	}
	s.absent()
	if len(naks) == 0 {
		return nil
	}
	for _, m := range naks {
		if err := m.Nak(); err != nil {
			return nil // redelivered after the ack wait instead
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.b.nc.FlushWithContext(ctx)
	return nil
}
