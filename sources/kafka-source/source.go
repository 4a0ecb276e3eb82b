package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/cli"
	kafkaclient "github.com/culvert-dev/culvert/common/client/kafka"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:        "kafka-source",
	Binding:     format.BindingKafka,
	Description: "Publishes the records of Kafka topics (key, value, headers, time, with kafka.topic, kafka.partition and kafka.offset headers) to a topic, as a member of a Kafka consumer group; Kafka offsets are committed only once the records are durable on the bus.",
	Examples: `
# Copy the Kafka topic orders to the topic orders, from its first record
kafka-source --topic orders --brokers 127.0.0.1:9092 --kafka-topic orders --kafka-group culvert-orders

# Every Kafka topic whose name starts with clicks., only new records
kafka-source --topic clicks --brokers 127.0.0.1:9092 --kafka-topic-regex '^clicks\..*' --start-offset latest

# SASL SCRAM over TLS; run it twice with the same group to share the partitions
kafka-source --topic orders --brokers kafka1:9093,kafka2:9093 --kafka-topic orders \
    --sasl-mechanism scram-sha-512 --username culvert --password "$KAFKA_PASSWORD" --tls-ca ca.pem`,
}

// Header names of the Kafka coordinates of a record.
const (
	HeaderTopic     = "kafka.topic"
	HeaderPartition = "kafka.partition"
	HeaderOffset    = "kafka.offset"
)

// Options are kafka-source's own options.
type Options struct {
	kafkaclient.Options
	KafkaTopic      []string        `json:"kafka_topic,omitempty" jsonschema_description:"Kafka topic to read (repeatable). Give this or --kafka-topic-regex."`
	KafkaTopicRegex string          `json:"kafka_topic_regex,omitempty" jsonschema_description:"Read every Kafka topic whose name matches this regular expression (new ones included)."`
	KafkaGroup      string          `json:"kafka_group" jsonschema:"default=culvert-kafka-source,minLength=1" jsonschema_description:"Kafka consumer group: instances with the same group share the partitions, and a restarted one resumes after the group's committed offsets."`
	StartOffset     string          `json:"start_offset" jsonschema:"enum=earliest,enum=latest,default=earliest" jsonschema_description:"Where a group without committed offsets starts: the first record (earliest) or only new records (latest)."`
	MaxPollRecords  int             `json:"max_poll_records" jsonschema:"minimum=1,default=10000" jsonschema_description:"Most records returned by one read from Kafka."`
	SessionTimeout  schema.Duration `json:"session_timeout" jsonschema:"default=10s" jsonschema_description:"How long the group waits for a member that stopped answering (killed, cut off) before its partitions go to the others; the brokers bound it (6s to 30min by default)."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.Options.Validate(); err != nil {
		return err
	}
	switch {
	case len(o.KafkaTopic) == 0 && o.KafkaTopicRegex == "":
		return schema.Invalid("kafka_topic", "give --kafka-topic or --kafka-topic-regex")
	case len(o.KafkaTopic) > 0 && o.KafkaTopicRegex != "":
		return schema.Invalid("kafka_topic_regex", "give either --kafka-topic or --kafka-topic-regex, not both")
	}
	for _, t := range o.KafkaTopic {
		if t == "" {
			return schema.Invalid("kafka_topic", "must not be empty")
		}
	}
	if time.Duration(o.SessionTimeout) < 100*time.Millisecond {
		return schema.Invalid("session_timeout", "must be at least 100ms")
	}
	if o.KafkaTopicRegex != "" {
		if _, err := regexp.Compile(o.KafkaTopicRegex); err != nil {
			return schema.Invalid("kafka_topic_regex", "%v", err)
		}
	}
	return nil
}

type source struct {
	opts Options
	env  connector.Env
	cfg  kafkaclient.Config
	cl   *kgo.Client

	mu    sync.Mutex
	owned map[string]map[int32]bool            // partitions assigned to this member
	acked map[string]map[int32]kgo.EpochOffset // next offset after the last record durable on the bus
	kick  chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup

	closeOnce sync.Once

	// lost is cancelled, with the error to exit with, when --max-retries
	// connection attempts in a row failed.
	lost   context.Context
	giveUp context.CancelCauseFunc
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	lost, giveUp := context.WithCancelCause(context.Background())
	return &source{
		opts: *opts, env: env, cfg: opts.Config(""),
		owned: map[string]map[int32]bool{}, acked: map[string]map[int32]kgo.EpochOffset{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}),
		lost: lost, giveUp: giveUp,
	}, nil
}

// Open joins the consumer group. resume is unused: Kafka keeps the
// group's offsets.
func (s *source) Open(ctx context.Context, _ []byte) error {
	start := kgo.NewOffset().AtStart()
	if s.opts.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(s.opts.KafkaGroup),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(start),
		kgo.SessionTimeout(time.Duration(s.opts.SessionTimeout)),
		kgo.HeartbeatInterval(min(3*time.Second, time.Duration(s.opts.SessionTimeout)/3)),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.assign(m) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { s.revoke(ctx, m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.lose(m) }),
	}
	if s.opts.KafkaTopicRegex != "" {
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(s.opts.KafkaTopicRegex))
	} else {
		opts = append(opts, kgo.ConsumeTopics(s.opts.KafkaTopic...))
	}
	cl, err := s.opts.Connect(ctx, s.cfg, "culvert-kafka-source", kafkaclient.Hooks{
		Log:  s.env.Log,
		Down: func(error) { s.env.Reconnecting() },
		Up: func(error) {
			s.env.Log.Info().Msg("kafka broker reachable again")
			s.env.Reconnected()
		},
		GaveUp: s.giveUp,
	}, opts...)
	if err != nil {
		return err
	}
	s.cl = cl
	s.wg.Add(1)
	go s.committer()
	return nil
}

func (s *source) assign(m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range m {
		if s.owned[t] == nil {
			s.owned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			s.owned[t][p] = true
		}
	}
}

// revoke commits what is durable of the partitions being handed to another
// member, then forgets them.
func (s *source) revoke(ctx context.Context, m map[string][]int32) {
	s.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range m {
		for _, p := range ps {
			if o, ok := s.acked[t][p]; ok {
				if offsets[t] == nil {
					offsets[t] = map[int32]kgo.EpochOffset{}
				}
				offsets[t][p] = o
			}
		}
	}
	s.mu.Unlock()
	if len(offsets) > 0 {
		if err := s.commit(ctx, offsets); err != nil {
			s.env.Log.Warn().Str("error", s.cfg.Scrub(err.Error())).Msg("committing kafka offsets of revoked partitions failed; their records will be read again")
		}
	}
	s.lose(m)
}

func (s *source) lose(m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(s.owned[t], p)
			delete(s.acked[t], p)
		}
	}
}

func (s *source) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	return kafkaclient.CommitSync(ctx, s.cl, offsets)
}

// pending returns the acknowledged offsets of the partitions this member
// still owns.
func (s *source) pending() map[string]map[int32]kgo.EpochOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range s.acked {
		for p, o := range ps {
			if s.owned[t][p] {
				if out[t] == nil {
					out[t] = map[int32]kgo.EpochOffset{}
				}
				out[t][p] = o
			}
		}
	}
	return out
}

// committer commits the acknowledged offsets whenever an Ack asks, so that
// Ack never waits for Kafka; commits of a partition only move forward.
func (s *source) committer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.commit(ctx, s.pending()); err != nil {
			s.env.Log.Warn().Str("error", s.cfg.Scrub(err.Error())).Msg("committing kafka offsets failed; retrying with the next batch")
		}
		cancel()
	}
}

// fatal reports whether a fetch error will not go away by retrying.
func fatal(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.SaslAuthenticationFailed, kerr.ClusterAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Read returns the next records of the assigned partitions, each with its
// Kafka key, value, headers and time, and kafka.topic, kafka.partition and
// kafka.offset headers. The batch's Ack marks them for commit.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	for {
		pctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(s.lost, cancel)
		fs := s.cl.PollRecords(pctx, s.opts.MaxPollRecords)
		stop()
		cancel()
		if err := ctx.Err(); err != nil {
			return connector.Batch{}, err
		}
		if err := context.Cause(s.lost); err != nil {
			return connector.Batch{}, err
		}
		if fs.IsClientClosed() {
			return connector.Batch{}, errors.New("kafka client closed")
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if fatal(err) {
				ferr = fmt.Errorf("reading kafka topic %q partition %d: %s", t, p, s.cfg.Scrub(err.Error()))
				return
			}
			s.env.Log.Warn().Str("kafka_topic", t).Int32("partition", p).Str("error", s.cfg.Scrub(err.Error())).Msg("kafka fetch failed, retrying")
		})
		if ferr != nil {
			return connector.Batch{}, ferr
		}
		n := fs.NumRecords()
		if n == 0 {
			continue
		}
		recs := make([]record.Record, 0, n)
		last := map[string]map[int32]kgo.EpochOffset{}
		// One allocation for the batch's headers and one arena for the
		// offsets' digits; topic and partition values are shared.
		extra := 0
		fs.EachRecord(func(kr *kgo.Record) { extra += len(kr.Headers) })
		hdrs := make([]record.Header, 0, extra+3*n)
		digits := make([]byte, 0, 8*n)
		topics := map[string][]byte{}
		parts := map[int32][]byte{}
		fs.EachRecord(func(kr *kgo.Record) {
			r := record.Record{Key: kr.Key, Value: kr.Value, Time: kr.Timestamp, Offset: kr.Offset}
			from := len(hdrs)
			for _, h := range kr.Headers {
				hdrs = append(hdrs, record.Header{Key: h.Key, Value: h.Value})
			}
			t, ok := topics[kr.Topic]
			if !ok {
				t = []byte(kr.Topic)
				topics[kr.Topic] = t
			}
			p, ok := parts[kr.Partition]
			if !ok {
				p = strconv.AppendInt(nil, int64(kr.Partition), 10)
				parts[kr.Partition] = p
			}
			d := len(digits)
			digits = strconv.AppendInt(digits, kr.Offset, 10)
			hdrs = append(hdrs,
				record.Header{Key: HeaderTopic, Value: t},
				record.Header{Key: HeaderPartition, Value: p},
				record.Header{Key: HeaderOffset, Value: digits[d:len(digits):len(digits)]})
			r.Headers = hdrs[from:len(hdrs):len(hdrs)]
			recs = append(recs, r)
			if last[kr.Topic] == nil {
				last[kr.Topic] = map[int32]kgo.EpochOffset{}
			}
			last[kr.Topic][kr.Partition] = kgo.EpochOffset{Epoch: kr.LeaderEpoch, Offset: kr.Offset + 1}
		})
		return connector.Batch{Records: recs, Ack: func(err error) { s.ack(last, err) }}, nil
	}
}

// ack records the batch's offsets as durable and asks the committer to
// commit them. A failed batch commits nothing: the runner stops, and the
// group's next member reads the records again.
func (s *source) ack(last map[string]map[int32]kgo.EpochOffset, err error) {
	if err != nil {
		return
	}
	s.mu.Lock()
	for t, ps := range last {
		if s.acked[t] == nil {
			s.acked[t] = map[int32]kgo.EpochOffset{}
		}
		for p, o := range ps {
			if s.owned[t][p] && (o.Offset > s.acked[t][p].Offset) {
				s.acked[t][p] = o
			}
		}
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// closeTimeout bounds Close: a group in the middle of a rebalance (waiting
// for a dead member) must not hold a stopping source.
const closeTimeout = 10 * time.Second

// Close commits the acknowledged offsets and leaves the group, for at most
// closeTimeout. It is idempotent.
func (s *source) Close() error {
	s.closeOnce.Do(func() {
		if s.cl == nil {
			return
		}
		close(s.stop)
		s.wg.Wait()
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			if err := s.commit(ctx, s.pending()); err != nil {
				s.env.Log.Warn().Str("error", s.cfg.Scrub(err.Error())).Msg("committing kafka offsets at close failed; their records will be read again")
			}
			s.cl.Close()
		}()
		select {
		case <-done:
		case <-time.After(closeTimeout + time.Second):
			s.env.Log.Warn().Msg("leaving the kafka group took too long; the group will drop this member after its session timeout")
		}
	})
	return nil
}
