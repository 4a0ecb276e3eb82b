package amqpbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/amqpbus"
	"github.com/culvert-dev/culvert/common/bus/bustest"
	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/record"
)

const server = "amqp://guest:guest@127.0.0.1:5672/"

// prefix keeps this run's queues apart; they are deleted at the end.
var prefix = func() string {
	var b [4]byte
	rand.Read(b[:])
	return "culverttest." + hex.EncodeToString(b[:]) + "."
}()

func TestMain(m *testing.M) { bustest.Main(m, cleanup) }

// cleanup deletes every queue of this run.
func cleanup() {
	out, err := exec.Command("rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cleanup: rabbitmqctl list_queues:", err)
		return
	}
	conn, err := amqp.Dial(server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range strings.Fields(string(out)) {
		if strings.HasPrefix(q, prefix) {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				fmt.Fprintln(os.Stderr, "cleanup:", q, err)
				if ch, err = conn.Channel(); err != nil {
					return
				}
			}
		}
	}
}

// requireRabbitMQ fails the test when RabbitMQ is not reachable.
func requireRabbitMQ(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", 2*time.Second)
	if err != nil {
		t.Fatalf("RabbitMQ is not running on 127.0.0.1:5672: run scripts/services.sh (%v)", err)
	}
	c.Close()
}

func newSpec(t *testing.T) string {
	t.Helper()
	requireRabbitMQ(t)
	var b [4]byte
	rand.Read(b[:])
	return server + "?takeover=200ms&prefix=" + prefix + hex.EncodeToString(b[:]) + "."
}

func TestConformance(t *testing.T) {
	bustest.Run(t, newSpec)
}

func TestRecordRoundTrip(t *testing.T) {
	b := bustest.Open(t, newSpec(t))
	ctx := context.Background()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	recs := []record.Record{
		{Key: []byte("k"), Value: []byte{}, Time: ts},
		{Key: []byte{0, 1, 0xff}, Value: []byte("v"), Headers: []record.Header{
			{Key: "rep", Value: []byte("1")}, {Key: "rep", Value: []byte("2")}, {Key: "bin", Value: []byte{0, 0xfe}}, {Key: "empty"},
		}},
		{Value: []byte("no key, no time")},
	}
	topic := "a.b *>c d/é"
	if err := bus.Publish(ctx, b, topic, recs...); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, topic, "g 1", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []bus.Message
	for len(got) < len(recs) {
		ms, err := sub.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ms...)
	}
	if m := got[0]; string(m.Key) != "k" || m.Value == nil || len(m.Value) != 0 || !m.Time.Equal(ts) || m.Offset != 0 {
		t.Fatalf("record 0: %+v", m)
	}
	if m := got[1]; string(m.Key) != "\x00\x01\xff" || len(m.Headers) != 4 || m.Headers[1].Key != "rep" ||
		string(m.Headers[1].Value) != "2" || string(m.Headers[2].Value) != "\x00\xfe" || m.Offset != 1 {
		t.Fatalf("record 1: %+v", m)
	}
	if m := got[2]; m.Key != nil || !m.Time.IsZero() || len(m.Headers) != 0 || string(m.Value) != "no key, no time" {
		t.Fatalf("record 2: %+v", m)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, spec := range []string{server + "?takeover=0s", server + "?max_bytes=-1", server + "?bogus=1"} {
		if b, err := bus.Open(context.Background(), spec); err == nil {
			b.Close()
			t.Errorf("%s: opened", spec)
		}
	}
}

func TestErrorsHideSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := bus.Open(ctx, "amqp://alice:s3cret@127.0.0.1:1/")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %v", err)
	}
	// A wrong password on the real server.
	_, err = bus.Open(ctx, "amqp://guest:s3cret@127.0.0.1:5672/")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v", err)
	}
}

// A topic is an ordinary stream queue: a plain AMQP client reads the records.
func TestTopicIsAStreamQueue(t *testing.T) {
	spec := newSpec(t)
	b := bustest.Open(t, spec)
	ctx := context.Background()
	if err := bus.Publish(ctx, b, "plain", record.Record{Key: []byte("k1"), Value: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	ch.Qos(10, 0, false)
	p := spec[strings.Index(spec, "prefix=")+len("prefix="):]
	ds, err := ch.Consume(p+"plain", "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		if string(d.Body) != `{"a":1}` || string(d.Headers["culvert-key"].([]byte)) != "k1" {
			t.Fatalf("delivery %q %v", d.Body, d.Headers)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
}

// TestServerRestart stops and starts the RabbitMQ application of the shared
// server (rabbitmqctl stop_app, start_app): a few seconds without RabbitMQ.
func TestServerRestart(t *testing.T) {
	bustest.RunRestart(t, newSpec(t), func(t *testing.T) { rabbitmqtest.RestartBroker(t, time.Second) })
}
