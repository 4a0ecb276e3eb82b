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

func TestAdmin(t *testing.T) { bustest.RunAdmin(t, newSpec) }

// TestRecordExact: an empty value stays empty, the time keeps its
// nanoseconds, and RabbitMQ stream offsets start at 0.
func TestRecordExact(t *testing.T) { bustest.RunRecordExact(t, newSpec(t), 0) }

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

// TestMembersJoinANewTopicAtOnce: three processes' members joining the
// group of a topic nobody declared yet, at the same moment. A stream that
// was just declared can refuse a consumer with a connection error (541)
// while it starts: a member's join must ride that out, never fail
// (a scale-out run saw one of three sinks exit with 504 "channel/connection
// is not open" 113 ms after it started).
func TestMembersJoinANewTopicAtOnce(t *testing.T) {
	for round := range 8 {
		spec := newSpec(t)
		topic := fmt.Sprintf("join-%d", round)
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				b, err := bus.Open(ctx, spec)
				if err != nil {
					errs <- err
					return
				}
				defer b.Close()
				s, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Start: bus.StartBeginning})
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: joining: %v", round, err)
			}
		}
	}
}

// TestRegistryIsShared: a topic one bus made is listed by another bus
// (another process) with the retention it was declared with; deleted by
// that other bus, it is made again by the first one's next publishes.
func TestRegistryIsShared(t *testing.T) {
	spec := newSpec(t)
	b := bustest.Open(t, spec+"&max_age=2D")
	a := bustest.AdminOf(t, bustest.Open(t, spec))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publish := func() error { return bus.Publish(ctx, b, "shared", record.Record{Value: []byte("v")}) }
	listed := func() (bus.TopicInfo, bool) {
		t.Helper()
		all, err := a.Topics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range all {
			if ti.Name == "shared" {
				return ti, true
			}
		}
		return bus.TopicInfo{}, false
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}
	ti, ok := listed()
	if want := (bus.TopicConfig{RetentionAge: 48 * time.Hour, RetentionBytes: -1}); !ok || ti.Records != 1 || ti.Retention != want {
		t.Fatalf("the other bus lists %+v (listed: %v), want 1 record and retention %+v", ti, ok, want)
	}
	if err := a.DeleteTopic(ctx, "shared", false); err != nil {
		t.Fatal(err)
	}
	if _, ok := listed(); ok {
		t.Fatal("a deleted topic is listed")
	}
	if err := publish(); err != nil {
		t.Logf("the publish that met the deletion: %v", err)
	}
	if err := publish(); err != nil {
		t.Fatalf("publishing again: %v", err)
	}
	if ti, ok := listed(); !ok || ti.Records < 1 || ti.Records > 2 {
		t.Fatalf("made again: %+v (listed: %v)", ti, ok)
	}
}
