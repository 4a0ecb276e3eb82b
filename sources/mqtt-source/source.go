package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	mqttc "github.com/culvert-dev/culvert/common/client/mqtt"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:        "mqtt-source",
	Binding:     format.BindingMQTT,
	Description: "Subscribes to MQTT topic filters (MQTT 5) and publishes each message as a record; QoS 1 and 2 messages are acknowledged to the broker only once durable on the bus, and a persistent session keeps what arrives while the source is down.",
	Examples: `
# Every sensor reading, keyed by its MQTT topic, at QoS 1
mqtt-source --topic readings --url tcp://127.0.0.1:1883 --mqtt-topic 'sensors/+/temperature'

# Two filters, over TLS with a private CA and a password from the environment
CULVERT_MQTT_SOURCE_PASSWORD=s3cret mqtt-source --topic events --url ssl://broker:8883 --tls-ca ca.pem \
    --username culvert --mqtt-topic 'plant/#' --mqtt-topic 'alerts/#'

# Keep only hot readings; messages that are not JSON go to readings.dlq
mqtt-source --topic hot --url tcp://127.0.0.1:1883 --mqtt-topic 'sensors/#' --filter '.celsius > 30'`,
}

// Options are mqtt-source's own options.
type Options struct {
	mqttc.ConnOptions
	MqttTopic      []string        `json:"mqtt_topic" jsonschema:"required,minItems=1" jsonschema_description:"MQTT topic filter to subscribe to, with + and # wildcards. Repeatable."`
	QoS            int             `json:"qos" jsonschema:"enum=0,enum=1,enum=2,default=1" jsonschema_description:"Subscription QoS: 0 at most once; 1 at least once (acknowledged after the bus write); 2 exactly once between broker and source."`
	CleanSession   bool            `json:"clean_session,omitempty" jsonschema_description:"Start with a new session, dropping what the broker kept for this client id while the source was down."`
	SessionExpiry  schema.Duration `json:"session_expiry" jsonschema:"default=24h" jsonschema_description:"How long the broker keeps the session (subscriptions and queued messages) while the source is down."`
	KeyFrom        string          `json:"key_from" jsonschema:"enum=topic,enum=none,default=topic" jsonschema_description:"topic makes the message's MQTT topic the record key; none leaves the key empty (the topic is always in the mqtt.topic header)."`
	ReceiveMaximum int             `json:"receive_maximum" jsonschema:"minimum=1,maximum=65535,default=65535" jsonschema_description:"How many unacknowledged messages the broker may send at once; the source blocks (backpressure) rather than drop when the bus is slower."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	for _, f := range o.MqttTopic {
		if err := checkFilter(f); err != nil {
			return schema.Invalid("mqtt_topic", "%q: %v", f, err)
		}
	}
	if o.SessionExpiry < 0 || o.SessionExpiry.D() > 0xFFFFFFFF*time.Second {
		return schema.Invalid("session_expiry", "must be between 0s and 136 years")
	}
	return nil
}

// checkFilter applies the MQTT rules for topic filters.
func checkFilter(f string) error {
	if f == "" {
		return fmt.Errorf("empty")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("# must be the last level")
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return fmt.Errorf("a wildcard must fill a whole level")
		}
	}
	return nil
}

// inbound is a message with the connection it came on (acks go back there).
type inbound struct {
	cli *paho.Client
	p   *paho.Publish
}

type source struct {
	opts     Options
	clientID string
	log      zerolog.Logger
	env      connector.Env

	conn   *mqttc.Conn
	msgs   chan inbound
	closed chan struct{}
}

// maxRead is the most messages one Read returns; the runner groups reads
// into bus writes of --batch-size.
const maxRead = 1000

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	id := opts.ClientID
	if id == "" {
		id = DefaultClientID(env.Name, env.Topic, opts.MqttTopic)
	}
	return &source{opts: *opts, clientID: id, log: env.Log, env: env,
		msgs: make(chan inbound, maxRead), closed: make(chan struct{})}, nil
}

// DefaultClientID is stable for a connector name, bus topic and set of
// filters, so that a restarted source resumes its session.
func DefaultClientID(name, topic string, filters []string) string {
	h := sha256.Sum256([]byte(topic + "\x00" + strings.Join(filters, "\x00")))
	return "culvert-" + name + "-" + hex.EncodeToString(h[:6])
}

// Open connects, resuming the session, and subscribes.
func (s *source) Open(ctx context.Context, _ []byte) error {
	cfg, err := s.opts.Config()
	if err != nil {
		return err
	}
	s.opts.Warn(s.log)
	o := s.opts.ConnectOptions()
	o.ClientID = s.clientID
	o.CleanStart = s.opts.CleanSession
	o.SessionExpiry = s.opts.SessionExpiry.D()
	o.ReceiveMaximum = uint16(s.opts.ReceiveMaximum)
	o.ManualAcks = true
	o.OnPublish = s.onPublish
	o.OnConnect = s.subscribe
	o.Log = s.log
	o.Reconnecting, o.Reconnected = s.env.Reconnecting, s.env.Reconnected
	conn, err := mqttc.Connect(ctx, cfg, o)
	if err != nil {
		return err
	}
	s.conn = conn
	s.log.Info().Str("broker", cfg.String()).Str("client_id", s.clientID).Strs("mqtt_topics", s.opts.MqttTopic).
		Int("qos", s.opts.QoS).Bool("clean_session", s.opts.CleanSession).Msg("subscribed")
	return nil
}

// subscribe (re)subscribes after each connection. Retained messages are
// sent only for a new subscription, not again on every reconnection.
func (s *source) subscribe(ctx context.Context, cli *paho.Client) error {
	sub := &paho.Subscribe{}
	for _, f := range s.opts.MqttTopic {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: byte(s.opts.QoS), RetainHandling: 1})
	}
	sa, err := cli.Subscribe(ctx, sub)
	if err != nil {
		if sa != nil && sa.Properties != nil && sa.Properties.ReasonString != "" {
			return fmt.Errorf("subscribing: %w (%s)", err, sa.Properties.ReasonString)
		}
		return fmt.Errorf("subscribing: %w", err)
	}
	for i, rc := range sa.Reasons {
		if i < len(s.opts.MqttTopic) && rc >= 0x80 {
			return fmt.Errorf("subscribing to %q: refused with reason code 0x%02x", s.opts.MqttTopic[i], rc)
		}
		if i < len(s.opts.MqttTopic) && int(rc) < s.opts.QoS {
			s.log.Warn().Str("mqtt_topic", s.opts.MqttTopic[i]).Int("granted_qos", int(rc)).Msg("the broker granted a lower QoS than asked")
		}
	}
	return nil
}

// onPublish runs on paho's delivery goroutine: blocking here is the
// backpressure (the broker stops at --receive-maximum unacknowledged
// messages); nothing is ever dropped.
func (s *source) onPublish(pr paho.PublishReceived) (bool, error) {
	select {
	case s.msgs <- inbound{pr.Client, pr.Packet}:
	case <-s.closed:
	}
	return true, nil
}

// Read returns the messages received so far, waiting for at least one.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	var in []inbound
	select {
	case m := <-s.msgs:
		in = append(in, m)
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	case <-s.conn.Failed():
		return connector.Batch{}, s.conn.Err()
	}
more:
	for len(in) < maxRead {
		select {
		case m := <-s.msgs:
			in = append(in, m)
		default:
			break more
		}
	}
	now := time.Now()
	recs := make([]record.Record, len(in))
	for i, m := range in {
		recs[i] = s.record(m.p, now)
	}
	return connector.Batch{Records: recs, Ack: func(err error) {
		if err != nil {
			// Not acknowledged: the broker sends them again on the next
			// connection of this session.
			return
		}
		// Every message is acknowledged on the connection it came on, in
		// order: paho sends acknowledgements in the order the messages
		// arrived, so one left out would hold back all that follow. On a
		// connection that is gone, Ack does nothing: the broker sends the
		// message again on the new connection.
		for _, m := range in {
			if m.p.QoS > 0 {
				if err := m.cli.Ack(m.p); err != nil {
					s.log.Debug().Err(err).Msg("acknowledging an mqtt message")
				}
			}
		}
	}}, nil
}

// record turns a message into a record: the topic as key (with --key-from
// topic) and in a header, the QoS, retain flag, content type and user
// properties as headers. The key and the topic header share one copy of
// the topic, and the QoS and retain values are shared constants (full
// slices: an append to one makes a copy).
func (s *source) record(p *paho.Publish, now time.Time) record.Record {
	topic := []byte(p.Topic)
	r := record.Record{Value: p.Payload, Time: now, Offset: int64(p.PacketID)}
	if s.opts.KeyFrom == "topic" {
		r.Key = topic[:len(topic):len(topic)]
	}
	n := 3
	if p.Properties != nil {
		n += len(p.Properties.User)
		if p.Properties.ContentType != "" {
			n++
		}
	}
	r.Headers = make([]record.Header, 0, n)
	r.Headers = append(r.Headers,
		record.Header{Key: "mqtt.topic", Value: topic[:len(topic):len(topic)]},
		record.Header{Key: "mqtt.qos", Value: qosValues[min(int(p.QoS), 2)]},
		record.Header{Key: "mqtt.retain", Value: retainValues[btoi(p.Retain)]})
	if p.Properties != nil {
		if p.Properties.ContentType != "" {
			r.Headers = append(r.Headers, record.Header{Key: "mqtt.content_type", Value: []byte(p.Properties.ContentType)})
		}
		for _, u := range p.Properties.User {
			r.Headers = append(r.Headers, record.Header{Key: u.Key, Value: []byte(u.Value)})
		}
	}
	return r
}

var (
	qosValues    = [3][]byte{[]byte("0")[:1:1], []byte("1")[:1:1], []byte("2")[:1:1]}
	retainValues = [2][]byte{[]byte("false")[:5:5], []byte("true")[:4:4]}
)

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close disconnects, keeping the session on the broker. It is idempotent.
func (s *source) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}
