package main

import (
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestCloudEventsNATSBinding: nats-sink --format cloudevents writes the
// NATS binding in binary mode, as a nats.go subscriber on the machine's
// NATS server reads it: ce-* headers, content-type, the data as the
// payload.
func TestCloudEventsNATSBinding(t *testing.T) {
	url := natstest.Shared(t)
	nc, _ := natstest.Connect(t, url)
	subj := natstest.Unique("ce.")
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	dir := t.TempDir()
	connectortest.Publish(t, dir, "orders", record.Record{Value: []byte(`{"n":1}`), Headers: []record.Header{{Key: "ce_subject", Value: []byte("o-1")}}})
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", dir, "--url", url, "--subject", subj, "--from", "beginning", "--stop-at-end",
		"--format", "cloudevents", "--ce-source", "/shop", "--ce-type", "com.example.order")
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != `{"n":1}` {
		t.Fatalf("payload %q", m.Data)
	}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "orders:0", "ce-source": "/shop", "ce-type": "com.example.order",
		"ce-subject": "o-1", "content-type": "application/json"} {
		if got := m.Header.Get(k); got != v {
			t.Fatalf("header %s = %q, want %q (%v)", k, got, v, m.Header)
		}
	}
}
