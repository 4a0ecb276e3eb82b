package main

import (
	"strings"
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
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startRabbitMQ,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--queue", "q"}, Option: "--url"},
			{Args: []string{"--url", rabbitmqtest.URL}, Option: "--queue"},
			{Args: []string{"--url", "http://guest:s3cret@h", "--queue", "q"}, Option: "--url"},
			{Args: []string{"--url", "amqp://guest:s3cret@h?tls=maybe", "--queue", "q"}, Option: "--url"},
			{Args: []string{"--url", rabbitmqtest.URL, "--queue", "q", "--binding-key", "a"}, Option: "--binding-key"},
			{Args: []string{"--url", rabbitmqtest.URL, "--queue", "q", "--prefetch", "0"}, Option: "--prefetch"},
			{Args: []string{"--url", rabbitmqtest.URL, "--queue", "q", "--queue-type", "stream"}, Option: "--queue-type"},
			{Args: []string{"--url", rabbitmqtest.URL, "--queue", "q", "--passive", "--queue-type", "quorum"}, Option: "--queue-type"},
			{Args: []string{"--url", rabbitmqtest.URL, "--queue", "q", "--exchange", "x", "--exchange-type", "big"}, Option: "--exchange-type"},
		},
		// Small prefetches, so that SIGTERM and the restart come mid-stream.
		RestartArgs: []string{"--prefetch", "20"},
	})
}

// startRabbitMQ declares a queue of the test's own on the shared RabbitMQ.
func startRabbitMQ(t *testing.T, need connectortest.Need) *connectortest.System {
	queue := rabbitmqtest.Queue(t, "src", nil)
	url := rabbitmqtest.URL
	args := []string{"--queue", queue}
	if need.TLS {
		addr, _, q := rabbitmqtest.TLS(t)
		url = "amqps://guest:guest@" + addr + "/?" + q
		args = append(args, "--passive")
	}
	return &connectortest.System{
		Args:   append(args, "--url", url),
		Secret: "guest:guest",
		Produce: func(t testing.TB, values ...string) {
			msgs := make([]amqp.Publishing, len(values))
			for i, v := range values {
				msgs[i] = amqp.Publishing{Body: []byte(v), ContentType: "application/json"}
			}
			// A channel of its own: the broker may have restarted since.
			rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue, msgs...)
		},
		Restart: func(t testing.TB) { rabbitmqtest.RestartBroker(t, time.Second) },
		Pending: func(t testing.TB) int { return rabbitmqtest.Messages(t, queue) },
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				for i, rec := range recs {
					if string(rec.Key) != queue {
						t.Fatalf("record %d key %q, want the routing key %q", i, rec.Key, queue)
					}
				}
				if _, ok := recs[1].Header("amqp.redelivered"); ok {
					t.Errorf("a first delivery is marked redelivered")
				}
			case connectortest.Poison:
				if k := string(recs[0].Key); k != queue {
					t.Errorf("the dead letter lost its routing key: key %q, want %q", k, queue)
				}
			case connectortest.Restart:
				if !strings.Contains(stderr, "reconnecting") {
					t.Errorf("no reconnection in the log:\n%s", stderr)
				}
				redeliveriesMarked(t, recs)
			case connectortest.Stop:
				redeliveriesMarked(t, recs)
			}
		},
	}
}

// redeliveriesMarked fails the test unless the last copy of every record
// that came more than once is marked amqp.redelivered: a duplicate is a
// redelivery.
func redeliveriesMarked(t testing.TB, recs []record.Record) {
	t.Helper()
	last := map[string]int{}
	count := map[string]int{}
	for i, rec := range recs {
		last[string(rec.Value)] = i
		count[string(rec.Value)]++
	}
	for v, n := range count {
		if n < 2 {
			continue
		}
		if _, ok := recs[last[v]].Header("amqp.redelivered"); !ok {
			t.Errorf("%s came %d times but its last copy is not marked amqp.redelivered", v, n)
		}
	}
}
