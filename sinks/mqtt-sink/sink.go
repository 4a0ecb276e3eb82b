package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/packets"
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
	Name:        "mqtt-sink",
	Binding:     format.BindingMQTT,
	Description: "Publishes each record of a topic to an MQTT broker (MQTT 5) at QoS 0, 1 or 2; the consumer offset is committed only after the broker acknowledged every message (PUBACK or PUBCOMP).",
	Examples: `
# Publish every order to one MQTT topic at QoS 1
mqtt-sink --topic orders --url tcp://127.0.0.1:1883 --mqtt-topic shop/orders

# The record key names the MQTT topic of each message (as mqtt-source sets it)
mqtt-sink --topic readings --url tcp://127.0.0.1:1883 --mqtt-topic-from-key

# Retained QoS 2 messages over TLS with a client certificate
mqtt-sink --topic status --url ssl://broker:8883 --tls-ca ca.pem --tls-cert me.pem --tls-key me.key \
    --mqtt-topic devices/status --qos 2 --retain`,
}

// Options are mqtt-sink's own options.
type Options struct {
	mqttc.ConnOptions
	MqttTopic        string          `json:"mqtt_topic,omitempty" jsonschema_description:"MQTT topic to publish to (no wildcards). Give this or --mqtt-topic-from-key."`
	MqttTopicFromKey bool            `json:"mqtt_topic_from_key,omitempty" jsonschema_description:"Publish each record to the MQTT topic named by its key; a record without a valid key goes to the dead-letter topic."`
	QoS              int             `json:"qos" jsonschema:"enum=0,enum=1,enum=2,default=1" jsonschema_description:"QoS: 0 (committed once written to the connection), 1 (after PUBACK) or 2 (after PUBCOMP)."`
	Retain           bool            `json:"retain,omitempty" jsonschema_description:"Set the retain flag: the broker keeps the last message of each topic for new subscribers."`
	AckTimeout       schema.Duration `json:"ack_timeout" jsonschema:"default=30s" jsonschema_description:"How long to wait for the broker's acknowledgements of a batch before retrying it."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	switch {
	case o.MqttTopic == "" && !o.MqttTopicFromKey:
		return schema.Invalid("mqtt_topic", "give --mqtt-topic or --mqtt-topic-from-key")
	case o.MqttTopic != "" && o.MqttTopicFromKey:
		return schema.Invalid("mqtt_topic", "give --mqtt-topic or --mqtt-topic-from-key, not both")
	}
	if o.MqttTopic != "" {
		if err := checkTopic(o.MqttTopic); err != nil {
			return schema.Invalid("mqtt_topic", "%q: %v", o.MqttTopic, err)
		}
	}
	if o.AckTimeout <= 0 {
		return schema.Invalid("ack_timeout", "must be more than 0")
	}
	return nil
}

// checkTopic applies the MQTT rules for topic names.
func checkTopic(t string) error {
	switch {
	case t == "":
		return errors.New("empty MQTT topic")
	case strings.ContainsAny(t, "+#"):
		return errors.New("an MQTT topic to publish to cannot have wildcards (+, #)")
	case strings.ContainsRune(t, 0) || !utf8.ValidString(t):
		return errors.New("an MQTT topic must be valid UTF-8 without NUL")
	case len(t) > 65535:
		return errors.New("an MQTT topic is at most 65535 bytes")
	}
	return nil
}

// headerContentType is the record header of the MQTT 5 Content Type
// property (mqtt-source's name for it): the sink sends it as that
// property, not as a user property.
const headerContentType = "mqtt.content_type"

type sink struct {
	opts Options
	log  zerolog.Logger
	env  connector.Env
	conn *mqttc.Conn
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	return &sink{opts: *opts, log: env.Log, env: env}, nil
}

// Open connects.
func (s *sink) Open(ctx context.Context) error {
	cfg, err := s.opts.Config()
	if err != nil {
		return err
	}
	s.opts.Warn(s.log)
	o := s.opts.ConnectOptions()
	if o.ClientID == "" {
		// Unique per process: sinks of one group must not take over each
		// other's session. Within the process, reconnections resume it.
		b := make([]byte, 4)
		rand.Read(b)
		o.ClientID = "culvert-" + s.env.Name + "-" + hex.EncodeToString(b)
	}
	o.EndSession = true
	o.QuickAck = true // Write waits for the last PUBACKs of each batch
	o.SessionExpiry = 5 * time.Minute
	o.Log = s.log
	o.Reconnecting, o.Reconnected = s.env.Reconnecting, s.env.Reconnected
	conn, err := mqttc.Connect(ctx, cfg, o)
	if err != nil {
		return err
	}
	s.conn = conn
	s.log.Info().Str("broker", cfg.String()).Str("client_id", o.ClientID).Int("qos", s.opts.QoS).Msg("connected")
	return nil
}

// permanent are the PUBACK/PUBREC reason codes that refuse one message
// for good: not authorized, topic name invalid, packet too large, payload
// format invalid.
var permanent = map[byte]string{0x87: "not authorized", 0x90: "topic name invalid", 0x95: "packet too large", 0x99: "payload format invalid"}

// Write publishes recs in order, pipelined, and returns once the broker
// acknowledged each one.
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	cli, err := s.conn.Client(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("mqtt: %w", err)
	}
	var rejected []connector.RejectedRecord
	type sent struct {
		i  int
		ch <-chan packets.ControlPacket
	}
	waits := make([]sent, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		topic := s.opts.MqttTopic // checked by Validate
		if s.opts.MqttTopicFromKey {
			topic = string(r.Key)
			if err := checkTopic(topic); err != nil {
				rejected = append(rejected, connector.RejectedRecord{Record: *r, Reason: fmt.Sprintf("record key: %v", err)})
				continue
			}
		}
		p := &paho.Publish{QoS: byte(s.opts.QoS), Retain: s.opts.Retain, Topic: topic, Payload: r.Value}
		if len(r.Headers) > 0 {
			p.Properties = &paho.PublishProperties{}
			for _, h := range r.Headers {
				if h.Key == headerContentType {
					// The Content Type property, as mqtt-source reads it
					// (and CloudEvents' MQTT binding sets it).
					p.Properties.ContentType = string(h.Value)
					continue
				}
				p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: h.Key, Value: string(h.Value)})
			}
		}
		ch, err := s.conn.Send(ctx, cli, p)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// What was sent stays in the session and is resent after the
			// reconnection; the retry sends the batch again (at least once).
			return connector.Transient(fmt.Errorf("publishing to MQTT topic %q: %w", topic, err))
		}
		if ch != nil {
			waits = append(waits, sent{i, ch})
		}
	}
	timeout := time.NewTimer(s.opts.AckTimeout.D())
	defer timeout.Stop()
	for _, w := range waits {
		var resp packets.ControlPacket
		select {
		case resp = <-w.ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.conn.Failed():
			return fmt.Errorf("mqtt: %w", s.conn.Err())
		case <-timeout.C:
			return connector.Transient(fmt.Errorf("no acknowledgement from the MQTT broker within %s", s.opts.AckTimeout))
		}
		code, ok := reasonCode(resp)
		if !ok {
			return connector.Transient(errors.New("the MQTT broker lost the session before acknowledging"))
		}
		if code >= 0x80 {
			if why, bad := permanent[code]; bad {
				rejected = append(rejected, connector.RejectedRecord{Record: recs[w.i],
					Reason:  fmt.Sprintf("the MQTT broker refused the message: %s (reason code 0x%02x)", why, code),
					Headers: []record.Header{{Key: "mqtt.reason_code", Value: fmt.Appendf(nil, "0x%02x", code)}}})
				continue
			}
			return connector.Transient(fmt.Errorf("the MQTT broker refused a message with reason code 0x%02x", code))
		}
	}
	if len(rejected) > 0 {
		return &connector.Rejected{Records: rejected}
	}
	return nil
}

// reasonCode is the reason code of a PUBACK, PUBREC or PUBCOMP; ok is false
// for the zero packet that says the message left the session unanswered.
func reasonCode(p packets.ControlPacket) (code byte, ok bool) {
	switch c := p.Content.(type) {
	case *packets.Puback:
		return c.ReasonCode, true
	case *packets.Pubrec:
		return c.ReasonCode, true
	case *packets.Pubcomp:
		return c.ReasonCode, true
	}
	return 0, false
}

// Close disconnects. It is idempotent.
func (s *sink) Close() error {
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}
