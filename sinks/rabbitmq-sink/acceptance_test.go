package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite against the RabbitMQ
// of the machine (a TLS terminator in front of it for TLS; restarted with
// rabbitmqctl for the Restart scenario).
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startRabbitMQ,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--routing-key", "q"}, Option: "--url"},
			{Args: []string{"--url", "http://guest:s3cret@h"}, Option: "--url"},
			{Args: []string{"--url", "amqp://guest:s3cret@h?heartbeat=x"}, Option: "--url"},
			{Args: []string{"--url", rabbitmqtest.URL, "--routing-key", "q", "--routing-key-from-key"}, Option: "--routing-key-from-key"},
			{Args: []string{"--url", rabbitmqtest.URL, "--passive", "--routing-key", "q"}, Option: "--passive"},
			{Args: []string{"--url", rabbitmqtest.URL}, Option: "--routing-key"},
			{Args: []string{"--url", rabbitmqtest.URL, "--exchange", "x", "--exchange-type", "big"}, Option: "--exchange-type"},
		},
	})
}

// startRabbitMQ declares a queue of the test's own on the shared RabbitMQ
// that the sink publishes to through the default exchange; for the Poison
// scenario, a topic exchange that routes orders.* to the queue, and
// records keyed lost.eu that it cannot route.
func startRabbitMQ(t *testing.T, need connectortest.Need) *connectortest.System {
	queue := rabbitmqtest.Queue(t, "snk", nil)
	url := rabbitmqtest.URL
	if need.TLS {
		addr, _, q := rabbitmqtest.TLS(t)
		url = "amqps://guest:guest@" + addr + "/?" + q
	}
	q := &queueReader{queue: queue}
	sys := &connectortest.System{
		Args:     []string{"--url", url, "--routing-key", queue, "--mandatory"},
		Secret:   "guest:guest",
		Received: q.received,
		Restart:  func(t testing.TB) { rabbitmqtest.RestartBroker(t, time.Second) },
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				if n := q.notPersistent(); n != 0 {
					t.Errorf("%d messages are not persistent", n)
				}
			case connectortest.Restart:
				if !strings.Contains(stderr, "reconnecting") {
					t.Errorf("no reconnection in the log:\n%s", stderr)
				}
			}
		},
	}
	if need.Scenario == connectortest.Poison {
		exchange := rabbitmqtest.Name("snk-x")
		ch := rabbitmqtest.Channel(t)
		if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rabbitmqtest.Channel(t).ExchangeDelete(exchange, false, false) })
		if err := ch.QueueBind(queue, "orders.*", exchange, false, nil); err != nil {
			t.Fatal(err)
		}
		sys.Args = []string{"--url", url, "--exchange", exchange, "--exchange-type", "topic", "--passive", "--routing-key-from-key", "--mandatory"}
		keyed := func(key string) func(int) record.Record {
			return func(n int) record.Record {
				return record.Record{Key: []byte(key), Value: fmt.Appendf(nil, `{"n":%d}`, n)}
			}
		}
		sys.Record, sys.Poison = keyed("orders.eu"), keyed("lost.eu")
		sys.Check = func(t testing.TB, s connectortest.Scenario, dead []record.Record, _ string) {
			for _, d := range dead {
				h := func(k string) string { v, _ := d.Header(k); return string(v) }
				if string(d.Key) != "lost.eu" || h("amqp.reply_code") != "312" || h("amqp.reply_text") != "NO_ROUTE" ||
					h("amqp.exchange") != exchange || h("culvert.stage") != "sink" {
					t.Errorf("dead letter %q: key %q, headers %v", d.Value, d.Key, d.Headers)
				}
			}
			for i, k := range q.keys() {
				if k != "orders.eu" {
					t.Errorf("message %d has routing key %q, want orders.eu", i, k)
				}
			}
		}
	}
	return sys
}

// queueReader takes the messages of a queue as they come, through a
// connection it opens again after a broker restart.
type queueReader struct {
	queue string
	mu    sync.Mutex
	ch    *amqp.Channel
	got   []amqp.Delivery
}

// received takes what the queue holds and returns the bodies of every
// message taken so far.
func (q *queueReader) received(t testing.TB) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.ch == nil || q.ch.IsClosed() {
			q.ch = rabbitmqtest.Channel(t)
		}
		d, ok, err := q.ch.Get(q.queue, true)
		if err != nil {
			q.ch = nil // the broker is restarting: next time
			break
		}
		if !ok {
			break
		}
		q.got = append(q.got, d)
	}
	out := make([]string, len(q.got))
	for i, d := range q.got {
		out[i] = string(d.Body)
	}
	return out
}

func (q *queueReader) notPersistent() (n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range q.got {
		if d.DeliveryMode != amqp.Persistent {
			n++
		}
	}
	return n
}

func (q *queueReader) keys() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, len(q.got))
	for i, d := range q.got {
		out[i] = d.RoutingKey
	}
	return out
}
