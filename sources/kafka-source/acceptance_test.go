package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite on a kfake cluster
// of the test's own (restartable with its data for the Restart scenario;
// with a TLS listener for TLS), reading a topic of one partition, so that
// all its records have one order, as the group g1.
func TestAcceptance(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startKafka,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--password", "s3cret", "--username", "u", "--brokers", "h"}, Option: "kafka-topic"},
			{Args: []string{"--password", "s3cret", "--username", "u", "--brokers", "h", "--kafka-topic", "a", "--kafka-topic-regex", "b"}, Option: "kafka-topic-regex"},
			{Args: []string{"--password", "s3cret", "--username", "u", "--brokers", "h", "--kafka-topic-regex", "("}, Option: "kafka-topic-regex"},
			{Args: []string{"--password", "s3cret", "--username", "u", "--kafka-topic", "a"}, Option: "brokers"},
			{Args: []string{"--password", "s3cret", "--username", "u", "--brokers", "h", "--kafka-topic", "a", "--start-offset", "middle"}, Option: "start-offset"},
			{Args: []string{"--password", "s3cret", "--username", "u", "--brokers", "h", "--kafka-topic", "a", "--sasl-mechanism", "gssapi"}, Option: "sasl-mechanism"},
		},
	})
}

// startKafka starts kfake with the topic orders of one partition.
func startKafka(t *testing.T, need connectortest.Need) *connectortest.System {
	var addr string
	var k *kafkatest.Restartable
	var args []string
	var clientOpts []kgo.Opt
	switch {
	case need.Restart:
		k = kafkatest.StartRestartable(t)
		addr = k.Addr
	case need.TLS:
		caFile, serverTLS := kafkatest.Certs(t, t.TempDir())
		_, port, _ := net.SplitHostPort(kafkatest.Start(t, kfake.TLS(serverTLS)))
		addr = "localhost:" + port
		args = []string{"--tls-ca", caFile}
		clientOpts = []kgo.Opt{kgo.DialTLSConfig(trusting(t, caFile))}
	default:
		addr = kafkatest.Start(t)
	}
	cl := kafkatest.Client(t, addr, clientOpts...)
	if _, err := kadm.NewClient(cl).CreateTopic(kafkatest.Ctx(t), 1, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	produced := 0
	return &connectortest.System{
		Args: append([]string{"--brokers", addr, "--kafka-topic", "orders", "--kafka-group", "g1"}, args...),
		Produce: func(t testing.TB, values ...string) {
			recs := make([]*kgo.Record, len(values))
			for i, v := range values {
				n := produced + i
				recs[i] = &kgo.Record{Topic: "orders", Key: []byte("k" + strconv.Itoa(n%10)), Value: []byte(v),
					Headers: []kgo.RecordHeader{{Key: "n", Value: []byte(strconv.Itoa(n))}}, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(n))}
			}
			produced += len(values)
			if err := cl.ProduceSync(kafkatest.Ctx(t), recs...).FirstErr(); err != nil {
				t.Fatalf("producing: %v", err)
			}
		},
		Restart: func(t testing.TB) {
			if !k.Restart(time.Second) {
				t.FailNow()
			}
		},
		// Everything published was committed: the group's lag is 0. (A
		// client of its own: the cluster may have restarted since.)
		Pending: func(t testing.TB) int {
			lags, err := kadm.NewClient(kafkatest.Client(t, addr, clientOpts...)).Lag(kafkatest.Ctx(t), "g1")
			if err != nil {
				t.Fatal(err)
			}
			return int(lags["g1"].Lag.Total())
		},
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				checkCoordinates(t, recs, 1)
			case connectortest.Poison:
				if v := connectortest.Header(t, recs[0], HeaderTopic); v != "orders" {
					t.Errorf("dead letter's %s %q, want orders", HeaderTopic, v)
				}
			case connectortest.Restart:
				if !strings.Contains(stderr, "unreachable") {
					t.Errorf("the source did not notice the restart:\n%s", stderr)
				}
			}
		},
	}
}

// trusting returns a TLS configuration that trusts the CA of the PEM file.
func trusting(t testing.TB, caFile string) *tls.Config {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool}
}

// checkCoordinates checks records made by produce or the acceptance
// driver ({"n":k}, key k<k%10>, header n=k, time 1_700_000_000_000+k ms):
// each once, with its key, headers and time, the Kafka topic orders as a
// header, offsets following one another in each of partitions
// partitions.
func checkCoordinates(t testing.TB, recs []record.Record, partitions int) {
	t.Helper()
	seen := map[int]bool{}
	lastOffset := map[string]int64{}
	for _, m := range recs {
		k := number(t, m)
		if seen[k] {
			t.Fatalf("record %d twice", k)
		}
		seen[k] = true
		if string(m.Key) != "k"+strconv.Itoa(k%10) || connectortest.Header(t, m, "n") != strconv.Itoa(k) || connectortest.Header(t, m, HeaderTopic) != "orders" {
			t.Fatalf("record %d: key %q headers %v", k, m.Key, m.Headers)
		}
		if m.Time.UnixMilli() != 1_700_000_000_000+int64(k) {
			t.Fatalf("record %d: time %v", k, m.Time)
		}
		p := connectortest.Header(t, m, HeaderPartition)
		off, err := strconv.ParseInt(connectortest.Header(t, m, HeaderOffset), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if last, ok := lastOffset[p]; ok && off != last+1 {
			t.Fatalf("partition %s: offset %d after %d", p, off, last)
		}
		lastOffset[p] = off
	}
	if len(lastOffset) != partitions {
		t.Fatalf("records came from %d partitions, want %d", len(lastOffset), partitions)
	}
}
