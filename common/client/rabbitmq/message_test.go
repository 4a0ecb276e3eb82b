package rabbitmq

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/record"
)

func TestRecordAndPublishing(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := amqp.Delivery{
		RoutingKey: "orders.eu", Exchange: "shop", Redelivered: true, Body: []byte(`{"a":1}`),
		ContentType: "application/json", MessageId: "m-1", CorrelationId: "c-1", Timestamp: ts, Priority: 3, DeliveryMode: 2,
		Headers: amqp.Table{"tenant": "acme", "n": int32(7), "ok": true, "price": amqp.Decimal{Scale: 2, Value: -105}, "raw": []byte{0xff}},
	}
	r := Record(&d)
	if string(r.Key) != "orders.eu" || string(r.Value) != `{"a":1}` || !r.Time.Equal(ts) {
		t.Fatalf("record %+v", r)
	}
	want := map[string]string{
		"tenant": "acme", "n": "7", "ok": "true", "price": "-1.05", "raw": "\xff",
		HeaderContentType: "application/json", HeaderMessageID: "m-1", HeaderCorrelationID: "c-1",
		HeaderTimestamp: "2026-01-02T03:04:05Z", HeaderPriority: "3", HeaderDeliveryMode: "2",
		HeaderExchange: "shop", HeaderRedelivered: "true",
	}
	if len(r.Headers) != len(want) {
		t.Errorf("headers %v", r.Headers)
	}
	for k, v := range want {
		if got, ok := r.Header(k); !ok || string(got) != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}

	// Back to a message: properties restored, delivery details dropped.
	p := Publishing(&r)
	if p.ContentType != "application/json" || p.MessageId != "m-1" || p.CorrelationId != "c-1" || !p.Timestamp.Equal(ts) ||
		p.Priority != 3 || p.DeliveryMode != amqp.Persistent || string(p.Body) != `{"a":1}` {
		t.Errorf("publishing %+v", p)
	}
	if len(p.Headers) != 5 || p.Headers["tenant"] != "acme" || p.Headers["n"] != "7" || string(p.Headers["raw"].([]byte)) != "\xff" {
		t.Errorf("application headers %v", p.Headers)
	}

	// A bare record makes a bare persistent message.
	p = Publishing(&record.Record{Value: []byte("x")})
	if p.Headers != nil || p.DeliveryMode != amqp.Persistent || !p.Timestamp.IsZero() {
		t.Errorf("bare publishing %+v", p)
	}
}
