package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/rabbitmq"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:        "rabbitmq-source",
	Binding:     format.BindingAMQP,
	Description: "Consumes a RabbitMQ queue and publishes each message as a record; a message is acknowledged to RabbitMQ only once it is durable on the bus, so none is lost across crashes, broker restarts or reconnects (at-least-once).",
	Examples: `
# Consume the durable queue "orders" (declared if missing) into the topic orders
rabbitmq-source --topic orders --url amqp://guest:guest@localhost:5672/ --queue orders

# Bind the queue to a topic exchange for two routing patterns
rabbitmq-source --topic orders --url amqp://app:secret@rabbit:5672/shop --queue culvert-orders \
    --exchange shop --binding-key 'orders.*' --binding-key 'refunds.#'

# A quorum queue over TLS with a private CA, keeping only paid orders
rabbitmq-source --topic paid --url 'amqps://app:secret@rabbit/shop?tls_ca=/etc/ssl/rabbit-ca.pem' \
    --queue orders --queue-type quorum --filter '.status == "paid"'

# Consume an existing queue without declaring anything
rabbitmq-source --topic orders --url "$RABBITMQ_URL" --queue orders --passive`,
}

// Options are rabbitmq-source's own options.
type Options struct {
	rabbitmq.ConnOptions
	Queue        string   `json:"queue" jsonschema:"required" jsonschema_description:"Queue to consume. Declared durable if missing, unless --passive."`
	QueueType    string   `json:"queue_type,omitempty" jsonschema:"enum=classic,enum=quorum" jsonschema_description:"x-queue-type of the declared queue (default: the server's default, classic)."`
	Exchange     string   `json:"exchange,omitempty" jsonschema_description:"Exchange to bind the queue to with each --binding-key; declared (of type --exchange-type, durable) unless --passive."`
	ExchangeType string   `json:"exchange_type" jsonschema:"enum=direct,enum=topic,enum=fanout,enum=headers,default=topic" jsonschema_description:"Type of the exchange declared for --exchange."`
	BindingKey   []string `json:"binding_key,omitempty" jsonschema_description:"Routing key or pattern binding --queue to --exchange. Repeatable; none binds with the empty key."`
	Passive      bool     `json:"passive,omitempty" jsonschema_description:"Declare nothing: the queue (and exchange) must exist; a missing one is an error."`
	Prefetch     int      `json:"prefetch" jsonschema:"minimum=1,maximum=65535,default=10000" jsonschema_description:"Most unacknowledged messages RabbitMQ sends at once (basic.qos). Messages are acknowledged once durable on the bus, so this bounds what is in flight: keep it at about twice --batch-size so that one batch is read while the one before is written."`
	ConsumerTag  string   `json:"consumer_tag,omitempty" jsonschema_description:"Consumer tag the management UI shows (default: the connector's name and a random suffix)."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	if len(o.BindingKey) > 0 && o.Exchange == "" {
		return schema.Invalid("binding_key", "needs --exchange")
	}
	if o.Passive && o.QueueType != "" {
		return schema.Invalid("queue_type", "has no effect with --passive")
	}
	return nil
}

type source struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger
	tag  string

	mu         sync.Mutex // guards conn and ch, used by Ack from another goroutine
	conn       *amqp.Connection
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	chClosed   chan *amqp.Error // why ch was closed
	down       bool             // the connection was lost and is not back yet
	closed     bool
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	tag := opts.ConsumerTag
	if tag == "" {
		var b [4]byte
		rand.Read(b[:])
		tag = env.Name + "-" + hex.EncodeToString(b[:])
	}
	return &source{opts: *opts, env: env, log: env.Log, tag: tag}, nil
}

// Open connects, declares and starts consuming. A broker that cannot be
// reached is waited for like a lost one.
func (s *source) Open(ctx context.Context, _ []byte) error {
	s.opts.Warn(s.log)
	return s.connect(ctx)
}

// connect dials and sets up until it works, reporting the outage.
func (s *source) connect(ctx context.Context) error {
	var ch *amqp.Channel
	var deliveries <-chan amqp.Delivery
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	conn, err := s.opts.Reconnect(ctx, rabbitmq.Options{Name: s.env.Name, Log: s.log, Reconnecting: s.env.Reconnecting, Reconnected: s.env.Reconnected}, down, func(conn *amqp.Connection) error {
		var err error
		ch, deliveries, err = s.setup(conn)
		return err
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed { // Close came while connecting
		s.mu.Unlock()
		conn.Close()
		return errors.New("rabbitmq-source is closed")
	}
	s.conn, s.ch, s.deliveries, s.down = conn, ch, deliveries, false
	s.chClosed = ch.NotifyClose(make(chan *amqp.Error, 1))
	s.mu.Unlock()
	s.log.Info().Str("server", rabbitmq.Redact(s.opts.URL)).Str("queue", s.opts.Queue).Str("consumer_tag", s.tag).Msg("consuming")
	return nil
}

// setup opens a channel, declares and binds what the options ask, and
// starts consuming with manual acknowledgements.
func (s *source) setup(conn *amqp.Connection) (*amqp.Channel, <-chan amqp.Delivery, error) {
	o := s.opts
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("opening a channel: %w", err)
	}
	if err := ch.Qos(o.Prefetch, 0, false); err != nil {
		return nil, nil, fmt.Errorf("setting prefetch: %w", err)
	}
	if o.Exchange != "" {
		if err := rabbitmq.DeclareExchange(ch, o.Exchange, o.ExchangeType, o.Passive); err != nil {
			return nil, nil, err
		}
	}
	if o.Passive {
		_, err = ch.QueueDeclarePassive(o.Queue, true, false, false, false, nil)
	} else {
		var args amqp.Table
		if o.QueueType != "" {
			args = amqp.Table{amqp.QueueTypeArg: o.QueueType}
		}
		_, err = ch.QueueDeclare(o.Queue, true, false, false, false, args)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("declaring queue %q: %w", o.Queue, err)
	}
	if o.Exchange != "" {
		keys := o.BindingKey
		if len(keys) == 0 {
			keys = []string{""}
		}
		for _, k := range keys {
			if err := ch.QueueBind(o.Queue, k, o.Exchange, false, nil); err != nil {
				return nil, nil, fmt.Errorf("binding queue %q to exchange %q with %q: %w", o.Queue, o.Exchange, k, err)
			}
		}
	}
	deliveries, err := ch.Consume(o.Queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("consuming queue %q: %w", o.Queue, err)
	}
	return ch, deliveries, nil
}

// Read returns the deliveries waiting, at least one. When the channel or
// connection is lost it reconnects first: messages it had delivered and
// that were not acknowledged are delivered again by RabbitMQ.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	for {
		s.mu.Lock()
		deliveries, ch, conn := s.deliveries, s.ch, s.conn
		s.mu.Unlock()
		if deliveries == nil {
			if err := s.connect(ctx); err != nil {
				return connector.Batch{}, fmt.Errorf("reconnecting to RabbitMQ: %w", err)
			}
			continue
		}
		var d amqp.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return connector.Batch{}, ctx.Err()
		case d, ok = <-deliveries:
		}
		if !ok {
			s.lost(ch, conn)
			continue
		}
		recs := make([]record.Record, 1, 64)
		recs[0] = rabbitmq.Record(&d)
		last := d.DeliveryTag
	drain:
		for len(recs) < s.opts.Prefetch {
			select {
			case d, ok = <-deliveries:
				if !ok {
					break drain // Read reconnects next time.
				}
				recs = append(recs, rabbitmq.Record(&d))
				last = d.DeliveryTag
			default:
				break drain
			}
		}
		return connector.Batch{Records: recs, Ack: s.acker(ch, last)}, nil
	}
}

// acker acknowledges every delivery of ch up to tag once the batch is
// durable (batches are acknowledged in order), or puts them back in the
// queue if it failed. On a channel that was lost since, nothing can be
// acknowledged: RabbitMQ delivers those messages again.
func (s *source) acker(ch *amqp.Channel, tag uint64) func(error) {
	return func(err error) {
		if err == nil {
			err = ch.Ack(tag, true)
		} else {
			err = ch.Nack(tag, true, true)
		}
		if err != nil && !errors.Is(err, amqp.ErrClosed) {
			s.log.Warn().Err(err).Msg("acknowledging to rabbitmq failed; the messages will be delivered again")
		}
	}
}

// lost notes that the channel's deliveries ended and drops the connection,
// so that the next Read reconnects.
func (s *source) lost(ch *amqp.Channel, conn *amqp.Connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != ch || s.closed {
		return
	}
	reason := "the consumer was cancelled"
	select {
	case e := <-s.chClosed:
		if e != nil {
			reason = e.Error()
		}
	default:
	}
	s.log.Warn().Str("reason", reason).Msg("lost the rabbitmq consumer, reconnecting; unacknowledged messages will be delivered again")
	s.env.Reconnecting()
	conn.CloseDeadline(time.Now().Add(2 * time.Second))
	s.conn, s.ch, s.deliveries, s.down = nil, nil, nil, true
}

// Close closes the connection: messages delivered and not acknowledged go
// back to the queue.
func (s *source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		s.conn.CloseDeadline(time.Now().Add(5 * time.Second))
		s.conn, s.ch, s.deliveries = nil, nil, nil
	}
	return nil
}
