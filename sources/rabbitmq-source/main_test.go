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
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "rabbitmq-source", cli.DirectionSource)
	for _, p := range []string{"url", "queue", "queue_type", "exchange", "exchange_type", "binding_key", "passive", "prefetch", "consumer_tag", "reconnect_attempts"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
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

// TestRoundTrip: 10,000 messages reach the topic in order, with routing
// key, properties and headers, and are all acknowledged.
func TestRoundTrip(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "src-roundtrip", nil)
	ch := rabbitmqtest.Channel(t)
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	first := amqp.Publishing{Body: []byte(`{"n":0}`), ContentType: "application/json", MessageId: "m-0", CorrelationId: "c-0",
		Timestamp: ts, Headers: amqp.Table{"tenant": "acme", "attempt": int32(3)}}
	msgs := append([]amqp.Publishing{first}, orders(1, 10000)...)
	rabbitmqtest.Publish(t, ch, "", queue, msgs...)

	busDir := t.TempDir()
	r := start(t, "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--queue", queue, "--prefetch", "500")
	connectortest.WaitTopic(t, busDir, "orders", 10000, r)
	stderr := r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "orders")
	if len(recs) != 10000 {
		t.Fatalf("%d records, want 10000", len(recs))
	}
	for i, rec := range recs {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(rec.Value) != want {
			t.Fatalf("record %d is %s, want %s (lost or reordered)", i, rec.Value, want)
		}
		if string(rec.Key) != queue {
			t.Fatalf("record %d key %q, want the routing key %q", i, rec.Key, queue)
		}
	}
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
	if _, ok := recs[1].Header("amqp.redelivered"); ok {
		t.Errorf("a first delivery is marked redelivered")
	}
	if n := rabbitmqtest.Messages(t, queue); n != 0 {
		t.Errorf("%d messages left in the queue: not all were acknowledged", n)
	}
	if strings.Contains(stderr, "guest:guest") {
		t.Errorf("the log shows the password:\n%s", stderr)
	}
}

// TestBindingsAndPoison: a queue bound to an exchange by two patterns; a
// message the transform cannot handle goes to the dead-letter topic and is
// acknowledged (never requeued), the others reach the topic.
func TestBindingsAndPoison(t *testing.T) {
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
	if v, _ := dead[0].Header("culvert.error"); !strings.Contains(string(v), "JSON") {
		t.Errorf("culvert.error %q", v)
	}
	if v, _ := dead[0].Header("amqp.exchange"); string(v) != exchange {
		t.Errorf("the dead letter lost its amqp.exchange header: %v", dead[0].Headers)
	}
	if n := rabbitmqtest.Messages(t, queue); n != 0 {
		t.Errorf("%d messages left in the queue: the poison message was requeued", n)
	}
}

// TestBrokerRestart: RabbitMQ restarts mid-stream; the source reconnects by
// itself and every message reaches the topic (redelivered ones may come
// twice, marked amqp.redelivered).
func TestBrokerRestart(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "src-restart", nil)
	const total = 4000
	rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue, orders(0, total)...)
	busDir := t.TempDir()
	// Small batches, so that the restart comes mid-stream.
	r := start(t, "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--queue", queue,
		"--prefetch", "20", "--batch-size", "20", "--linger", "0s")
	connectortest.WaitTopic(t, busDir, "orders", 300, r)
	rabbitmqtest.RestartBroker(t, time.Second)
	if n := len(connectortest.ReadTopic(t, busDir, "orders")); n >= total {
		t.Fatalf("every message was on the topic before the broker came back: the restart was not mid-stream")
	} else {
		t.Logf("%d records on the topic when the broker came back", n)
	}
	deadline := time.Now().Add(60 * time.Second)
	var recs []record.Record
	for {
		recs = connectortest.ReadTopic(t, busDir, "orders")
		if distinct(recs) == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stderr := r.StopOK(t)
	recs = connectortest.ReadTopic(t, busDir, "orders")
	seen := map[string]int{}
	for _, rec := range recs {
		seen[string(rec.Value)]++
	}
	for i := 0; i < total; i++ {
		if seen[fmt.Sprintf(`{"n":%d}`, i)] == 0 {
			t.Fatalf("message %d lost (%d records, %d distinct)", i, len(recs), len(seen))
		}
	}
	dups := len(recs) - len(seen)
	for v, n := range seen {
		if n > 1 {
			// A duplicate is a redelivery: its later copy says so.
			last := -1
			for i, rec := range recs {
				if string(rec.Value) == v {
					last = i
				}
			}
			if _, ok := recs[last].Header("amqp.redelivered"); !ok {
				t.Errorf("%s came %d times but its last copy is not marked amqp.redelivered", v, n)
			}
		}
	}
	t.Logf("%d records for %d messages: %d duplicates (redelivered after the restart)", len(recs), total, dups)
	if !strings.Contains(stderr, "reconnecting") {
		t.Errorf("no reconnection in the log:\n%s", stderr)
	}
	if n := rabbitmqtest.Messages(t, queue); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}
}

func distinct(recs []record.Record) int {
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		seen[string(r.Value)] = true
	}
	return len(seen)
}

func TestBadUsage(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--queue", "q"}, "--url"},
		{[]string{"--url", rabbitmqtest.URL}, "--queue"},
		{[]string{"--url", "http://guest:s3cret@h", "--queue", "q"}, "--url"},
		{[]string{"--url", "amqp://guest:s3cret@h?tls=maybe", "--queue", "q"}, "--url"},
		{[]string{"--url", rabbitmqtest.URL, "--queue", "q", "--binding-key", "a"}, "--binding-key"},
		{[]string{"--url", rabbitmqtest.URL, "--queue", "q", "--prefetch", "0"}, "--prefetch"},
		{[]string{"--url", rabbitmqtest.URL, "--queue", "q", "--queue-type", "stream"}, "--queue-type"},
		{[]string{"--url", rabbitmqtest.URL, "--queue", "q", "--passive", "--queue-type", "quorum"}, "--queue-type"},
		{[]string{"--url", rabbitmqtest.URL, "--queue", "q", "--exchange", "x", "--exchange-type", "big"}, "--exchange-type"},
	} {
		connectortest.BadOption(t, app(), tc.want, append(append([]string(nil), base...), tc.args...)...)
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
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:1/", "--queue", "q", "--reconnect-attempts", "2"}, "giving up after 2 attempts"},
	} {
		connectortest.Exits(t, app(), 1, tc.want, append([]string{"--topic", "t", "--bus", t.TempDir()}, tc.args...)...)
	}
}

// TestTLS: the source consumes over amqps:// with a private CA and a
// client certificate.
func TestTLS(t *testing.T) {
	addr, _, q := rabbitmqtest.TLS(t)
	queue := rabbitmqtest.Queue(t, "src-tls", nil)
	rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue, orders(0, 100)...)
	busDir := t.TempDir()
	r := start(t, "--topic", "orders", "--bus", busDir, "--url", "amqps://guest:guest@"+addr+"/?"+q, "--queue", queue, "--passive")
	connectortest.WaitTopic(t, busDir, "orders", 100, r)
	r.StopOK(t)
	if n := len(connectortest.ReadTopic(t, busDir, "orders")); n != 100 {
		t.Errorf("%d records, want 100", n)
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
