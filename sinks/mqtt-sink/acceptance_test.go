package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite: on the machine's
// Mosquitto, or on a private one for TLS (with a client certificate, at
// QoS 2, retained) and for the Restart scenario, with a subscriber of a
// persistent session as the independent end.
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startMosquitto,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--mqtt-topic", "a"}, Option: "--url"},
			{Args: []string{"--url", "tcp://h"}, Option: "--mqtt-topic"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--mqtt-topic-from-key"}, Option: "--mqtt-topic"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a/#"}, Option: "--mqtt-topic"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--qos", "5"}, Option: "--qos"},
			{Args: []string{"--url", "ws://u:s3cret@h/mqtt?x=1", "--mqtt-topic", "a"}, Option: "--url"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--password", "s3cret"}, Option: "--username"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--ack-timeout", "0s"}, Option: "--ack-timeout"},
		},
	})
}

// startMosquitto gives the sink a topic of its own, topic/a, which a
// subscriber of a persistent session reads through topic/#. For the
// Poison scenario the sink takes the MQTT topic from the record key: a
// record without a key, or keyed with a wildcard, goes to the dead-letter
// topic.
func startMosquitto(t *testing.T, need connectortest.Need) *connectortest.System {
	url, subURL := mqtttest.Shared, mqtttest.Shared
	var b *mqtttest.Broker
	var extra []string
	qos := byte(1)
	if need.TLS || need.Restart {
		b = mqtttest.Start(t, need.TLS)
		url, subURL = b.URL(), b.URL()
		if need.TLS {
			url = b.TLSURL()
			extra = []string{"--tls-ca", b.CA, "--tls-cert", b.ClientCert, "--tls-key", b.ClientKey, "--qos", "2", "--retain"}
			qos = 2
		}
	} else {
		mqtttest.RequireShared(t)
	}
	topic := mqtttest.Topic(t)
	sub := &subscriber{id: "culvert-test-" + fmt.Sprint(time.Now().UnixNano()), url: subURL, got: make(chan *paho.Publish, 1<<16)}
	mqtttest.DialSession(t, subURL, sub.id, sub.got).Subscribe(t, topic+"/#", qos)
	t.Cleanup(func() { mqtttest.DropSession(t, subURL, sub.id) })
	sys := &connectortest.System{
		Args:     append([]string{"--url", url, "--mqtt-topic", topic + "/a"}, extra...),
		Received: sub.received,
		Restart: func(t testing.TB) {
			b.Restart(500 * time.Millisecond)
			mqtttest.DialSession(t, subURL, sub.id, sub.got)
		},
		Record: func(n int) record.Record {
			return record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, n), Headers: []record.Header{{Key: "h", Value: fmt.Appendf(nil, "v%d", n)}}}
		},
		Check: func(t testing.TB, s connectortest.Scenario, _ []record.Record, stderr string) {
			msgs := sub.messages()
			switch s {
			case connectortest.RoundTrip:
				last := msgs[len(msgs)-1]
				if last.QoS != 1 || last.Properties == nil || last.Properties.User.Get("h") != "v9999" {
					t.Errorf("last message: qos %d, properties %+v", last.QoS, last.Properties)
				}
			case connectortest.TLS:
				// The last one was retained: a new subscriber gets it.
				late := mqtttest.Dial(t, subURL)
				late.Subscribe(t, topic+"/a", 1)
				if r := late.Receive(t, 1, 10*time.Second)[0]; string(r.Payload) != `{"n":99}` || !r.Retain {
					t.Errorf("retained message %q retain=%v", r.Payload, r.Retain)
				}
			case connectortest.Restart:
				if !strings.Contains(stderr, "reconnected to mqtt") {
					t.Errorf("no reconnection in the log:\n%s", stderr)
				}
			}
		},
	}
	if need.Scenario == connectortest.Poison {
		sys.Args = []string{"--url", url, "--mqtt-topic-from-key", "--qos", "2"}
		sys.Record = func(n int) record.Record {
			return record.Record{Key: []byte(topic + "/a"), Value: fmt.Appendf(nil, `{"n":%d}`, n)}
		}
		sys.Poison = func(n int) record.Record {
			if n == 3 {
				return record.Record{Value: []byte("no key")}
			}
			return record.Record{Key: []byte(topic + "/#"), Value: []byte("wildcard")}
		}
		sys.Check = func(t testing.TB, _ connectortest.Scenario, dead []record.Record, _ string) {
			if e, _ := dead[1].Header("culvert.error"); !strings.Contains(string(e), "wildcard") {
				t.Errorf("culvert.error %q", e)
			}
			for _, m := range sub.messages() {
				if m.Topic != topic+"/a" {
					t.Errorf("message %q on %s, want %s/a", m.Payload, m.Topic, topic)
				}
			}
		}
	}
	return sys
}

// subscriber collects what a persistent session receives.
type subscriber struct {
	id, url string
	got     chan *paho.Publish
	mu      sync.Mutex
	msgs    []*paho.Publish
}

func (s *subscriber) messages() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		select {
		case p := <-s.got:
			s.msgs = append(s.msgs, p)
		default:
			return s.msgs
		}
	}
}

func (s *subscriber) received(testing.TB) []string {
	msgs := s.messages()
	out := make([]string, len(msgs))
	for i, p := range msgs {
		out[i] = string(p.Payload)
	}
	return out
}
