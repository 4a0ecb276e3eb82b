package main

import (
	"encoding/json"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestCloudEventsKafkaBinding: kafka-source --format cloudevents reads
// the Kafka protocol binding: a binary-mode message (ce_* headers,
// content-type) and a structured one (the CloudEvents Go SDK's JSON
// encoding of an event, content-type application/cloudevents+json)
// become records of the data with ce_* headers beside the Kafka
// coordinates; a binary message without ce_type is a dead letter of stage
// decode saying so.
func TestCloudEventsKafkaBinding(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	kafkatest.CreateTopic(t, addr, "events", 1)
	e := cloudevents.NewEvent()
	e.SetID("s-1")
	e.SetSource("/sdk")
	e.SetType("com.example.structured")
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]int{"n": 2}); err != nil {
		t.Fatal(err)
	}
	structured, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	cl := kafkatest.Client(t, addr)
	if err := cl.ProduceSync(kafkatest.Ctx(t),
		&kgo.Record{Topic: "events", Key: []byte("k"), Value: []byte(`{"n":1}`), Headers: h("ce_specversion", "1.0", "ce_id", "b-1",
			"ce_source", "/kafka", "ce_type", "com.example.binary", "ce_partitionkey", "k", "content-type", "application/json")},
		&kgo.Record{Topic: "events", Value: structured, Headers: h("content-type", "application/cloudevents+json; charset=UTF-8")},
		&kgo.Record{Topic: "events", Value: []byte(`{"n":3}`), Headers: h("ce_specversion", "1.0", "ce_id", "b-3", "ce_source", "/kafka")},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--bus", dir, "--topic", "events", "--brokers", addr, "--kafka-topic", "events", "--format", "cloudevents")
	recs := connectortest.WaitTopic(t, dir, "events", 2, r)
	dead := connectortest.WaitTopic(t, dir, "events.dlq", 1, r)
	r.StopOK(t)
	connectortest.Equal(t, "values", connectortest.Values(recs), []string{`{"n":1}`, `{"n":2}`})
	for i, want := range []map[string]string{
		{"ce_id": "b-1", "ce_source": "/kafka", "ce_type": "com.example.binary", "ce_partitionkey": "k", "ce_datacontenttype": "application/json", HeaderTopic: "events"},
		{"ce_id": "s-1", "ce_source": "/sdk", "ce_type": "com.example.structured", "ce_specversion": "1.0", "ce_datacontenttype": "application/json"},
	} {
		for k, v := range want {
			if got := connectortest.Header(t, recs[i], k); got != v {
				t.Fatalf("record %d: header %s = %q, want %q (%v)", i, k, got, v, recs[i].Headers)
			}
		}
		if _, ok := recs[i].Header("content-type"); ok {
			t.Fatalf("record %d keeps content-type: %v", i, recs[i].Headers)
		}
	}
	if connectortest.Header(t, dead[0], connector.HeaderStage) != "decode" || !strings.Contains(connectortest.Header(t, dead[0], connector.HeaderError), "missing required attribute type") {
		t.Fatalf("dead letter %q %v", dead[0].Value, dead[0].Headers)
	}
}

// TestCloudEventsPartitionKey: the Kafka binding's key mapping on the way
// in: a binary or structured event without the partitionkey extension
// gets the Kafka message key as it (header ce_partitionkey), an event with
// its own keeps it; the record keeps the key. Written with franz-go.
func TestCloudEventsPartitionKey(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	kafkatest.CreateTopic(t, addr, "events", 1)
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	attrs := []string{"ce_specversion", "1.0", "ce_source", "/kafka", "ce_type", "t", "content-type", "application/json"}
	cl := kafkatest.Client(t, addr)
	if err := cl.ProduceSync(kafkatest.Ctx(t),
		&kgo.Record{Topic: "events", Key: []byte("customer-7"), Value: []byte(`{"n":1}`), Headers: h(append(attrs, "ce_id", "1")...)},
		&kgo.Record{Topic: "events", Key: []byte("customer-7"), Value: []byte(`{"n":2}`), Headers: h(append(attrs, "ce_id", "2", "ce_partitionkey", "own")...)},
		&kgo.Record{Topic: "events", Key: []byte("customer-8"), Value: []byte(`{"specversion":"1.0","id":"3","source":"/s","type":"t","data":{"n":3}}`), Headers: h("content-type", "application/cloudevents+json")},
		&kgo.Record{Topic: "events", Value: []byte(`{"n":4}`), Headers: h(append(attrs, "ce_id", "4")...)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--bus", dir, "--topic", "events", "--brokers", addr, "--kafka-topic", "events", "--format", "cloudevents")
	recs := connectortest.WaitTopic(t, dir, "events", 4, r)
	r.StopOK(t)
	for i, want := range []struct{ key, partitionkey string }{{"customer-7", "customer-7"}, {"customer-7", "own"}, {"customer-8", "customer-8"}, {"", ""}} {
		got, _ := recs[i].Header("ce_partitionkey")
		if string(recs[i].Key) != want.key || string(got) != want.partitionkey {
			t.Fatalf("record %d: key %q ce_partitionkey %q, want %q %q", i, recs[i].Key, got, want.key, want.partitionkey)
		}
	}
}
