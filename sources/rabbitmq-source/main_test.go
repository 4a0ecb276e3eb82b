package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "rabbitmq-source", cli.DirectionSource)
	md.HasProperties(t, "url", "queue", "queue_type", "exchange", "exchange_type", "binding_key", "passive", "prefetch", "consumer_tag", "max_retries", "username", "password", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify")
	if !slices.Contains(md.Schema.Required, "url") || !slices.Contains(md.Schema.Required, "queue") {
		t.Errorf("required = %v, want url and queue among them", md.Schema.Required)
	}
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly (secret): %v", md.Schema.Properties["url"])
	}
}

// start runs the connector until Stop; at the end of the test, it must
// stop with exit status 0.
func start(t *testing.T, args ...string) *connectortest.Running {
	t.Helper()
	r := connectortest.Start(t, app(), args...)
	t.Cleanup(func() { r.StopOK(t) })
	return r
}

func orders(from, to int) []amqp.Publishing {
	out := make([]amqp.Publishing, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, amqp.Publishing{Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), ContentType: "application/json"})
	}
	return out
}

// TestPropertiesAndHeaders: a message's routing key, properties and
// headers come along as the record's key, time and headers (the
// acceptance suite checks the 10,000-message round trip).
func TestPropertiesAndHeaders(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "src-props", nil)
	ch := rabbitmqtest.Channel(t)
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	first := amqp.Publishing{Body: []byte(`{"n":0}`), ContentType: "application/json", MessageId: "m-0", CorrelationId: "c-0",
		Timestamp: ts, Headers: amqp.Table{"tenant": "acme", "attempt": int32(3)}}
	rabbitmqtest.Publish(t, ch, "", queue, append([]amqp.Publishing{first}, orders(1, 2)...)...)

	busDir := t.TempDir()
	r := start(t, "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--queue", queue)
	connectortest.WaitTopic(t, busDir, "orders", 2, r)
	r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "orders")
	h := func(k string) string { v, _ := recs[0].Header(k); return string(v) }
	for k, want := range map[string]string{"tenant": "acme", "attempt": "3", "amqp.content_type": "application/json",
		"amqp.message_id": "m-0", "amqp.correlation_id": "c-0", "amqp.timestamp": "2026-05-06T07:08:09Z", "amqp.delivery_mode": "2"} {
		if got := h(k); got != want {
			t.Errorf("header %s = %q, want %q (headers %v)", k, got, want, recs[0].Headers)
		}
	}
	if !recs[0].Time.Equal(ts) {
		t.Errorf("record time %v, want the timestamp property %v", recs[0].Time, ts)
	}
}

// TestBindings: a queue bound to an exchange by two patterns gets what
// either pattern matches; a dead letter keeps the amqp.exchange header
// (the acceptance suite checks the poison message itself).
func TestBindings(t *testing.T) {
	exchange := rabbitmqtest.Name("src-x")
	queue := rabbitmqtest.Name("src-bound")
	rabbitmqtest.DeleteAfter(t, queue)
	t.Cleanup(func() { rabbitmqtest.Channel(t).ExchangeDelete(exchange, false, false) })
	busDir := t.TempDir()
	r := start(t, "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--queue", queue,
		"--exchange", exchange, "--binding-key", "orders.*", "--binding-key", "refunds.#", "--map", ".n += 1")
	// Wait for the queue and its bindings.
	ch := rabbitmqtest.Channel(t)
	for i := 0; ; i++ {
		if _, err := rabbitmqtest.Channel(t).QueueDeclarePassive(queue, true, false, false, false, nil); err == nil {
			break
		}
		if i > 100 {
			t.Fatal("the queue was never declared")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	rabbitmqtest.Publish(t, ch, exchange, "orders.eu", rabbitmqtest.Bodies(`{"n":1}`, "not json", `{"n":2}`)...)
	rabbitmqtest.Publish(t, ch, exchange, "refunds.eu.de", rabbitmqtest.Bodies(`{"n":3}`)...)
	rabbitmqtest.Publish(t, ch, exchange, "other", rabbitmqtest.Bodies(`{"n":99}`)...)
	recs := connectortest.WaitTopic(t, busDir, "orders", 3, r)
	dead := connectortest.WaitTopic(t, busDir, "orders.dlq", 1, r)
	r.StopOK(t)
	var got []string
	for _, rec := range recs {
		got = append(got, string(rec.Key)+" "+string(rec.Value))
	}
	if want := []string{`orders.eu {"n":2}`, `orders.eu {"n":3}`, `refunds.eu.de {"n":4}`}; !slices.Equal(got, want) {
		t.Errorf("records %q, want %q", got, want)
	}
	if len(dead) != 1 || string(dead[0].Value) != "not json" {
		t.Fatalf("dead letters %v", dead)
	}
	if v, _ := dead[0].Header("amqp.exchange"); string(v) != exchange {
		t.Errorf("the dead letter lost its amqp.exchange header: %v", dead[0].Headers)
	}
}

// TestRuntimeErrors: wrong credentials, a missing queue with --passive and
// an unreachable broker end with exit 1 and a clear message that never
// shows the password.
func TestRuntimeErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:5672/", "--queue", "q"}, "check the user and password"},
		{[]string{"--url", "amqp://guest:guest@127.0.0.1:5672/", "--queue", rabbitmqtest.Name("missing"), "--passive"}, "NOT_FOUND"},
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:1/", "--queue", "q", "--max-retries", "1"}, "giving up after 2 failed attempts (--max-retries 1)"},
	} {
		connectortest.Exits(t, app(), 1, tc.want, append([]string{"--topic", "t", "--bus", t.TempDir()}, tc.args...)...)
	}
}

// TestChannelLoss: the queue is deleted under the consumer (RabbitMQ
// cancels it); the source reconnects, declares the queue again and goes on.
func TestChannelLoss(t *testing.T) {
	queue := rabbitmqtest.Name("src-lost")
	rabbitmqtest.DeleteAfter(t, queue)
	busDir := t.TempDir()
	r := start(t, "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--queue", queue)
	ch := rabbitmqtest.Channel(t)
	waitQueue := func() {
		for i := 0; ; i++ {
			if _, err := rabbitmqtest.Channel(t).QueueDeclarePassive(queue, true, false, false, false, nil); err == nil {
				return
			}
			if i > 200 {
				t.Fatal("the queue was never declared")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitQueue()
	rabbitmqtest.Publish(t, ch, "", queue, orders(0, 10)...)
	connectortest.WaitTopic(t, busDir, "orders", 10, r)
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	waitQueue()
	rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue, orders(10, 20)...)
	recs := connectortest.WaitTopic(t, busDir, "orders", 20, r)
	stderr := r.StopOK(t)
	for i, rec := range recs {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(rec.Value) != want {
			t.Errorf("record %d is %s, want %s", i, rec.Value, want)
		}
	}
	if !strings.Contains(stderr, "lost the rabbitmq consumer") {
		t.Errorf("the lost consumer is not in the log:\n%s", stderr)
	}
}
