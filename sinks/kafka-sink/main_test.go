package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// Kafka cannot be installed on this machine: every test runs against
// franz-go's in-process kfake cluster.

func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "kafka-sink", cli.DirectionSink)
	md.HasProperties(t, "brokers", "kafka_topic", "sasl_mechanism", "username", "password", "tls", "tls_ca", "tls_cert", "tls_key", "compression", "linger", "batch_max_bytes")
	for _, p := range []string{"brokers", "kafka_topic"} {
		if !slices.Contains(md.Schema.Required, p) {
			t.Errorf("required = %v, want %s among them", md.Schema.Required, p)
		}
	}
	if md.Schema.Properties["password"]["writeOnly"] != true {
		t.Errorf("password is not writeOnly: %v", md.Schema.Properties["password"])
	}
}

// orders returns n records made by order.
func orders(n int) []record.Record {
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = order(i)
	}
	return recs
}

// order returns record i: key k<i%10>, value {"n":i}, a header n=i, time
// 1_700_000_000_000+i ms.
func order(i int) record.Record {
	return record.Record{
		Key:     []byte("k" + strconv.Itoa(i%10)),
		Value:   []byte(fmt.Sprintf(`{"n":%d}`, i)),
		Headers: []record.Header{{Key: "n", Value: []byte(strconv.Itoa(i))}},
		Time:    time.UnixMilli(1_700_000_000_000 + int64(i)),
	}
}

// readAll reads the Kafka topic from the start until it has n records.
func readAll(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := kafkatest.Ctx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from kafka", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func number(t testing.TB, r *kgo.Record) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(string(r.Value), `{"n":%d}`, &n); err != nil {
		t.Fatalf("unexpected value %q", r.Value)
	}
	return n
}

// TestPartitions writes keyed records to a Kafka topic of 3 partitions
// (the acceptance suite writes to one).
func TestPartitions(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	const n = 1000
	kafkatest.CreateTopic(t, addr, "orders", 3)
	connectortest.Publish(t, dir, "orders", orders(n)...)
	connectortest.MustRun(t, app(), "--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end",
		"--brokers", addr, "--kafka-topic", "orders", "--compression", "zstd")
	got := readAll(t, addr, "orders", n)
	if len(got) != n {
		t.Fatalf("kafka has %d records, want %d", len(got), n)
	}
	checkRecords(t, got, 3)
}

// checkRecords checks records written from order: each arrives once,
// with its key, headers and time, keys keep their partition and records
// their order within it, in partitions partitions.
func checkRecords(t testing.TB, got []*kgo.Record, partitions int) {
	t.Helper()
	seen := map[int]bool{}
	last := map[int32]int{}
	partOf := map[string]int32{}
	for _, r := range got {
		k := number(t, r)
		if seen[k] {
			t.Fatalf("record %d twice", k)
		}
		seen[k] = true
		if prev, ok := last[r.Partition]; ok && k <= prev {
			t.Fatalf("partition %d: record %d after %d", r.Partition, k, prev)
		}
		last[r.Partition] = k
		if string(r.Key) != "k"+strconv.Itoa(k%10) {
			t.Fatalf("record %d has key %q", k, r.Key)
		}
		if p, ok := partOf[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		partOf[string(r.Key)] = r.Partition
		if len(r.Headers) != 1 || r.Headers[0].Key != "n" || string(r.Headers[0].Value) != strconv.Itoa(k) {
			t.Fatalf("record %d has headers %v", k, r.Headers)
		}
		if r.Timestamp.UnixMilli() != 1_700_000_000_000+int64(k) {
			t.Fatalf("record %d has time %v", k, r.Timestamp)
		}
	}
	if len(last) != partitions {
		t.Fatalf("records landed in %d partitions, want %d", len(last), partitions)
	}
}

// TestConfigHidesPassword: config shows the SASL password's key, never
// its value (the acceptance suite checks bad options).
func TestConfigHidesPassword(t *testing.T) {
	code, stdout, _ := connectortest.Run(t, kafkatest.Ctx(t), app(), "--topic", "t", "--kafka-topic", "k", "--password", "s3cret",
		"--brokers", "h", "--username", "u", "config")
	if code != 0 || strings.Contains(stdout, "s3cret") || !strings.Contains(stdout, "password") {
		t.Errorf("config: exit %d, %s", code, stdout)
	}
}

// TestUnreachableBroker: no broker at the address -> exit 1 with a clear
// message that does not show the password.
func TestUnreachableBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, _, stderr := connectortest.Run(t, kafkatest.Ctx(t), app(), "--bus", t.TempDir(), "--topic", "t", "--brokers", addr,
		"--kafka-topic", "k", "--username", "u", "--password", "s3cret", "--max-retries", "1")
	if code != 1 || !strings.Contains(stderr, addr) || strings.Contains(stderr, "s3cret") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}
