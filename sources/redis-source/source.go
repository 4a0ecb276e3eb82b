package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	redisclient "github.com/culvert-dev/culvert/common/client/redis"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name: "redis-source",
	Description: "Publishes what Redis holds or carries as records: the entries of a stream through a consumer group " +
		"(XREADGROUP, XACK only once the records are durable on the bus, entries left pending by a crash claimed), " +
		"the items of a list used as a reliable queue (BLMOVE to a processing list, removed once durable), " +
		"or the messages of Pub/Sub channels (at-most-once).",
	Examples: `
# A stream through the consumer group culvert, each entry's field "payload" as the value
redis-source --topic orders --url redis://127.0.0.1:6379 --stream orders --group culvert --value-field payload

# Every field of each entry as a JSON object, the field "id" as the record key, over TLS
redis-source --topic orders --url 'rediss://redis.example.com:6380?tls_ca=/etc/ssl/ca.pem' --password '${{ secrets.REDIS_PASSWORD }}' \
    --stream orders --key-field id --start new

# A list as a reliable queue (producers LPUSH): each item moved to jobs:processing until durable
redis-source --topic jobs --list jobs

# Pub/Sub channels and patterns (at-most-once: what is published while disconnected is lost)
redis-source --topic events --channel events --channel 'sensors.*'`,
}

// Options are redis-source's own options.
type Options struct {
	redisclient.ConnOptions
	Stream     string          `json:"stream,omitempty" jsonschema_description:"Stream to read through a consumer group (at-least-once): entries are acknowledged (XACK) only once durable on the bus; entries another consumer left pending longer than --claim-idle are claimed."`
	List       string          `json:"list,omitempty" jsonschema_description:"List to read as a reliable queue (at-least-once): each item is moved (BLMOVE) to --processing and removed from it only once durable on the bus; items left there by a crash are delivered again first at the next start."`
	Channel    []string        `json:"channel,omitempty" jsonschema_description:"Pub/Sub channel to subscribe to; a name with *, ? or [ is a pattern (PSUBSCRIBE). Repeatable. At-most-once, as Pub/Sub itself: what is published while the connector is down or disconnected is lost."`
	Group      string          `json:"group,omitempty" jsonschema_description:"Stream: the consumer group (created with MKSTREAM when missing), which keeps the position across restarts; processes in one group share the entries (default: culvert_ and the topic)."`
	Consumer   string          `json:"consumer,omitempty" jsonschema_description:"Stream: this process's consumer name in the group; a restarted process with the same name reads its own pending entries first. Processes sharing a group need different names (default: the host name)."`
	Start      string          `json:"start" jsonschema:"enum=all,enum=new,default=all" jsonschema_description:"Stream: where a new consumer group starts: the stream's first entry, or only entries added from now on."`
	ClaimIdle  schema.Duration `json:"claim_idle" jsonschema:"default=1m" jsonschema_description:"Stream: entries pending (delivered, not acknowledged) longer than this are claimed (XAUTOCLAIM) and delivered again, at start and then periodically: how a crashed consumer's entries are taken over."`
	ValueField string          `json:"value_field,omitempty" jsonschema_description:"Stream: the field whose bytes are the record value; the other fields become record headers. Without it, the value is a JSON object of every field (members sorted by name, values as strings). An entry without the field goes to the dead-letter topic."`
	KeyField   string          `json:"key_field,omitempty" jsonschema_description:"Stream: the field whose bytes are the record key (it stays in the value or headers too)."`
	Processing string          `json:"processing,omitempty" jsonschema_description:"List: the processing list the items wait in until durable on the bus (default: the list's name and :processing). One per process."`
	Pop        string          `json:"pop" jsonschema:"enum=right,enum=left,default=right" jsonschema_description:"List: the end items are taken from: right for producers that LPUSH (first in, first out), left for producers that RPUSH."`
	Count      int             `json:"count" jsonschema:"minimum=1,maximum=100000,default=1000" jsonschema_description:"Stream and list: most entries or items read per request."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	kinds := 0
	for _, set := range []bool{o.Stream != "", o.List != "", len(o.Channel) > 0} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return schema.Invalid("stream", "give one of --stream, --list or --channel")
	}
	for _, c := range o.Channel {
		if c == "" {
			return schema.Invalid("channel", "empty channel name")
		}
	}
	only := func(kind string, set map[string]bool) error {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			if set[name] {
				return schema.Invalid(name, "only with --%s", kind)
			}
		}
		return nil
	}
	if o.Stream == "" {
		if err := only("stream", map[string]bool{"group": o.Group != "", "consumer": o.Consumer != "", "start": o.Start != "" && o.Start != "all",
			"value_field": o.ValueField != "", "key_field": o.KeyField != ""}); err != nil {
			return err
		}
	}
	if o.List == "" {
		if err := only("list", map[string]bool{"processing": o.Processing != "", "pop": o.Pop != "" && o.Pop != "right"}); err != nil {
			return err
		}
	}
	if o.List != "" && o.Processing == o.List {
		return schema.Invalid("processing", "must not be the list itself")
	}
	if o.ClaimIdle <= 0 {
		return schema.Invalid("claim_idle", "must be more than 0")
	}
	return nil
}

// block is the longest a blocking read waits, so that a stop and the
// periodic claim are not held up.
const block = time.Second

type source struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger
	conn *redisclient.Conn

	// ctx outlives the runner's context for the acknowledgements of the
	// last batches; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex // guards redo and ps
	redo []item     // delivered in a batch that failed: delivered again first

	// acks takes what is durable on the bus to the acker, which
	// acknowledges it off the publishing path, several batches in one
	// round trip; acked is closed when the acker returned.
	ackMu sync.Mutex // guards acks against Close
	acks  chan []item
	acked chan struct{}
	// stopping is closed when Close begins: an ack waiting for room in
	// acks (Redis down, the acker retrying) gives up, its items pending.
	stopping chan struct{}
	stopOnce sync.Once

	// Stream.
	history     string // the ID after which to read this consumer's own pending entries; "" once read
	claimCursor string
	lastClaim   time.Time

	// List.
	leftover []item // items found in the processing list at start

	// Pub/Sub.
	ps       *goredis.PubSub
	messages chan *goredis.Message
	fatal    chan error
	done     chan struct{} // closed by Close: receive returns
	received chan struct{} // closed when receive returned
}

// item is what one record was read from: a stream entry or a list item.
type item struct {
	id     string // stream entry ID
	values map[string]any
	data   []byte // list item
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	o := *opts
	if o.Stream != "" {
		if o.Group == "" {
			o.Group = "culvert_" + env.Topic
		}
		if o.Consumer == "" {
			host, err := os.Hostname()
			if err != nil || host == "" {
				host = "culvert"
			}
			o.Consumer = host
		}
	}
	if o.List != "" && o.Processing == "" {
		o.Processing = o.List + ":processing"
	}
	return &source{opts: o, env: env, log: env.Log}, nil
}

// Open connects, then creates the consumer group (stream), reads what the
// processing list holds (list) or subscribes (Pub/Sub).
func (s *source) Open(ctx context.Context, _ []byte) error {
	s.opts.Warn(s.log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	conn, err := s.opts.Connect(ctx, redisclient.Hooks{Log: s.log, Reconnecting: s.env.Reconnecting, Reconnected: s.env.Reconnected})
	if err != nil {
		return err
	}
	s.conn = conn
	s.acks, s.acked, s.stopping = make(chan []item, 64), make(chan struct{}), make(chan struct{})
	go s.acker(s.acks)
	switch {
	case s.opts.Stream != "":
		err = s.openStream(ctx)
	case s.opts.List != "":
		err = s.openList(ctx)
	default:
		err = s.openPubSub(ctx)
	}
	if err != nil {
		s.Close()
	}
	return err
}

func (s *source) openStream(ctx context.Context) error {
	start := "0"
	if s.opts.Start == "new" {
		start = "$"
	}
	err := s.conn.Do(ctx, "creating the consumer group", func(ctx context.Context) error {
		err := s.conn.XGroupCreateMkStream(ctx, s.opts.Stream, s.opts.Group, start).Err()
		if goredis.HasErrorPrefix(err, "BUSYGROUP") {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("stream %q: creating consumer group %q: %w", s.opts.Stream, s.opts.Group, err)
	}
	s.history, s.claimCursor = "0", "0-0"
	s.log.Info().Str("stream", s.opts.Stream).Str("group", s.opts.Group).Str("consumer", s.opts.Consumer).Str("server", s.conn.Server).
		Msg("reading the stream through the consumer group")
	return nil
}

func (s *source) openList(ctx context.Context) error {
	var left []string
	err := s.conn.Do(ctx, "reading the processing list", func(ctx context.Context) (err error) {
		left, err = s.conn.LRange(ctx, s.opts.Processing, 0, -1).Result()
		return err
	})
	if err != nil {
		return fmt.Errorf("list %q: reading the processing list %q: %w", s.opts.List, s.opts.Processing, err)
	}
	// Items are pushed on the processing list's left: the oldest is last.
	for i := len(left) - 1; i >= 0; i-- {
		s.leftover = append(s.leftover, item{data: []byte(left[i])})
	}
	ev := s.log.Info().Str("list", s.opts.List).Str("processing", s.opts.Processing).Str("server", s.conn.Server)
	if len(left) > 0 {
		ev = ev.Int("redelivered", len(left))
	}
	ev.Msg("reading the list as a reliable queue")
	return nil
}

func (s *source) openPubSub(ctx context.Context) error {
	var channels, patterns []string
	for _, c := range s.opts.Channel {
		if strings.ContainsAny(c, "*?[") {
			patterns = append(patterns, c)
		} else {
			channels = append(channels, c)
		}
	}
	s.ps = s.conn.Subscribe(ctx)
	err := s.conn.Do(ctx, "subscribing", func(ctx context.Context) error {
		if len(channels) > 0 {
			if err := s.ps.Subscribe(ctx, channels...); err != nil {
				return err
			}
		}
		if len(patterns) > 0 {
			return s.ps.PSubscribe(ctx, patterns...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribing to %q: %w", s.opts.Channel, err)
	}
	s.messages = make(chan *goredis.Message, 4096)
	s.fatal = make(chan error, 1)
	s.done, s.received = make(chan struct{}), make(chan struct{})
	go s.receive(s.ps, s.conn)
	s.log.Info().Strs("channels", channels).Strs("patterns", patterns).Str("server", s.conn.Server).
		Msg("subscribed to Pub/Sub channels (at-most-once: messages published while disconnected are lost)")
	return nil
}

// receive hands the Pub/Sub messages to Read. go-redis subscribes again
// on a new connection when the old one failed; receive waits with backoff
// between failures and reports the outage.
func (s *source) receive(ps *goredis.PubSub, conn *redisclient.Conn) {
	defer close(s.received)
	attempt := 0
	for {
		msg, err := ps.Receive(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if !redisclient.Transient(err) {
				s.stop(fmt.Errorf("receiving from %q: %w", s.opts.Channel, err))
				return
			}
			attempt++
			conn.Down()
			if err := conn.Failed(s.ctx, "receiving from redis", attempt, err); err != nil {
				s.stop(err)
				return
			}
			continue
		}
		if attempt > 0 {
			attempt = 0
			conn.Up()
		}
		if m, ok := msg.(*goredis.Message); ok {
			select {
			case s.messages <- m:
			case <-s.done:
				return
			}
		}
	}
}

func (s *source) stop(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// Read returns what came, waiting for the first record.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	switch {
	case s.opts.Stream != "":
		return s.readStream(ctx)
	case s.opts.List != "":
		return s.readList(ctx)
	default:
		return s.readPubSub(ctx)
	}
}

func (s *source) takeRedo() []item {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.redo
	s.redo = nil
	return r
}

// claimEvery is how often the pending entries are scanned for ones to claim.
func (s *source) claimEvery() time.Duration { return max(s.opts.ClaimIdle.D()/4, 100*time.Millisecond) }

func (s *source) readStream(ctx context.Context) (connector.Batch, error) {
	for {
		if err := ctx.Err(); err != nil {
			return connector.Batch{}, err
		}
		if redo := s.takeRedo(); len(redo) > 0 {
			return s.streamBatch(ctx, redo)
		}
		var entries []goredis.XMessage
		switch {
		case s.history != "":
			// This consumer's own pending entries, left by an earlier run.
			err := s.conn.Do(ctx, "reading pending entries", func(ctx context.Context) error {
				res, err := s.conn.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: s.opts.Group, Consumer: s.opts.Consumer,
					Streams: []string{s.opts.Stream, s.history}, Count: int64(s.opts.Count)}).Result()
				if err == nil && len(res) > 0 {
					entries = res[0].Messages
				}
				return err
			})
			if err != nil {
				return connector.Batch{}, s.streamErr("reading pending entries", err)
			}
			if len(entries) == 0 {
				s.history = ""
				continue
			}
			s.history = entries[len(entries)-1].ID
			s.log.Info().Int("entries", len(entries)).Msg("delivering again entries this consumer left pending")
		case s.claimCursor != "0-0" || time.Since(s.lastClaim) >= s.claimEvery():
			var next string
			err := s.conn.Do(ctx, "claiming pending entries", func(ctx context.Context) (err error) {
				entries, next, err = s.conn.XAutoClaim(ctx, &goredis.XAutoClaimArgs{Stream: s.opts.Stream, Group: s.opts.Group, Consumer: s.opts.Consumer,
					MinIdle: s.opts.ClaimIdle.D(), Start: s.claimCursor, Count: int64(s.opts.Count)}).Result()
				return err
			})
			if err != nil {
				return connector.Batch{}, s.streamErr("claiming pending entries", err)
			}
			s.claimCursor = next
			if next == "0-0" {
				s.lastClaim = time.Now()
			}
			if len(entries) == 0 {
				continue
			}
			s.log.Info().Int("entries", len(entries)).Dur("claim_idle", s.opts.ClaimIdle.D()).Msg("claimed entries pending longer than --claim-idle")
		default:
			wait := min(block, s.claimEvery())
			err := s.conn.Do(ctx, "reading the stream", func(ctx context.Context) error {
				res, err := s.conn.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: s.opts.Group, Consumer: s.opts.Consumer,
					Streams: []string{s.opts.Stream, ">"}, Count: int64(s.opts.Count), Block: wait}).Result()
				if errors.Is(err, goredis.Nil) {
					return nil
				}
				if err == nil && len(res) > 0 {
					entries = res[0].Messages
				}
				return err
			})
			if err != nil {
				return connector.Batch{}, s.streamErr("reading", err)
			}
			if len(entries) == 0 {
				continue
			}
		}
		items := make([]item, 0, len(entries))
		var gone []string
		for _, e := range entries {
			if e.Values == nil {
				gone = append(gone, e.ID)
				continue
			}
			items = append(items, item{id: e.ID, values: e.Values})
		}
		if len(gone) > 0 {
			// Deleted (trimmed) while pending: nothing to deliver.
			s.log.Warn().Int("entries", len(gone)).Str("first", gone[0]).Msg("pending entries were deleted from the stream before they were delivered again: acknowledged")
			deleted := make([]item, len(gone))
			for i, id := range gone {
				deleted[i].id = id
			}
			s.ack(deleted)
		}
		if len(items) > 0 {
			return s.streamBatch(ctx, items)
		}
	}
}

func (s *source) streamErr(what string, err error) error {
	if goredis.HasErrorPrefix(err, "NOGROUP") {
		return fmt.Errorf("stream %q: %s: the consumer group %q or the stream is gone: %w", s.opts.Stream, what, s.opts.Group, err)
	}
	return fmt.Errorf("stream %q: %s: %w", s.opts.Stream, what, err)
}

// streamBatch makes the records of entries; the batch's Ack acknowledges
// them.
func (s *source) streamBatch(_ context.Context, items []item) (connector.Batch, error) {
	var b connector.Batch
	b.Records = make([]record.Record, 0, len(items))
	// The redis.id headers of the batch, allocated once.
	ids := make([]record.Header, len(items))
	for i, it := range items {
		ids[i] = record.Header{Key: "redis.id", Value: []byte(it.id)}
		r, why := s.entryRecord(it, ids[i:i+1:i+1])
		if why != "" {
			b.Rejected = append(b.Rejected, connector.RejectedRecord{Record: r, Reason: why})
			continue
		}
		b.Records = append(b.Records, r)
	}
	b.Ack = func(err error) { s.ackStream(items, err) }
	return b, nil
}

// entryRecord makes the record of a stream entry, or says why it cannot;
// id is its redis.id header.
func (s *source) entryRecord(it item, id []record.Header) (record.Record, string) {
	r := record.Record{Time: idTime(it.id), Headers: id}
	if s.opts.KeyField != "" {
		if k, ok := it.values[s.opts.KeyField]; ok {
			r.Key = []byte(str(k))
		}
	}
	if s.opts.ValueField == "" {
		fields := make(map[string]string, len(it.values))
		for k, v := range it.values {
			fields[k] = str(v)
		}
		r.Value, _ = json.Marshal(fields) // map[string]string always encodes
		return r, ""
	}
	v, ok := it.values[s.opts.ValueField]
	if n := len(it.values); n > 1 || !ok && n > 0 {
		// The other fields as headers, sorted by name, before redis.id.
		keys := make([]string, 0, len(it.values))
		for k := range it.values {
			if k != s.opts.ValueField {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		hs := make([]record.Header, 0, len(keys)+1)
		for _, k := range keys {
			hs = append(hs, record.Header{Key: k, Value: []byte(str(it.values[k]))})
		}
		r.Headers = append(hs, id...)
	}
	if !ok {
		return r, fmt.Sprintf("stream entry %s has no field %q (--value-field)", it.id, s.opts.ValueField)
	}
	r.Value = []byte(str(v))
	return r, ""
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// idTime is the time in a stream entry ID (milliseconds-sequence).
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Now()
	}
	return time.UnixMilli(n)
}

// ackStream hands the entries to the acker once durable on the bus;
// after a failure they are delivered again.
func (s *source) ackStream(items []item, failed error) {
	if failed != nil {
		s.again(items)
		return
	}
	s.ack(items)
}

// ack hands items to the acker. After Close, they stay pending (stream)
// or in the processing list: they are delivered again at the next start.
func (s *source) ack(items []item) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if s.acks != nil {
		select {
		case s.acks <- items:
		case <-s.stopping:
		}
	}
}

// ackDrain is how long Close waits for the acknowledgements under way
// before it gives up on them (Redis unreachable): they stay pending, or
// in the processing list, and are delivered again.
const ackDrain = 5 * time.Second

// acker acknowledges what acks brings, with what else waits in one round
// trip: XACK of the entries (stream), or LREM of the items from the
// processing list (list).
func (s *source) acker(acks <-chan []item) {
	defer close(s.acked)
	for items := range acks {
	more:
		for {
			select {
			case next, ok := <-acks:
				if !ok {
					break more
				}
				items = append(items, next...)
			default:
				break more
			}
		}
		if s.opts.Stream != "" {
			ids := make([]string, len(items))
			for i, it := range items {
				ids[i] = it.id
			}
			s.xack(ids)
		} else {
			s.lrem(items)
		}
	}
}

func (s *source) xack(ids []string) {
	err := s.conn.Do(s.ctx, "acknowledging entries", func(ctx context.Context) error {
		return s.conn.XAck(ctx, s.opts.Stream, s.opts.Group, ids...).Err()
	})
	if err != nil {
		s.log.Warn().Err(err).Int("entries", len(ids)).
			Msg("could not acknowledge entries: they stay pending and are delivered again (at the next start, or claimed after --claim-idle)")
	}
}

// again hands items back to Read, to be delivered first.
func (s *source) again(items []item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redo = append(s.redo, items...)
}

func (s *source) readList(ctx context.Context) (connector.Batch, error) {
	if redo := s.takeRedo(); len(redo) > 0 {
		return s.listBatch(redo), nil
	}
	if len(s.leftover) > 0 {
		n := min(len(s.leftover), s.opts.Count)
		items := s.leftover[:n:n]
		s.leftover = s.leftover[n:]
		return s.listBatch(items), nil
	}
	from, to := "RIGHT", "LEFT"
	if s.opts.Pop == "left" {
		from = "LEFT"
	}
	for {
		if err := ctx.Err(); err != nil {
			return connector.Batch{}, err
		}
		var items []item
		err := s.conn.Do(ctx, "reading the list", func(ctx context.Context) error {
			first, err := s.conn.BLMove(ctx, s.opts.List, s.opts.Processing, from, to, block).Result()
			if errors.Is(err, goredis.Nil) {
				return nil
			}
			if err != nil {
				return err
			}
			items = append(items, item{data: []byte(first)})
			if s.opts.Count == 1 {
				return nil
			}
			// What else waits, in one round trip.
			pipe := s.conn.Pipeline()
			cmds := make([]*goredis.StringCmd, s.opts.Count-1)
			for i := range cmds {
				cmds[i] = pipe.LMove(ctx, s.opts.List, s.opts.Processing, from, to)
			}
			done, err := pipe.Exec(ctx)
			if err := redisclient.PipelineErr(done, err); err != nil {
				// The pipeline failed as a whole, its commands saying
				// nothing (no connection: NOAUTH, WRONGPASS on a new
				// one): the read fails. What was moved (the first item)
				// is kept in items when Do retries, else in the
				// processing list, delivered at the next start.
				return err
			}
			for _, c := range cmds {
				v, err := c.Result()
				if err != nil {
					break
				}
				items = append(items, item{data: []byte(v)})
			}
			if err != nil && !errors.Is(err, goredis.Nil) {
				// The items moved are in the processing list: they are
				// delivered at the next start. Those read are delivered now.
				s.log.Warn().Err(err).Msg("reading the list")
			}
			return nil
		})
		if err != nil {
			return connector.Batch{}, fmt.Errorf("list %q: reading: %w", s.opts.List, err)
		}
		if len(items) > 0 {
			return s.listBatch(items), nil
		}
	}
}

func (s *source) listBatch(items []item) connector.Batch {
	recs := make([]record.Record, len(items))
	now := time.Now()
	for i, it := range items {
		recs[i] = record.Record{Value: it.data, Time: now}
	}
	return connector.Batch{Records: recs, Ack: func(err error) { s.ackList(items, err) }}
}

// ackList hands the items to the acker once durable on the bus, which
// removes them from the processing list; after a failure they are
// delivered again.
func (s *source) ackList(items []item, failed error) {
	if failed != nil {
		s.again(items)
		return
	}
	s.ack(items)
}

func (s *source) lrem(items []item) {
	err := s.conn.Do(s.ctx, "removing items from the processing list", func(ctx context.Context) error {
		pipe := s.conn.Pipeline()
		for _, it := range items {
			// From the tail, where the oldest items are.
			pipe.LRem(ctx, s.opts.Processing, -1, it.data)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		s.log.Warn().Err(err).Int("items", len(items)).Str("processing", s.opts.Processing).
			Msg("could not remove items from the processing list: they are delivered again at the next start")
	}
}

func (s *source) readPubSub(ctx context.Context) (connector.Batch, error) {
	var recs []record.Record
	select {
	case m := <-s.messages:
		recs = append(recs, pubsubRecord(m))
	case err := <-s.fatal:
		return connector.Batch{}, err
	case <-ctx.Done():
		// Stop receiving, and hand over what was received: it is
		// published before the connector exits.
		s.unsubscribe()
		return connector.Batch{Records: drain(s.messages, recs)}, ctx.Err()
	}
	return connector.Batch{Records: drain(s.messages, recs)}, nil
}

// drain appends what ch holds, up to readMax records in all.
func drain(ch chan *goredis.Message, recs []record.Record) []record.Record {
	for len(recs) < readMax {
		select {
		case m := <-ch:
			recs = append(recs, pubsubRecord(m))
		default:
			return recs
		}
	}
	return recs
}

// readMax is the most Pub/Sub messages one Read returns.
const readMax = 5000

func pubsubRecord(m *goredis.Message) record.Record {
	r := record.Record{Key: []byte(m.Channel), Value: []byte(m.Payload), Time: time.Now(),
		Headers: []record.Header{{Key: "redis.channel", Value: []byte(m.Channel)}}}
	if m.Pattern != "" {
		r.Headers = append(r.Headers, record.Header{Key: "redis.pattern", Value: []byte(m.Pattern)})
	}
	return r
}

func (s *source) unsubscribe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ps != nil {
		s.ps.Close()
		s.ps = nil
	}
}

// Close stops receiving and closes the connection, after the
// acknowledgements under way.
func (s *source) Close() error {
	if s.stopping != nil {
		s.stopOnce.Do(func() { close(s.stopping) })
	}
	s.ackMu.Lock()
	acks := s.acks
	s.acks = nil
	s.ackMu.Unlock()
	if acks != nil {
		close(acks)
		select {
		case <-s.acked:
		case <-time.After(ackDrain):
			s.log.Warn().Dur("waited", ackDrain).Msg("stopping without the acknowledgements under way (Redis does not answer): those entries are delivered again")
			s.cancel() // the acker's retries end
			<-s.acked
		}
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.done != nil {
		close(s.done)
		s.done = nil
		s.unsubscribe()
		<-s.received
	}
	s.unsubscribe()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	return nil
}
