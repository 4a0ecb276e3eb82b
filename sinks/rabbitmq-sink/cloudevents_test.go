package main

import (
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestCloudEventsAMQPBinding: rabbitmq-sink --format cloudevents writes
// the AMQP binding in binary mode, as amqp091-go reads it from the
// machine's RabbitMQ: application properties (headers) cloudEvents_*, the
// content-type property, the data as the body.
func TestCloudEventsAMQPBinding(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "ce", nil)
	dir := t.TempDir()
	connectortest.Publish(t, dir, "orders", record.Record{Value: []byte(`{"n":1}`)})
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", dir, "--url", rabbitmqtest.URL, "--routing-key", queue, "--from", "beginning", "--stop-at-end",
		"--format", "cloudevents", "--ce-source", "/shop", "--ce-type", "com.example.order")
	d := rabbitmqtest.Consume(t, queue, 1, 10*time.Second)[0]
	if string(d.Body) != `{"n":1}` || d.ContentType != "application/json" {
		t.Fatalf("body %q content type %q", d.Body, d.ContentType)
	}
	for k, v := range map[string]string{"cloudEvents_specversion": "1.0", "cloudEvents_id": "orders:0", "cloudEvents_source": "/shop", "cloudEvents_type": "com.example.order"} {
		if got, _ := d.Headers[k].(string); got != v {
			t.Fatalf("header %s = %v, want %q (%v)", k, d.Headers[k], v, d.Headers)
		}
	}
	if _, ok := d.Headers["amqp.content_type"]; ok {
		t.Fatalf("the content type is a header: %v", d.Headers)
	}
}
