package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	kafkaclient "github.com/culvert-dev/culvert/common/client/kafka"
	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite on a kfake cluster
// of the test's own (restartable with its data for the Restart scenario;
// wanting TLS and SASL SCRAM-SHA-512 for TLS), writing to a topic of one
// partition, so that all its records have one order.
func TestAcceptance(t *testing.T) {
	base := []string{"--topic", "t", "--kafka-topic", "k", "--password", "s3cret"}
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startKafka,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--brokers", "h"}, Option: "kafka-topic"},
			{Args: append(base, "--username", "u"), Option: "brokers"},
			{Args: append(base, "--brokers", "h"), Option: "username"},
			{Args: append(base, "--brokers", "h", "--username", "u", "--sasl-mechanism", "gssapi"), Option: "sasl-mechanism"},
			{Args: append(base, "--brokers", "h", "--username", "u", "--compression", "brotli"), Option: "compression"},
			{Args: append(base, "--brokers", "h", "--username", "u", "--tls-cert", "c.pem"), Option: "tls-cert"},
			{Args: append(base, "--brokers", "h", "--username", "u", "--batch-max-bytes", "10"), Option: "batch-max-bytes"},
		},
	})
}

// startKafka starts kfake with the topic out of one partition.
func startKafka(t *testing.T, need connectortest.Need) *connectortest.System {
	var addr string
	var k *kafkatest.Restartable
	var args []string
	var reader *kgo.Client
	switch {
	case need.Restart:
		k = kafkatest.StartRestartable(t)
		addr = k.Addr
		// Writes fail within the 3s of downtime, and the runner retries them.
		args = []string{"--delivery-timeout", "1s"}
	case need.TLS:
		caFile, serverTLS := kafkatest.Certs(t, t.TempDir())
		_, port, _ := net.SplitHostPort(kafkatest.Start(t, kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "culvert", "pa55word")))
		addr = "localhost:" + port
		args = []string{"--tls-ca", caFile, "--sasl-mechanism", "scram-sha-512", "--username", "culvert", "--password", "pa55word"}
		cfg := (&kafkaclient.Options{Brokers: []string{addr}, Options: tlsfiles.Options{TLSCA: caFile}, SASLMechanism: "scram-sha-512", Username: "culvert", Password: "pa55word"}).Config("")
		cl, err := kafkaclient.NewClient(kafkatest.Ctx(t), cfg, "check", kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		reader = cl
	default:
		addr = kafkatest.Start(t)
	}
	if reader == nil {
		kafkatest.CreateTopic(t, addr, "out", 1)
		reader = kafkatest.Client(t, addr, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	} else if _, err := kadm.NewClient(reader).CreateTopic(kafkatest.Ctx(t), 1, 1, nil, "out"); err != nil {
		t.Fatal(err)
	}
	r := &topicReader{cl: reader}
	sys := &connectortest.System{
		Args:     append([]string{"--brokers", addr, "--kafka-topic", "out", "--compression", "zstd"}, args...),
		Received: r.received,
		Restart: func(t testing.TB) {
			if !k.Restart(3 * time.Second) {
				t.FailNow()
			}
		},
		Record: order,
		Check: func(t testing.TB, s connectortest.Scenario, _ []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				checkRecords(t, r.records(), 1)
			case connectortest.Restart:
				// In order apart from repeats: no gap.
				connectortest.InOrder(t, r.received(t))
				if !strings.Contains(stderr, "retrying") {
					t.Errorf("the sink logged no retry across the restart:\n%s", stderr)
				}
			case connectortest.TLS:
				// A wrong password is refused at start (exit 1), without showing it.
				busDir := t.TempDir()
				connectortest.Publish(t, busDir, "orders", order(0))
				stderr := connectortest.Exits(t, app(), 1, addr, "--bus", busDir, "--topic", "orders", "--group", "other", "--brokers", addr,
					"--kafka-topic", "out", "--tls-ca", args[1], "--sasl-mechanism", "scram-sha-512", "--username", "culvert", "--password", "wr0ng-pa55")
				if strings.Contains(stderr, "wr0ng-pa55") {
					t.Errorf("the wrong password shows: %s", stderr)
				}
			}
		},
	}
	if need.Scenario == connectortest.Poison {
		// A record larger than --batch-max-bytes is refused by the
		// producer for good.
		sys.Args = []string{"--brokers", addr, "--kafka-topic", "out", "--batch-max-bytes", "4096"}
		sys.Poison = func(n int) record.Record {
			return record.Record{Value: []byte(`{"n":` + strconv.Itoa(n) + `,"pad":"` + strings.Repeat("x", 20000) + `"}`)}
		}
		sys.Check = func(t testing.TB, _ connectortest.Scenario, dead []record.Record, _ string) {
			for _, d := range dead {
				if e, _ := d.Header(connector.HeaderError); !strings.Contains(string(e), "MESSAGE_TOO_LARGE") {
					t.Errorf("dead letter error header %q", e)
				}
				if s, _ := d.Header(connector.HeaderStage); string(s) != "sink" {
					t.Errorf("dead letter stage %q", s)
				}
			}
		}
	}
	return sys
}

// topicReader reads a Kafka topic as it grows.
type topicReader struct {
	cl   *kgo.Client
	mu   sync.Mutex
	recs []*kgo.Record
}

// received reads what came since the last call (for at most 200ms) and
// returns the values of every record read so far.
func (r *topicReader) received(testing.TB) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r.recs = append(r.recs, r.cl.PollFetches(ctx).Records()...)
	out := make([]string, len(r.recs))
	for i, rec := range r.recs {
		out[i] = string(rec.Value)
	}
	return out
}

func (r *topicReader) records() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recs
}
