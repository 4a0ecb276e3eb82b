package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kadm"
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
	Name:        "kafka-sink",
	Binding:     format.BindingKafka,
	Description: "Produces each record of a topic to a Kafka topic (idempotent producer, acks=all); the consumer offset is committed only after Kafka acknowledged the records.",
	Examples: `
# Copy the orders topic to the Kafka topic orders, keyed as on the bus
kafka-sink --topic orders --brokers 127.0.0.1:9092 --kafka-topic orders --from beginning

# SASL SCRAM over TLS with a private CA, zstd compression
kafka-sink --topic orders --brokers kafka1:9093,kafka2:9093 --kafka-topic orders \
    --sasl-mechanism scram-sha-512 --username culvert --password "$KAFKA_PASSWORD" \
    --tls-ca ca.pem --compression zstd

# Larger batches for throughput: wait up to 20ms, up to 1 MiB per batch
kafka-sink --topic clicks --brokers 127.0.0.1:9092 --kafka-topic clicks --linger 20ms --batch-max-bytes 1048576`,
}

// Options are kafka-sink's own options.
type Options struct {
	kafkaclient.Options
	KafkaTopic      string          `json:"kafka_topic" jsonschema:"required,minLength=1" jsonschema_description:"Kafka topic to produce to; created with the broker's default partitions and replication when missing."`
	Compression     string          `json:"compression" jsonschema:"enum=none,enum=gzip,enum=snappy,enum=lz4,enum=zstd,default=none" jsonschema_description:"Compression of the produced record batches."`
	Linger          schema.Duration `json:"linger" jsonschema:"default=0s" jsonschema_description:"How long the producer waits for more records before sending a batch that is not full; 0 sends at once, batching what arrives while a request is in flight (a write waits for Kafka's acknowledgement anyway)."`
	BatchMaxBytes   int             `json:"batch_max_bytes" jsonschema:"minimum=1024,maximum=1073741824,default=1048576" jsonschema_description:"Largest record batch sent to a partition; a record larger than this is refused and goes to the dead-letter topic."`
	DeliveryTimeout schema.Duration `json:"delivery_timeout" jsonschema:"default=30s" jsonschema_description:"How long a write may wait for Kafka (an unreachable broker, no leader) before it is retried with backoff."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.Options.Validate(); err != nil {
		return err
	}
	if o.Linger < 0 {
		return schema.Invalid("linger", "must not be negative")
	}
	if time.Duration(o.DeliveryTimeout) < time.Second {
		return schema.Invalid("delivery_timeout", "must be at least 1s")
	}
	return nil
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

type sink struct {
	opts Options
	env  connector.Env
	cfg  kafkaclient.Config
	cl   *kgo.Client

	mu           sync.Mutex
	reconnecting bool

	// lost is cancelled, with the error to exit with, when --max-retries
	// connection attempts in a row failed.
	lost   context.Context
	giveUp context.CancelCauseFunc
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	lost, giveUp := context.WithCancelCause(context.Background())
	return &sink{opts: *opts, env: env, cfg: opts.Config("culvert-" + env.Name), lost: lost, giveUp: giveUp}, nil
}

// Open connects, checks that a broker answers, and creates the Kafka topic
// when it is missing.
func (s *sink) Open(ctx context.Context) error {
	cl, err := s.opts.Connect(ctx, s.cfg, "culvert-kafka-sink", kafkaclient.Hooks{
		Log:    s.env.Log,
		Down:   func(error) { s.setReconnecting(true) },
		GaveUp: s.giveUp,
	},
		kgo.DefaultProduceTopic(s.opts.KafkaTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent by default
		kgo.ProducerBatchCompression(codec(s.opts.Compression)),
		kgo.ProducerLinger(time.Duration(s.opts.Linger)),
		kgo.ProducerBatchMaxBytes(int32(s.opts.BatchMaxBytes)),
		kgo.MaxBufferedRecords(1<<17),
	)
	if err != nil {
		return err
	}
	s.cl = cl
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx, s.opts.KafkaTopic)
	if err != nil {
		return fmt.Errorf("looking up kafka topic %q: %s", s.opts.KafkaTopic, s.cfg.Scrub(err.Error()))
	}
	if !topics.Has(s.opts.KafkaTopic) {
		if _, err := adm.CreateTopic(ctx, -1, -1, nil, s.opts.KafkaTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating kafka topic %q: %s", s.opts.KafkaTopic, s.cfg.Scrub(err.Error()))
		}
		s.env.Log.Info().Str("kafka_topic", s.opts.KafkaTopic).Msg("created kafka topic")
	}
	return nil
}

func (s *sink) setReconnecting(on bool) {
	s.mu.Lock()
	was := s.reconnecting
	s.reconnecting = on
	s.mu.Unlock()
	switch {
	case on && !was:
		s.env.Reconnecting()
	case !on && was:
		s.env.Reconnected()
		s.env.Log.Info().Msg("kafka broker reachable again")
	}
}

// permanent reports whether Kafka refused a record for good: retrying it
// cannot help, so it goes to the dead-letter topic.
func permanent(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage, kerr.InvalidTimestamp, kerr.UnsupportedCompressionType} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// refused reports whether Kafka refused the connector itself: retrying
// cannot help, and no record is at fault.
func refused(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.SaslAuthenticationFailed, kerr.UnknownTopicOrPartition} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Write produces recs (key, value, headers, time) and returns once Kafka
// acknowledged every one. Records Kafka refuses for good are returned as
// *connector.Rejected; any other failure (a broker unreachable for longer
// than --delivery-timeout, no leader) is Transient, and the whole batch is
// written again (at-least-once).
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	// Records not sent within the delivery timeout fail with the context's
	// error (kgo's own delivery timeout counts from the record's time, which
	// may be old). Records already sent are retried until Kafka answers,
	// since an idempotent producer cannot give them up safely.
	if err := context.Cause(s.lost); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(s.opts.DeliveryTimeout))
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	// One allocation for the batch's Kafka records and one promise for all
	// of them, which finds a record's place from its address; and one
	// clock reading for the records without a time (kgo would read the
	// clock for each, a tenth of this sink's CPU on a machine with a slow
	// clock).
	krs := make([]kgo.Record, len(recs))
	promise := func(kr *kgo.Record, err error) {
		if err != nil {
			i := (uintptr(unsafe.Pointer(kr)) - uintptr(unsafe.Pointer(&krs[0]))) / unsafe.Sizeof(krs[0])
			errs[i] = err
		}
		wg.Done()
	}
	now := time.Now()
	for i := range recs {
		r := &recs[i]
		kr := &krs[i]
		*kr = kgo.Record{Key: r.Key, Value: r.Value, Timestamp: r.Time, Context: wctx}
		if kr.Timestamp.IsZero() {
			kr.Timestamp = now
		}
		if len(r.Headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		wg.Add(1)
		s.cl.Produce(wctx, kr, promise)
	}
	wg.Wait()
	var rejected []connector.RejectedRecord
	var retry error
	for i, err := range errs {
		switch {
		case err == nil:
		case refused(err):
			return fmt.Errorf("producing to kafka topic %q: %s", s.opts.KafkaTopic, s.cfg.Scrub(err.Error()))
		case permanent(err):
			rejected = append(rejected, connector.RejectedRecord{Record: recs[i], Reason: s.cfg.Scrub(err.Error())})
		case retry == nil:
			retry = err
		}
	}
	if retry != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.setReconnecting(true)
		return connector.Transient(fmt.Errorf("producing to kafka topic %q: %s", s.opts.KafkaTopic, s.cfg.Scrub(retry.Error())))
	}
	s.setReconnecting(false)
	if len(rejected) > 0 {
		return &connector.Rejected{Records: rejected}
	}
	return nil
}

// Close flushes nothing (Write waited for every record) and closes the client.
func (s *sink) Close() error {
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	return nil
}
