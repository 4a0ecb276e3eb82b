package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestCloudEventsMQTTBinding: mqtt-source --format cloudevents reads the
// MQTT 5 binding from the machine's Mosquitto: a binary-mode message
// (attributes as user properties of their names, the Content Type
// property) and a structured one (Content Type
// application/cloudevents+json) become records of the data with ce_*
// headers; a message that is not an event is a dead letter.
func TestCloudEventsMQTTBinding(t *testing.T) {
	mqtttest.RequireShared(t)
	topic := mqtttest.Topic(t)
	dir := filepath.Join(t.TempDir(), "bus")
	r := connectortest.Start(t, app(), "--topic", "in", "--bus", dir, "--url", mqtttest.Shared, "--mqtt-topic", topic, "--format", "cloudevents")
	pub := mqtttest.Dial(t, mqtttest.Shared)
	// Until the source is subscribed: plain JSON, not an event, is a dead letter.
	connectortest.WaitFor(t, r, "a subscribed source", func() bool {
		pub.Publish(t, topic, 1, []byte(`{"warmup":true}`))
		time.Sleep(100 * time.Millisecond)
		return len(connectortest.ReadTopic(t, dir, "in.dlq")) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []*paho.Publish{
		{Topic: topic, QoS: 1, Payload: []byte(`{"n":1}`), Properties: &paho.PublishProperties{ContentType: "application/json",
			User: paho.UserProperties{{Key: "specversion", Value: "1.0"}, {Key: "id", Value: "m-1"}, {Key: "source", Value: "/mqtt"}, {Key: "type", Value: "com.example.binary"}}}},
		{Topic: topic, QoS: 1, Payload: []byte(`{"specversion":"1.0","id":"m-2","source":"/mqtt","type":"com.example.structured","data":{"n":2}}`),
			Properties: &paho.PublishProperties{ContentType: "application/cloudevents+json"}},
	} {
		if _, err := pub.Client.Publish(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	recs := connectortest.WaitTopic(t, dir, "in", 2, r)
	r.StopOK(t)
	connectortest.Equal(t, "values", connectortest.Values(recs), []string{`{"n":1}`, `{"n":2}`})
	for i, want := range []map[string]string{
		{"ce_specversion": "1.0", "ce_id": "m-1", "ce_source": "/mqtt", "ce_type": "com.example.binary", "ce_datacontenttype": "application/json", "mqtt.topic": topic},
		{"ce_id": "m-2", "ce_type": "com.example.structured"},
	} {
		for k, v := range want {
			if got := connectortest.Header(t, recs[i], k); got != v {
				t.Fatalf("record %d: header %s = %q, want %q (%v)", i, k, got, v, recs[i].Headers)
			}
		}
		for _, h := range recs[i].Headers {
			if h.Key == "id" || h.Key == "mqtt.content_type" {
				t.Fatalf("record %d keeps %s: %v", i, h.Key, recs[i].Headers)
			}
		}
	}
	dead := connectortest.ReadTopic(t, dir, "in.dlq")
	if why := connectortest.Header(t, dead[0], "culvert.error"); !strings.Contains(why, "not a CloudEvent") {
		t.Fatalf("dead letter says %q", why)
	}
}
