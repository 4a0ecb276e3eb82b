package main

import (
	"path/filepath"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestCloudEventsAMQPBinding: rabbitmq-source --format cloudevents reads
// the AMQP binding from the machine's RabbitMQ: binary-mode messages whose
// application properties are cloudEvents_* (or the older cloudEvents:*)
// and whose content-type property is the data's, and a structured one,
// become records of the data with ce_* headers.
func TestCloudEventsAMQPBinding(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "ce", nil)
	rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue,
		amqp.Publishing{Body: []byte(`{"n":1}`), ContentType: "application/json", Headers: amqp.Table{"cloudEvents_specversion": "1.0",
			"cloudEvents_id": "a-1", "cloudEvents_source": "/amqp", "cloudEvents_type": "com.example.binary", "other": "x"}},
		amqp.Publishing{Body: []byte("plain"), ContentType: "text/plain", Headers: amqp.Table{"cloudEvents:specversion": "1.0",
			"cloudEvents:id": "a-2", "cloudEvents:source": "/amqp", "cloudEvents:type": "com.example.colon"}},
		amqp.Publishing{Body: []byte(`{"specversion":"1.0","id":"a-3","source":"/amqp","type":"com.example.structured","data":{"n":3}}`),
			ContentType: "application/cloudevents+json"},
	)
	dir := filepath.Join(t.TempDir(), "bus")
	r := connectortest.Start(t, app(), "--topic", "in", "--bus", dir, "--url", rabbitmqtest.URL, "--queue", queue, "--passive", "--format", "cloudevents")
	recs := connectortest.WaitTopic(t, dir, "in", 3, r)
	r.StopOK(t)
	connectortest.Equal(t, "values", connectortest.Values(recs), []string{`{"n":1}`, "plain", `{"n":3}`})
	for i, want := range []map[string]string{
		{"ce_specversion": "1.0", "ce_id": "a-1", "ce_source": "/amqp", "ce_type": "com.example.binary", "ce_datacontenttype": "application/json", "other": "x"},
		{"ce_id": "a-2", "ce_type": "com.example.colon", "ce_datacontenttype": "text/plain"},
		{"ce_id": "a-3", "ce_type": "com.example.structured"},
	} {
		for k, v := range want {
			if got := connectortest.Header(t, recs[i], k); got != v {
				t.Fatalf("record %d: header %s = %q, want %q (%v)", i, k, got, v, recs[i].Headers)
			}
		}
		for _, h := range recs[i].Headers {
			if h.Key == "amqp.content_type" || h.Key == "cloudEvents_id" || h.Key == "cloudEvents:id" {
				t.Fatalf("record %d keeps %s: %v", i, h.Key, recs[i].Headers)
			}
		}
	}
}
