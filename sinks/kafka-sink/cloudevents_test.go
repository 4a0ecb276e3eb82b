package main

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

func kafkaHeaders(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// TestCloudEventsKafkaBinding: kafka-sink --format cloudevents writes the
// Kafka protocol binding, read back with franz-go's client: binary mode
// (the default) puts the attributes in ce_* headers and the content type
// in content-type, with the data as the value; structured mode writes the
// event as the value with content-type application/cloudevents+json. The
// id is <topic>:<offset> of the record on the bus.
func TestCloudEventsKafkaBinding(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	connectortest.Publish(t, dir, "orders", orders(2)...)
	args := []string{"--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end", "--brokers", addr,
		"--format", "cloudevents", "--ce-source", "/shop", "--ce-type", "com.example.order"}

	connectortest.MustRun(t, app(), append(args, "--group", "binary", "--kafka-topic", "binary")...)
	got := readAll(t, addr, "binary", 2)
	for i, r := range got {
		h := kafkaHeaders(r)
		want := map[string]string{"n": strconv.Itoa(i), "ce_specversion": "1.0", "ce_id": "orders:" + strconv.Itoa(i),
			"ce_source": "/shop", "ce_type": "com.example.order", "ce_time": order(i).Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"),
			"content-type": "application/json"}
		if len(h) != len(want) {
			t.Fatalf("record %d: headers %v, want %v", i, h, want)
		}
		for k, v := range want {
			if h[k] != v {
				t.Fatalf("record %d: header %s = %q, want %q", i, k, h[k], v)
			}
		}
		if string(r.Value) != string(order(i).Value) || string(r.Key) != string(order(i).Key) {
			t.Fatalf("record %d: key %q value %q", i, r.Key, r.Value)
		}
	}

	connectortest.MustRun(t, app(), append(args, "--group", "structured", "--kafka-topic", "structured", "--ce-mode", "structured")...)
	got = readAll(t, addr, "structured", 2)
	for i, r := range got {
		if h := kafkaHeaders(r); h["content-type"] != "application/cloudevents+json" || h["ce_id"] != "" {
			t.Fatalf("record %d: headers %v", i, h)
		}
		var e struct {
			SpecVersion string          `json:"specversion"`
			ID          string          `json:"id"`
			Type        string          `json:"type"`
			Data        json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, r.Value)
		}
		if e.SpecVersion != "1.0" || e.ID != "orders:"+strconv.Itoa(i) || e.Type != "com.example.order" || string(e.Data) != string(order(i).Value) {
			t.Fatalf("record %d: %s", i, r.Value)
		}
	}
}
