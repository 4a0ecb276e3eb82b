package main

import (
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestCloudEventsMQTTBinding: mqtt-sink --format cloudevents writes the
// MQTT 5 binding in binary mode, read by a paho subscriber on the
// machine's Mosquitto: the attributes are user properties of their own
// names, the content type is the Content Type property, the data is the
// payload.
func TestCloudEventsMQTTBinding(t *testing.T) {
	mqtttest.RequireShared(t)
	topic := mqtttest.Topic(t)
	sub := mqtttest.Dial(t, mqtttest.Shared)
	sub.Subscribe(t, topic, 1)
	dir := t.TempDir()
	connectortest.Publish(t, dir, "orders", record.Record{Value: []byte(`{"n":1}`), Headers: []record.Header{{Key: "h", Value: []byte("v")}}})
	connectortest.MustRun(t, app(), "--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end", "--url", mqtttest.Shared,
		"--mqtt-topic", topic, "--format", "cloudevents", "--ce-source", "/shop", "--ce-type", "com.example.order")
	m := sub.Receive(t, 1, 10*time.Second)[0]
	if string(m.Payload) != `{"n":1}` || m.Properties == nil || m.Properties.ContentType != "application/json" {
		t.Fatalf("payload %q properties %+v", m.Payload, m.Properties)
	}
	u := m.Properties.User
	for k, v := range map[string]string{"specversion": "1.0", "id": "orders:0", "source": "/shop", "type": "com.example.order", "h": "v"} {
		if u.Get(k) != v {
			t.Fatalf("user property %s = %q, want %q (%v)", k, u.Get(k), v, u)
		}
	}
	if u.Get("mqtt.content_type") != "" || u.Get("datacontenttype") != "" {
		t.Fatalf("the content type is a user property: %v", u)
	}
}
