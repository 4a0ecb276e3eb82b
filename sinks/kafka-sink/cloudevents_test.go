package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
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

// TestCloudEventsPartitionKey: the Kafka binding's key mapping: an event
// with the partitionkey extension (header ce_partitionkey on the bus) is
// written with it as the Kafka message key, the attribute kept in the
// event (binary: header ce_partitionkey; structured: in the JSON); an
// event without it keeps the record's key. Read back with franz-go.
func TestCloudEventsPartitionKey(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	recs := orders(2)
	recs[0].Headers = append(recs[0].Headers, record.Header{Key: "ce_partitionkey", Value: []byte("customer-7")})
	connectortest.Publish(t, dir, "orders", recs...)
	args := []string{"--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end", "--brokers", addr,
		"--format", "cloudevents", "--ce-source", "/shop", "--ce-type", "com.example.order"}
	for _, mode := range []string{"binary", "structured"} {
		connectortest.MustRun(t, app(), append(args, "--group", mode, "--kafka-topic", mode, "--ce-mode", mode)...)
		got := readAll(t, addr, mode, 2)
		if mode == "binary" && number(t, got[0]) != 0 || mode == "structured" && !strings.Contains(string(got[0].Value), `"data":{"n":0}`) {
			got[0], got[1] = got[1], got[0] // the two keys are in two partitions
		}
		if string(got[0].Key) != "customer-7" || string(got[1].Key) != string(order(1).Key) {
			t.Fatalf("%s: keys %q %q, want customer-7 (partitionkey) and %q (the record's)", mode, got[0].Key, got[1].Key, order(1).Key)
		}
		switch mode {
		case "binary":
			if h := kafkaHeaders(got[0]); h["ce_partitionkey"] != "customer-7" {
				t.Fatalf("binary: headers %v, want ce_partitionkey kept", h)
			}
		case "structured":
			var e map[string]any
			if err := json.Unmarshal(got[0].Value, &e); err != nil || e["partitionkey"] != "customer-7" {
				t.Fatalf("structured: %s, want partitionkey kept in the event", got[0].Value)
			}
		}
	}
}
