package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
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
	Name:        "rabbitmq-sink",
	Binding:     format.BindingAMQP,
	Description: "Publishes each record of a topic to a RabbitMQ exchange as a persistent message with publisher confirms; the topic's offset is committed only once RabbitMQ confirmed every message, and unroutable messages (with --mandatory) go to the dead-letter topic.",
	Examples: `
# Send each record straight to the queue "orders" through the default exchange;
# if no such queue exists, the record goes to the dead-letter topic
rabbitmq-sink --topic orders --url amqp://guest:guest@localhost:5672/ \
    --exchange '' --routing-key orders --mandatory

# Publish to a topic exchange (declared if missing), routed by each record's key
rabbitmq-sink --topic orders --url amqp://app:secret@rabbit:5672/shop \
    --exchange shop --exchange-type topic --routing-key-from-key

# Publish to an existing exchange over TLS with a client certificate
rabbitmq-sink --topic orders --passive --exchange shop --routing-key orders.new \
    --url 'amqps://rabbit/shop?tls_ca=ca.pem&tls_cert=client.pem&tls_key=client.key'`,
}

// Options are rabbitmq-sink's own options.
type Options struct {
	rabbitmq.ConnOptions
	Exchange          string `json:"exchange" jsonschema:"default=" jsonschema_description:"Exchange to publish to; '' (the default) is the default exchange, which routes each message to the queue named by its routing key."`
	ExchangeType      string `json:"exchange_type" jsonschema:"enum=direct,enum=topic,enum=fanout,enum=headers,default=direct" jsonschema_description:"Type of the exchange declared (durable) when it is missing, unless --passive."`
	Passive           bool   `json:"passive,omitempty" jsonschema_description:"Declare nothing: the exchange must exist; a missing one is an error."`
	RoutingKey        string `json:"routing_key,omitempty" jsonschema_description:"Routing key of every message (with the default exchange: the queue's name)."`
	RoutingKeyFromKey bool   `json:"routing_key_from_key,omitempty" jsonschema_description:"Use each record's key as its routing key instead of --routing-key."`
	Mandatory         bool   `json:"mandatory,omitempty" jsonschema_description:"Publish as mandatory: a message no queue takes is returned by RabbitMQ and its record goes to the dead-letter topic with the reply code and text in its headers, instead of being dropped by RabbitMQ."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	if o.RoutingKeyFromKey && o.RoutingKey != "" {
		return schema.Invalid("routing_key_from_key", "give either --routing-key or --routing-key-from-key, not both")
	}
	if o.Exchange == "" && o.RoutingKey == "" && !o.RoutingKeyFromKey {
		return schema.Invalid("routing_key", "the default exchange (--exchange '') routes to the queue named by the routing key: give --routing-key QUEUE or --routing-key-from-key")
	}
	if o.Exchange == "" && o.Passive {
		return schema.Invalid("passive", "the default exchange always exists: --passive needs --exchange")
	}
	return nil
}

type sink struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger

	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	down    bool // the connection was lost and is not back yet
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	return &sink{opts: *opts, env: env, log: env.Log}, nil
}

// Open connects and declares the exchange. A broker that cannot be reached
// is waited for like a lost one.
func (s *sink) Open(ctx context.Context) error {
	s.opts.Warn(s.log)
	return s.connect(ctx)
}

func (s *sink) connect(ctx context.Context) error {
	if s.ch != nil {
		return nil
	}
	var ch *amqp.Channel
	conn, err := s.opts.Reconnect(ctx, rabbitmq.Options{Name: s.env.Name, Log: s.log, Reconnecting: s.env.Reconnecting, Reconnected: s.env.Reconnected}, s.down, func(conn *amqp.Connection) error {
		var err error
		ch, err = s.setup(conn)
		return err
	})
	if err != nil {
		if s.down {
			return fmt.Errorf("reconnecting to RabbitMQ: %w", err)
		}
		return err
	}
	s.conn, s.ch, s.down = conn, ch, false
	// Returns are read while waiting for confirms: RabbitMQ sends a
	// message's basic.return before its basic.ack.
	s.returns = ch.NotifyReturn(make(chan amqp.Return, 1024))
	s.log.Info().Str("server", rabbitmq.Redact(s.opts.URL)).Str("exchange", s.opts.Exchange).Msg("connected")
	return nil
}

// setup opens a channel in confirm mode and declares the exchange.
func (s *sink) setup(conn *amqp.Connection) (*amqp.Channel, error) {
	o := s.opts
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening a channel: %w", err)
	}
	if o.Exchange != "" {
		if err := rabbitmq.DeclareExchange(ch, o.Exchange, o.ExchangeType, o.Passive); err != nil {
			return nil, err
		}
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	return ch, nil
}

// drop forgets a connection that failed, so that the next Write
// reconnects, and reports the outage.
func (s *sink) drop(err error) {
	if s.conn == nil {
		return
	}
	s.log.Warn().Err(err).Msg("lost the rabbitmq connection, reconnecting")
	s.env.Reconnecting()
	s.conn.CloseDeadline(time.Now().Add(2 * time.Second))
	s.conn, s.ch, s.returns, s.down = nil, nil, nil, true
}

// Write publishes recs and returns once RabbitMQ confirmed every one. A
// nack or a lost connection is transient: the runner calls Write again
// with the same records (some may then be published twice: at-least-once).
// Messages returned as unroutable (--mandatory) are rejected records.
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, len(recs))
	var returned []amqp.Return
	for i := range recs {
		r := &recs[i]
		dc, err := s.ch.PublishWithDeferredConfirmWithContext(ctx, s.opts.Exchange, s.routingKey(r), s.opts.Mandatory, false, rabbitmq.Publishing(r))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.drop(err)
			return connector.Transient(fmt.Errorf("publishing to RabbitMQ: %w", err))
		}
		confirms[i] = dc
		returned = s.takeReturns(returned)
	}
	returns := s.returns
	for i, dc := range confirms {
	wait:
		for {
			select {
			case <-dc.Done():
				break wait
			case ret, ok := <-returns:
				if !ok {
					returns = nil
					continue
				}
				returned = append(returned, ret)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !dc.Acked() {
			if s.ch.IsClosed() {
				err := errors.New("the connection was lost before RabbitMQ confirmed every message")
				s.drop(err)
				return connector.Transient(err)
			}
			return connector.Transient(fmt.Errorf("RabbitMQ refused (nack) message %d of %d", i+1, len(recs)))
		}
	}
	// Every return came before the last confirm.
	returned = s.takeReturns(returned)
	if len(returned) > 0 {
		return s.rejected(recs, returned)
	}
	return nil
}

// takeReturns appends the returns waiting.
func (s *sink) takeReturns(to []amqp.Return) []amqp.Return {
	for {
		select {
		case ret, ok := <-s.returns:
			if !ok {
				return to
			}
			to = append(to, ret)
		default:
			return to
		}
	}
}

func (s *sink) routingKey(r *record.Record) string {
	if s.opts.RoutingKeyFromKey {
		return string(r.Key)
	}
	return s.opts.RoutingKey
}

// rejected matches the returned messages to the records they came from
// (returns come in publishing order) and reports those records.
func (s *sink) rejected(recs []record.Record, returned []amqp.Return) error {
	rej := &connector.Rejected{}
	i := 0
	for _, ret := range returned {
		for i < len(recs) && (s.routingKey(&recs[i]) != ret.RoutingKey || !bytes.Equal(recs[i].Value, ret.Body)) {
			i++
		}
		if i == len(recs) {
			s.log.Warn().Str("routing_key", ret.RoutingKey).Msg("rabbitmq returned a message that matches no record of the batch")
			break
		}
		rej.Records = append(rej.Records, connector.RejectedRecord{
			Record: recs[i],
			Reason: fmt.Sprintf("RabbitMQ returned the message as unroutable: %d %s (exchange %q, routing key %q)", ret.ReplyCode, ret.ReplyText, ret.Exchange, ret.RoutingKey),
			Headers: []record.Header{
				{Key: rabbitmq.HeaderReplyCode, Value: []byte(strconv.Itoa(int(ret.ReplyCode)))},
				{Key: rabbitmq.HeaderReplyText, Value: []byte(ret.ReplyText)},
				{Key: rabbitmq.HeaderExchange, Value: []byte(ret.Exchange)},
				{Key: rabbitmq.HeaderRoutingKey, Value: []byte(ret.RoutingKey)},
			},
		})
		i++
	}
	if len(rej.Records) == 0 {
		return nil
	}
	return rej
}

// Close closes the connection.
func (s *sink) Close() error {
	if s.conn != nil {
		s.conn.CloseDeadline(time.Now().Add(5 * time.Second))
		s.conn, s.ch, s.returns = nil, nil, nil
	}
	return nil
}
