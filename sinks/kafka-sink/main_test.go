package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	kafkaclient "github.com/culvert-dev/culvert/common/client/kafka"
	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// Kafka cannot be installed on this machine: every test runs against
// franz-go's in-process kfake cluster.

func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "kafka-sink", cli.DirectionSink)
	for _, p := range []string{"brokers", "kafka_topic", "sasl_mechanism", "sasl_username", "sasl_password", "tls", "tls_ca", "tls_cert", "tls_key", "compression", "linger", "batch_max_bytes"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	for _, p := range []string{"brokers", "kafka_topic"} {
		if !slices.Contains(md.Schema.Required, p) {
			t.Errorf("required = %v, want %s among them", md.Schema.Required, p)
		}
	}
	if md.Schema.Properties["sasl_password"]["writeOnly"] != true {
		t.Errorf("sasl_password is not writeOnly: %v", md.Schema.Properties["sasl_password"])
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rawClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// orders returns n records: key k0..k9, value {"n":i}, a header.
func orders(n int) []record.Record {
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			Key:     []byte("k" + strconv.Itoa(i%10)),
			Value:   []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Headers: []record.Header{{Key: "n", Value: []byte(strconv.Itoa(i))}},
			Time:    time.UnixMilli(1_700_000_000_000 + int64(i)),
		}
	}
	return recs
}

// readAll reads the Kafka topic from the start until it has n records.
func readAll(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := rawClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := testCtx(t)
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

func number(t *testing.T, r *kgo.Record) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(string(r.Value), `{"n":%d}`, &n); err != nil {
		t.Fatalf("unexpected value %q", r.Value)
	}
	return n
}

func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	if _, err := kadm.NewClient(rawClient(t, addr)).CreateTopic(testCtx(t), partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
}

// TestRoundTrip writes 10,000 keyed records to a Kafka topic of 3
// partitions: each arrives once, with its key, headers and time, keys keep
// their partition and records their order within it.
func TestRoundTrip(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	const n = 10000
	createTopic(t, addr, "orders", 3)
	connectortest.Publish(t, dir, "orders", orders(n)...)
	connectortest.MustRun(t, app(), "--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end",
		"--brokers", addr, "--kafka-topic", "orders", "--compression", "zstd")
	got := readAll(t, addr, "orders", n)
	if len(got) != n {
		t.Fatalf("kafka has %d records, want %d", len(got), n)
	}
	seen := make([]bool, n)
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
	if len(last) != 3 {
		t.Fatalf("records landed in %d partitions, want 3", len(last))
	}
}

// TestPoisonRecordToDeadLetters: a record larger than --batch-max-bytes is
// refused by the producer and goes to the dead-letter topic; the others are
// written.
func TestPoisonRecordToDeadLetters(t *testing.T) {
	addr := kafkatest.Start(t)
	dir := t.TempDir()
	recs := orders(5)
	recs[2].Value = []byte(`{"n":2,"pad":"` + strings.Repeat("x", 20000) + `"}`)
	connectortest.Publish(t, dir, "orders", recs...)
	connectortest.MustRun(t, app(), "--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end",
		"--brokers", addr, "--kafka-topic", "out", "--batch-max-bytes", "4096")
	got := readAll(t, addr, "out", 4)
	var nums []int
	for _, r := range got {
		nums = append(nums, number(t, r))
	}
	slices.Sort(nums)
	if !slices.Equal(nums, []int{0, 1, 3, 4}) {
		t.Fatalf("kafka has records %v, want 0 1 3 4", nums)
	}
	b, err := bus.Open(testCtx(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err := b.Subscribe(testCtx(t), "orders.dlq", "check", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Poll(testCtx(t))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("dead letters: %d, %v", len(msgs), err)
	}
	if !strings.HasPrefix(string(msgs[0].Value), `{"n":2,`) {
		t.Fatalf("dead letter is %.40q", msgs[0].Value)
	}
	if e, _ := msgs[0].Header(connector.HeaderError); !strings.Contains(string(e), "MESSAGE_TOO_LARGE") {
		t.Fatalf("dead letter error header %q", e)
	}
	if s, _ := msgs[0].Header(connector.HeaderStage); string(s) != "sink" {
		t.Fatalf("dead letter stage %q", s)
	}
}

// TestBrokerRestart stops the Kafka cluster while the sink writes a stream
// and starts it again (same port, same data) a second later: the sink
// retries by itself, and every record is in Kafka at the end (some maybe
// twice), in order apart from such repeats.
func TestBrokerRestart(t *testing.T) {
	k := kafkatest.StartRestartable(t)
	addr := k.Addr
	createTopic(t, addr, "out", 1)
	dir := t.TempDir()
	const n, per = 10000, 100
	all := orders(n)

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	sink := connectortest.Start(t, app(), "--bus", dir, "--topic", "orders", "--from", "beginning",
		"--brokers", addr, "--kafka-topic", "out", "--delivery-timeout", "1s", "--log-format", "json")
	b, err := bus.Open(testCtx(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Restart kfake once a quarter of the records reached it, with 3s of
	// downtime: longer than --delivery-timeout, so writes fail and are
	// retried by the runner, while records keep arriving on the bus.
	restarted := make(chan bool, 1)
	go func() {
		raw, _ := kgo.NewClient(kgo.SeedBrokers(addr))
		adm := kadm.NewClient(raw)
		for ctx.Err() == nil {
			ends, err := adm.ListEndOffsets(ctx, "out")
			if o, ok := ends.Lookup("out", 0); err == nil && ok && o.Offset >= n/4 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		raw.Close()
		restarted <- k.Restart(3 * time.Second)
	}()
	pctx := testCtx(t)
	for i := 0; i < n; i += per {
		if err := bus.Publish(pctx, b, "orders", all[i:i+per]...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !<-restarted {
		t.FailNow()
	}
	// Read until every record is there, then stop the sink.
	cl := rawClient(t, addr, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := make([]bool, n)
	count, next := 0, 0
	rctx := testCtx(t)
	for count < n {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			break
		}
		for _, r := range fs.Records() {
			k := number(t, r)
			if k > next {
				t.Fatalf("record %d after %d: a gap", k, next-1)
			}
			if k == next {
				next++
			}
			if !seen[k] {
				seen[k] = true
				count++
			}
		}
	}
	code, stderr := sink.Stop(t)
	if count != n {
		t.Fatalf("only %d distinct records of %d in kafka; sink log:\n%s", count, n, stderr)
	}
	if code != 0 {
		t.Fatalf("sink exit %d:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "retrying") {
		t.Fatalf("the sink logged no retry across the restart:\n%s", stderr)
	}
	if testing.Verbose() {
		t.Log(stderr)
	}
}

// TestBadOptions: bad options exit 2 naming the option; the password never
// shows.
func TestBadOptions(t *testing.T) {
	base := []string{"--topic", "t", "--kafka-topic", "k", "--sasl-password", "s3cret"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "t", "--brokers", "h"}, "kafka-topic"},
		{append(base, "--sasl-username", "u"), "brokers"},
		{append(base, "--brokers", "h"), "sasl-username"},
		{append(base, "--brokers", "h", "--sasl-username", "u", "--sasl-mechanism", "gssapi"), "sasl-mechanism"},
		{append(base, "--brokers", "h", "--sasl-username", "u", "--compression", "brotli"), "compression"},
		{append(base, "--brokers", "h", "--sasl-username", "u", "--tls-cert", "c.pem"), "tls-cert"},
		{append(base, "--brokers", "h", "--sasl-username", "u", "--batch-max-bytes", "10"), "batch-max-bytes"},
	}
	for _, c := range cases {
		connectortest.BadOption(t, app(), c.want, c.args...)
	}
	code, stdout, _ := connectortest.Run(t, testCtx(t), app(), append(base, "--brokers", "h", "--sasl-username", "u", "config")...)
	if code != 0 || strings.Contains(stdout, "s3cret") || !strings.Contains(stdout, "sasl_password") {
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
	code, _, stderr := connectortest.Run(t, testCtx(t), app(), "--bus", t.TempDir(), "--topic", "t", "--brokers", addr,
		"--kafka-topic", "k", "--sasl-username", "u", "--sasl-password", "s3cret")
	if code != 1 || !strings.Contains(stderr, addr) || strings.Contains(stderr, "s3cret") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}

// TestSASLAndTLSFlags writes through a kfake that wants TLS and SASL
// SCRAM-SHA-512, with the connection given as flags; a wrong password is
// refused at start (exit 1) without showing it.
func TestSASLAndTLSFlags(t *testing.T) {
	caFile, serverTLS := kafkatest.Certs(t, t.TempDir())
	addr := kafkatest.Start(t, kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "culvert", "pa55word"))
	_, port, _ := net.SplitHostPort(addr)
	addr = "localhost:" + port
	dir := t.TempDir()
	connectortest.Publish(t, dir, "orders", orders(100)...)
	conn := []string{"--brokers", addr, "--tls-ca", caFile, "--sasl-mechanism", "scram-sha-512", "--sasl-username", "culvert"}
	connectortest.MustRun(t, app(), append([]string{"--bus", dir, "--topic", "orders", "--from", "beginning", "--stop-at-end",
		"--kafka-topic", "secure", "--sasl-password", "pa55word"}, conn...)...)
	cfg := (&kafkaclient.Options{Brokers: []string{addr}, TLSCA: caFile, SASLMechanism: "scram-sha-512", SASLUsername: "culvert", SASLPassword: "pa55word"}).Config("")
	cl, err := kafkaclient.NewClient(testCtx(t), cfg, "check", kgo.ConsumeTopics("secure"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := 0
	ctx := testCtx(t)
	for got < 100 && ctx.Err() == nil {
		got += cl.PollFetches(ctx).NumRecords()
	}
	if got != 100 {
		t.Fatalf("read %d records back over TLS and SASL, want 100", got)
	}
	code, _, stderr := connectortest.Run(t, testCtx(t), app(), append([]string{"--bus", dir, "--topic", "orders", "--group", "other",
		"--kafka-topic", "secure", "--sasl-password", "wr0ng-pa55"}, conn...)...)
	t.Logf("wrong password: %s", stderr)
	if code != 1 || strings.Contains(stderr, "wr0ng-pa55") || !strings.Contains(stderr, addr) {
		t.Fatalf("wrong password: exit %d, stderr %s", code, stderr)
	}
}
