package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite: on the machine's
// Mosquitto, or on a private one for TLS (with a client certificate) and
// for the Restart scenario. The source keeps a persistent session, so
// that what is published while it is stopped reaches it afterwards.
func TestAcceptance(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startMosquitto,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--mqtt-topic", "a"}, Option: "--url"},
			{Args: []string{"--url", "tcp://h"}, Option: "--mqtt-topic"},
			{Args: []string{"--url", "http://h", "--mqtt-topic", "a"}, Option: "--url"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a/#/b"}, Option: "--mqtt-topic"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a+"}, Option: "--mqtt-topic"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--qos", "3"}, Option: "--qos"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--key-from", "value"}, Option: "--key-from"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--tls-ca", "ca.pem"}, Option: "--url"},
			{Args: []string{"--url", "ssl://h", "--mqtt-topic", "a", "--tls-cert", "c.pem"}, Option: "--tls-cert"},
			{Args: []string{"--url", "tcp://h", "--mqtt-topic", "a", "--receive-maximum", "0"}, Option: "--receive-maximum"},
			{Args: []string{"--url", "tcp://u:s3cret@h/x", "--mqtt-topic", "a"}, Option: "--url"},
		},
		// Few messages in flight, so that SIGTERM and the restart come
		// mid-stream.
		RestartArgs: []string{"--receive-maximum", "2"},
	})
}

// startMosquitto gives the source a topic of its own, under which it
// subscribes with a wildcard, and a persistent session.
func startMosquitto(t *testing.T, need connectortest.Need) *connectortest.System {
	url, pubURL := mqtttest.Shared, mqtttest.Shared
	var b *mqtttest.Broker
	var tlsArgs []string
	qos := byte(1)
	// A private broker for TLS and restarts, and for SIGTERM: the shared
	// one drops what a slow session has beyond 1,000 queued messages.
	if need.TLS || need.Restart || need.Scenario == connectortest.Stop {
		b = mqtttest.Start(t, need.TLS)
		url, pubURL = b.URL(), b.URL()
		if need.TLS {
			url = b.TLSURL()
			tlsArgs = []string{"--tls-ca", b.CA, "--tls-cert", b.ClientCert, "--tls-key", b.ClientKey, "--qos", "2"}
			qos = 2
		}
	} else {
		mqtttest.RequireShared(t)
	}
	topic := mqtttest.Topic(t)
	id := "culvert-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() { mqtttest.DropSession(t, pubURL, id) })
	return &connectortest.System{
		Args: append([]string{"--url", url, "--mqtt-topic", topic + "/#", "--client-id", id, "--session-expiry", "1m"}, tlsArgs...),
		Produce: func(t testing.TB, values ...string) {
			payloads := make([][]byte, len(values))
			for i, v := range values {
				payloads[i] = []byte(v)
			}
			// A client of its own: the broker may have restarted since.
			mqtttest.Dial(t, pubURL).Publish(t, topic+"/a", qos, payloads...)
		},
		Restart: func(t testing.TB) { b.Restart(300 * time.Millisecond) },
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				last := recs[len(recs)-1]
				if string(last.Key) != topic+"/a" {
					t.Errorf("key %q, want the MQTT topic", last.Key)
				}
				for k, want := range map[string]string{"mqtt.topic": topic + "/a", "mqtt.qos": "1", "mqtt.retain": "false"} {
					if v, _ := last.Header(k); string(v) != want {
						t.Errorf("header %s = %q, want %q", k, v, want)
					}
				}
			case connectortest.Poison:
				if v, _ := recs[0].Header("mqtt.topic"); string(v) != topic+"/a" {
					t.Errorf("the dead letter lost its mqtt.topic header: %q", v)
				}
			case connectortest.Restart:
				if !strings.Contains(stderr, "reconnected to mqtt") {
					t.Errorf("no reconnection in the log:\n%s", stderr)
				}
			}
		},
	}
}
