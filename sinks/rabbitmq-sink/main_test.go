package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "rabbitmq-sink", cli.DirectionSink)
	for _, p := range []string{"url", "exchange", "exchange_type", "passive", "routing_key", "routing_key_from_key", "mandatory", "reconnect_attempts"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if !slices.Contains(md.Schema.Required, "url") {
		t.Errorf("required = %v, want url among them", md.Schema.Required)
	}
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly (secret): %v", md.Schema.Properties["url"])
	}
}

func orders(from, to int) []record.Record {
	out := make([]record.Record, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, record.Record{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	return out
}

// TestRoundTrip: 10,000 records reach the queue through the default
// exchange, in order, persistent, with their headers.
func TestRoundTrip(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "snk-roundtrip", nil)
	busDir := t.TempDir()
	recs := orders(0, 10000)
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	recs[0].Time = ts
	recs[0].Headers = []record.Header{{Key: "tenant", Value: []byte("acme")}, {Key: "amqp.content_type", Value: []byte("application/json")},
		{Key: "amqp.message_id", Value: []byte("m-0")}, {Key: "amqp.redelivered", Value: []byte("true")}}
	connectortest.Publish(t, busDir, "orders", recs...)
	stderr := connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--exchange", "", "--routing-key", queue,
		"--mandatory", "--from", "beginning", "--stop-at-end")
	ds := rabbitmqtest.Consume(t, queue, 10000, 30*time.Second)
	for i, d := range ds {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(d.Body) != want {
			t.Fatalf("message %d is %s, want %s (lost or reordered)", i, d.Body, want)
		}
		if d.DeliveryMode != amqp.Persistent {
			t.Fatalf("message %d is not persistent", i)
		}
	}
	d := ds[0]
	if d.Headers["tenant"] != "acme" || d.ContentType != "application/json" || d.MessageId != "m-0" || !d.Timestamp.Equal(ts) || len(d.Headers) != 1 {
		t.Errorf("first message: headers %v, content type %q, message id %q, timestamp %v", d.Headers, d.ContentType, d.MessageId, d.Timestamp)
	}
	if n := rabbitmqtest.Messages(t, queue); n != 0 {
		t.Errorf("%d more messages than records", n)
	}
	if dead := connectortest.ReadTopic(t, busDir, "orders.dlq"); len(dead) != 0 {
		t.Errorf("%d dead letters", len(dead))
	}
	if strings.Contains(stderr, "guest:guest") {
		t.Errorf("the log shows the password:\n%s", stderr)
	}
}

// TestMandatoryReturnsToDeadLetters: with --routing-key-from-key on a
// topic exchange, records whose key no queue is bound to come back and go
// to the dead-letter topic with the reply; the others reach the queue.
func TestMandatoryReturnsToDeadLetters(t *testing.T) {
	exchange := rabbitmqtest.Name("snk-x")
	queue := rabbitmqtest.Queue(t, "snk-bound", nil)
	ch := rabbitmqtest.Channel(t)
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rabbitmqtest.Channel(t).ExchangeDelete(exchange, false, false) })
	if err := ch.QueueBind(queue, "orders.*", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	busDir := t.TempDir()
	var recs []record.Record
	for i := 0; i < 100; i++ {
		key := "orders.eu"
		if i%10 == 3 {
			key = "lost.eu"
		}
		recs = append(recs, record.Record{Key: []byte(key), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	connectortest.Publish(t, busDir, "orders", recs...)
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--exchange", exchange, "--exchange-type", "topic", "--passive",
		"--routing-key-from-key", "--mandatory", "--from", "beginning", "--stop-at-end")
	ds := rabbitmqtest.Consume(t, queue, 90, 30*time.Second)
	dead := connectortest.ReadTopic(t, busDir, "orders.dlq")
	var got, gotDead []string
	for _, d := range ds {
		got = append(got, d.RoutingKey+" "+string(d.Body))
	}
	for _, r := range dead {
		gotDead = append(gotDead, string(r.Key)+" "+string(r.Value))
	}
	var want, wantDead []string
	for _, r := range recs {
		if string(r.Key) == "lost.eu" {
			wantDead = append(wantDead, string(r.Key)+" "+string(r.Value))
		} else {
			want = append(want, string(r.Key)+" "+string(r.Value))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("queue got %q,\nwant %q", got, want)
	}
	if !slices.Equal(gotDead, wantDead) {
		t.Fatalf("dead letters %q,\nwant %q", gotDead, wantDead)
	}
	h := func(k string) string { v, _ := dead[0].Header(k); return string(v) }
	if h("amqp.reply_code") != "312" || h("amqp.reply_text") != "NO_ROUTE" || h("amqp.exchange") != exchange || h("culvert.stage") != "sink" {
		t.Errorf("dead letter headers %v", dead[0].Headers)
	}
	if n := rabbitmqtest.Messages(t, queue); n != 0 {
		t.Errorf("%d more messages than records", n)
	}
}

// TestBrokerRestart: RabbitMQ restarts while the sink publishes; it
// reconnects by itself and every record reaches the queue (records of a
// batch that was not confirmed are published again: at-least-once).
func TestBrokerRestart(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "snk-restart", nil)
	busDir := t.TempDir()
	// Records keep coming before, during and after the outage, so that the
	// restart comes mid-stream: 50 every 25ms until 2,000 more came after
	// the restart.
	restarted := make(chan struct{})
	produced := make(chan int, 1)
	go func() {
		b, err := bus.Open(context.Background(), busDir)
		if err != nil {
			t.Error(err)
			produced <- 0
			return
		}
		defer b.Close()
		after := 0
		i := 0
		for ; after < 2000; i += 50 {
			if err := bus.Publish(context.Background(), b, "orders", orders(i, i+50)...); err != nil {
				t.Error(err)
				break
			}
			select {
			case <-restarted:
				after += 50
			default:
			}
			time.Sleep(25 * time.Millisecond)
		}
		produced <- i
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, _, stderr = connectortest.Run(t, ctx, app(), "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL,
			"--routing-key", queue, "--mandatory", "--from", "beginning")
	}()
	first := rabbitmqtest.Consume(t, queue, 1000, 30*time.Second)
	rabbitmqtest.RestartBroker(t, time.Second)
	close(restarted)
	total := <-produced
	seen := map[string]int{}
	for _, d := range first {
		seen[string(d.Body)]++
	}
	count := len(first)
	ch := rabbitmqtest.Channel(t)
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(60 * time.Second)
	for len(seen) < total {
		select {
		case d := <-deliveries:
			seen[string(d.Body)]++
			count++
		case <-done:
			t.Fatalf("the sink exited with %d after %d of %d records\n%s", code, len(seen), total, stderr)
		case <-timeout:
			t.Fatalf("%d of %d records reached the queue", len(seen), total)
		}
	}
	cancel()
	<-done
	if code != 0 {
		t.Errorf("exit %d\n%s", code, stderr)
	}
	for i := 0; i < total; i++ {
		if seen[fmt.Sprintf(`{"n":%d}`, i)] == 0 {
			t.Fatalf("record %d lost", i)
		}
	}
	t.Logf("%d messages for %d records: %d duplicates", count, total, count-total)
	if !strings.Contains(stderr, "reconnecting") {
		t.Errorf("no reconnection in the log:\n%s", stderr)
	}
	if dead := connectortest.ReadTopic(t, busDir, "orders.dlq"); len(dead) != 0 {
		t.Errorf("%d dead letters", len(dead))
	}
}

func TestBadUsage(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--routing-key", "q"}, "--url"},
		{[]string{"--url", "http://guest:s3cret@h"}, "--url"},
		{[]string{"--url", "amqp://guest:s3cret@h?heartbeat=x"}, "--url"},
		{[]string{"--url", rabbitmqtest.URL, "--routing-key", "q", "--routing-key-from-key"}, "--routing-key-from-key"},
		{[]string{"--url", rabbitmqtest.URL, "--passive", "--routing-key", "q"}, "--passive"},
		{[]string{"--url", rabbitmqtest.URL}, "--routing-key"},
		{[]string{"--url", rabbitmqtest.URL, "--exchange", "x", "--exchange-type", "big"}, "--exchange-type"},
	} {
		connectortest.BadOption(t, app(), tc.want, append(append([]string(nil), base...), tc.args...)...)
	}
}

// TestRuntimeErrors: wrong credentials, a missing exchange with --passive,
// an exchange of another type and an unreachable broker end with exit 1 and
// a clear message that never shows the password.
func TestRuntimeErrors(t *testing.T) {
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "t", orders(0, 1)...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:5672/"}, "check the user and password"},
		{[]string{"--url", rabbitmqtest.URL, "--exchange", rabbitmqtest.Name("missing"), "--passive"}, "NOT_FOUND"},
		{[]string{"--url", rabbitmqtest.URL, "--exchange", "amq.topic", "--exchange-type", "direct"}, "PRECONDITION_FAILED"},
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:1/", "--reconnect-attempts", "2"}, "giving up after 2 attempts"},
	} {
		connectortest.Exits(t, app(), 1, tc.want, append([]string{"--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end", "--routing-key", "q"}, tc.args...)...)
	}
}

// TestTLS: the sink publishes over amqps:// with a private CA and a client
// certificate.
func TestTLS(t *testing.T) {
	addr, _, q := rabbitmqtest.TLS(t)
	queue := rabbitmqtest.Queue(t, "snk-tls", nil)
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "orders", orders(0, 100)...)
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--url", "amqps://guest:guest@"+addr+"/?"+q, "--routing-key", queue,
		"--mandatory", "--from", "beginning", "--stop-at-end")
	ds := rabbitmqtest.Consume(t, queue, 100, 30*time.Second)
	if string(ds[99].Body) != `{"n":99}` {
		t.Errorf("last message %s", ds[99].Body)
	}
}
