package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	natsclient "github.com/culvert-dev/culvert/common/client/nats"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:    "nats-source",
	Binding: format.BindingNATS,
	Description: "Publishes the messages of NATS subjects (core NATS, at-most-once) or of a JetStream stream " +
		"(durable pull consumer, acknowledged only once the records are durable on the bus) as records; the subject becomes the record key.",
	Examples: `
# Every message of a JetStream stream, acknowledged once durable on the bus
nats-source --topic orders --url nats://127.0.0.1:4222 --stream ORDERS --durable orders-to-culvert

# Only new messages of the stream's subjects orders.eu.>, with TLS and a token
nats-source --topic eu-orders --url 'tls://nats.example.com:4222?token=${{ secrets.NATS_TOKEN }}' \
    --stream ORDERS --subject 'orders.eu.>' --deliver new

# Core NATS subjects (at-most-once), shared by the members of a queue group
nats-source --topic metrics --subject 'metrics.*.cpu' --subject 'metrics.*.mem' --queue-group culvert`,
}

// Options are nats-source's own options.
type Options struct {
	natsclient.ConnOptions
	Subject       []string        `json:"subject,omitempty" jsonschema_description:"Subject to read, wildcards * and > allowed. Repeatable. Core NATS without --stream (at-most-once: what is published while the connector is down or disconnected is not seen); with --stream, filters the stream's subjects."`
	QueueGroup    string          `json:"queue_group,omitempty" jsonschema_description:"Core NATS: join this queue group, so that the processes in it share the messages."`
	Buffer        int             `json:"buffer" jsonschema:"minimum=1,default=65536" jsonschema_description:"Core NATS: messages held between the server and the bus. When it is full, NATS drops messages (a slow consumer): each drop is counted (errors metric, stage slow_consumer) and logged as an error."`
	Stream        string          `json:"stream,omitempty" jsonschema_description:"JetStream stream to read with a durable pull consumer; messages are acknowledged only once durable on the bus (at-least-once)."`
	Durable       string          `json:"durable,omitempty" jsonschema_description:"JetStream: the durable consumer's name (created if missing), which keeps the position across restarts; processes with the same one share the messages (default: culvert_ and the topic)."`
	Deliver       string          `json:"deliver" jsonschema:"enum=all,enum=new,default=all" jsonschema_description:"JetStream: where a new durable consumer starts: every message of the stream, or only those published from now on."`
	AckWait       schema.Duration `json:"ack_wait" jsonschema:"default=30s" jsonschema_description:"JetStream: a message not acknowledged within this time (not yet durable on the bus) is delivered again."`
	MaxAckPending int             `json:"max_ack_pending" jsonschema:"minimum=1,default=20000" jsonschema_description:"JetStream: most messages delivered but not yet acknowledged; the server waits for acknowledgements beyond it."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	if len(o.Subject) == 0 && o.Stream == "" {
		return schema.Invalid("subject", "give --subject (core NATS) or --stream (JetStream)")
	}
	for _, s := range o.Subject {
		if err := checkSubject(s); err != nil {
			return schema.Invalid("subject", "%q: %v", s, err)
		}
	}
	if o.Stream == "" {
		for name, set := range map[string]bool{"durable": o.Durable != "", "deliver": o.Deliver != "" && o.Deliver != "all"} {
			if set {
				return schema.Invalid(name, "needs --stream (JetStream)")
			}
		}
	} else {
		if o.QueueGroup != "" {
			return schema.Invalid("queue_group", "only for core NATS subjects: with --stream, processes with the same --durable share the messages")
		}
		if strings.ContainsAny(o.Stream, " \t.*>") {
			return schema.Invalid("stream", "%q: a stream name has no spaces, dots, * or >", o.Stream)
		}
		if strings.ContainsAny(o.Durable, " \t.*>") {
			return schema.Invalid("durable", "%q: a consumer name has no spaces, dots, * or >", o.Durable)
		}
	}
	if o.AckWait <= 0 {
		return schema.Invalid("ack_wait", "must be more than 0")
	}
	return nil
}

// checkSubject checks a subject to subscribe to.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("has white space")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return errors.New("has an empty token")
		case t == ">" && i != len(toks)-1:
			return errors.New("> must be the last token")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return errors.New("a wildcard must be a whole token")
		}
	}
	return nil
}

// readMax is the most messages one Read returns.
const readMax = 5000

type source struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger

	nc *natsgo.Conn

	// Core NATS.
	mu      sync.Mutex // guards subs
	subs    []*natsgo.Subscription
	core    chan *natsgo.Msg
	dropped int // slow-consumer drops counted so far

	// JetStream.
	consume jetstream.ConsumeContext
	done    chan struct{} // closed by Close: the consume handler stops waiting
	fatal   chan error    // why consuming stopped for good
	js      chan jetstream.Msg
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	o := *opts
	if o.Stream != "" && o.Durable == "" {
		o.Durable = durableName(env.Topic)
	}
	return &source{opts: o, env: env, log: env.Log}, nil
}

// durableName makes a consumer name from a topic.
func durableName(topic string) string {
	return "culvert_" + strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, topic)
}

// Open connects and subscribes (core NATS) or binds the durable consumer (JetStream).
func (s *source) Open(ctx context.Context, _ []byte) error {
	s.opts.Warn(s.log)
	s.fatal = make(chan error, 1)
	fatal := s.fatal
	nc, err := s.opts.Connect(ctx, natsclient.Options{Name: s.env.Name, Log: s.log, GaveUp: func(err error) {
		select {
		case fatal <- err:
		default:
		}
	}})
	if err != nil {
		return err
	}
	s.nc = nc
	natsclient.OnConnectionChange(nc, s.env.Reconnecting, s.env.Reconnected)
	if s.opts.Stream == "" {
		err = s.openCore()
	} else {
		err = s.openJetStream(ctx)
	}
	if err != nil {
		s.Close()
	}
	return err
}

func (s *source) openCore() error {
	s.core = make(chan *natsgo.Msg, s.opts.Buffer)
	for _, subj := range s.opts.Subject {
		sub, err := s.nc.ChanQueueSubscribe(subj, s.opts.QueueGroup, s.core)
		if err != nil {
			return fmt.Errorf("subscribing to %q: %w", subj, err)
		}
		s.subs = append(s.subs, sub)
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	s.log.Info().Strs("subjects", s.opts.Subject).Str("queue_group", s.opts.QueueGroup).Str("server", s.nc.ConnectedAddr()).
		Msg("subscribed to core NATS subjects (at-most-once: messages published while disconnected are not seen)")
	return nil
}

func (s *source) openJetStream(ctx context.Context) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, s.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %q: no such JetStream stream on %s", s.opts.Stream, s.nc.ConnectedAddr())
	}
	if err != nil {
		return fmt.Errorf("stream %q: %w", s.opts.Stream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       s.opts.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.AckWait.D(),
		MaxAckPending: s.opts.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if s.opts.Deliver == "new" {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	switch len(s.opts.Subject) {
	case 0:
	case 1:
		cfg.FilterSubject = s.opts.Subject[0]
	default:
		cfg.FilterSubjects = s.opts.Subject
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("stream %q: creating or updating durable consumer %q: %w", s.opts.Stream, s.opts.Durable, err)
	}
	pull := min(s.opts.MaxAckPending, 5000)
	s.js = make(chan jetstream.Msg, pull)
	s.done = make(chan struct{})
	done := s.done
	s.consume, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case s.js <- m:
		case <-done:
		}
	}, jetstream.PullMaxMessages(pull), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrBadRequest) {
			s.stopped(err)
			return
		}
		s.log.Warn().Err(err).Str("stream", s.opts.Stream).Msg("jetstream consumer")
	}))
	if err != nil {
		return fmt.Errorf("stream %q: consuming: %w", s.opts.Stream, err)
	}
	closed := s.consume.Closed()
	go func() {
		select {
		case <-closed:
			s.stopped(errors.New("consuming stopped"))
		case <-done:
		}
	}()
	s.log.Info().Str("stream", s.opts.Stream).Str("durable", s.opts.Durable).Str("server", s.nc.ConnectedAddr()).
		Msg("consuming the JetStream stream")
	return nil
}

// stopped reports that consuming stopped for good (the consumer or the
// stream was deleted): Read returns the error.
func (s *source) stopped(err error) {
	select {
	case s.fatal <- fmt.Errorf("stream %q, durable consumer %q: %w", s.opts.Stream, s.opts.Durable, err):
	default:
	}
}

// Read returns the messages that arrived, waiting for the first one.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	if s.core != nil {
		return s.readCore(ctx)
	}
	return s.readJetStream(ctx)
}

func (s *source) readCore(ctx context.Context) (connector.Batch, error) {
	s.checkDropped()
	var recs []record.Record
	select {
	case m := <-s.core:
		recs = append(recs, coreRecord(m))
	case err := <-s.fatal:
		return connector.Batch{}, err
	case <-ctx.Done():
		// Stop receiving, and hand over what was received: it is published
		// before the connector exits.
		s.unsubscribe()
		recs = drain(s.core, recs)
		return connector.Batch{Records: recs}, ctx.Err()
	}
	return connector.Batch{Records: drain(s.core, recs)}, nil
}

// drain appends what ch holds, up to readMax records in all.
func drain(ch chan *natsgo.Msg, recs []record.Record) []record.Record {
	for len(recs) < readMax {
		select {
		case m := <-ch:
			recs = append(recs, coreRecord(m))
		default:
			return recs
		}
	}
	return recs
}

// unsubscribe ends the core subscriptions; Read (on a stop) and Close may both call it.
func (s *source) unsubscribe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		sub.Unsubscribe()
	}
	s.subs = nil
}

// checkDropped logs and counts messages that NATS dropped because the buffer was full.
func (s *source) checkDropped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, sub := range s.subs {
		if n, err := sub.Dropped(); err == nil {
			total += n
		}
	}
	if total > s.dropped {
		n := total - s.dropped
		s.dropped = total
		if s.env.Control != nil {
			s.env.Control.Metrics.AddErrors("slow_consumer", n)
		}
		s.log.Error().Int("dropped", n).Int("dropped_total", total).Int("buffer", s.opts.Buffer).
			Msg("slow consumer: NATS dropped messages because the buffer was full (raise --buffer, or use JetStream for at-least-once)")
	}
}

func coreRecord(m *natsgo.Msg) record.Record {
	return record.Record{Key: []byte(m.Subject), Value: m.Data, Headers: headers(m.Header), Time: time.Now()}
}

// headers turns NATS headers into record headers, sorted by name, every
// value of a repeated header kept.
func headers(h natsgo.Header) []record.Header {
	if len(h) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []record.Header
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, record.Header{Key: k, Value: []byte(v)})
		}
	}
	return out
}

func (s *source) readJetStream(ctx context.Context) (connector.Batch, error) {
	var msgs []jetstream.Msg
	select {
	case m := <-s.js:
		msgs = append(msgs, m)
	case err := <-s.fatal:
		return connector.Batch{}, err
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	}
more:
	for len(msgs) < readMax {
		select {
		case m := <-s.js:
			msgs = append(msgs, m)
		default:
			break more
		}
	}
	recs := make([]record.Record, len(msgs))
	for i, m := range msgs {
		r := record.Record{Key: []byte(m.Subject()), Value: m.Data(), Headers: headers(m.Headers()), Time: time.Now()}
		if md, err := m.Metadata(); err == nil {
			r.Offset = int64(md.Sequence.Stream)
			r.Time = md.Timestamp
		}
		recs[i] = r
	}
	return connector.Batch{Records: recs, Ack: func(err error) { s.ack(msgs, err) }}, nil
}

// ack acknowledges msgs once they are durable on the bus, or asks for them
// again at once when they could not be published.
func (s *source) ack(msgs []jetstream.Msg, failed error) {
	var first error
	n := 0
	for _, m := range msgs {
		var err error
		if failed == nil {
			err = m.Ack()
		} else {
			err = m.Nak()
		}
		if err != nil {
			n++
			if first == nil {
				first = err
			}
		}
	}
	if n > 0 {
		s.log.Warn().Err(first).Int("messages", n).Msg("could not acknowledge messages: they will be delivered again after --ack-wait")
	}
}

// Close stops consuming and closes the connection, after sending the
// acknowledgements still buffered.
func (s *source) Close() error {
	if s.consume != nil {
		close(s.done)
		s.consume.Stop()
		s.consume = nil
		// What was received and not read is asked for again at once,
		// rather than after --ack-wait.
		for more := true; more; {
			select {
			case m := <-s.js:
				m.Nak()
			default:
				more = false
			}
		}
	}
	s.unsubscribe()
	if s.nc != nil {
		if s.nc.IsConnected() {
			s.nc.FlushTimeout(5 * time.Second)
		}
		s.nc.Close()
		s.nc = nil
	}
	return nil
}
