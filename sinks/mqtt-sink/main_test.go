package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "mqtt-sink", cli.DirectionSink)
	for _, p := range []string{"url", "mqtt_topic", "mqtt_topic_from_key", "qos", "retain", "username", "password", "tls_ca", "tls_cert", "tls_key"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if md.Schema.Properties["password"]["writeOnly"] != true {
		t.Errorf("password is not writeOnly")
	}
	if d := md.Schema.Properties["qos"]["default"]; d != float64(1) {
		t.Errorf("qos default %v", d)
	}
}

func numbered(n int, mk func(i int) record.Record) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		out[i] = mk(i + 1)
	}
	return out
}

func payloads(ps []*paho.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, _, stderr := connectortest.Run(t, ctx, app(), append([]string{"--log-format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	return stderr
}

// TestRoundTrip10000 writes 10,000 records at QoS 1 to the shared broker:
// an independent subscriber gets every one, in order, with the record
// headers as user properties.
func TestRoundTrip10000(t *testing.T) {
	mqtttest.RequireShared(t)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	recs := numbered(10000, func(i int) record.Record {
		return record.Record{Value: []byte(strconv.Itoa(i)), Headers: []record.Header{{Key: "h", Value: []byte("v" + strconv.Itoa(i))}}}
	})
	connectortest.Publish(t, dir, "out", recs...)
	sub := mqtttest.Dial(t, mqtttest.Shared)
	sub.Subscribe(t, topic, 1)
	mustRun(t, "--topic", "out", "--bus", dir, "--from", "beginning", "--stop-at-end", "--url", mqtttest.Shared, "--mqtt-topic", topic)
	got := sub.Receive(t, 10000, 30*time.Second)
	for i, p := range got {
		if want := strconv.Itoa(i + 1); string(p.Payload) != want {
			t.Fatalf("message %d is %q, want %q: lost or reordered", i, p.Payload, want)
		}
	}
	last := got[len(got)-1]
	if last.QoS != 1 || last.Properties == nil || last.Properties.User.Get("h") != "v10000" {
		t.Errorf("last message: qos %d, properties %+v", last.QoS, last.Properties)
	}
	select {
	case p := <-sub.Got:
		t.Fatalf("an extra message %q", p.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	// The group committed: a second run sends nothing.
	mustRun(t, "--topic", "out", "--bus", dir, "--stop-at-end", "--url", mqtttest.Shared, "--mqtt-topic", topic)
	select {
	case p := <-sub.Got:
		t.Fatalf("the second run sent %q again", p.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestTopicFromKeyAndDeadLetters: each record goes to the MQTT topic its
// key names; a record whose key is no valid MQTT topic goes to the
// dead-letter topic, and the others are written.
func TestTopicFromKeyAndDeadLetters(t *testing.T) {
	mqtttest.RequireShared(t)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	connectortest.Publish(t, dir, "out", []record.Record{
		{Key: []byte(topic + "/a"), Value: []byte("1")},
		{Value: []byte("no key")},
		{Key: []byte(topic + "/#"), Value: []byte("wildcard")},
		{Key: []byte(topic + "/b"), Value: []byte("2")},
	}...)
	sub := mqtttest.Dial(t, mqtttest.Shared)
	sub.Subscribe(t, topic+"/#", 1)
	mustRun(t, "--topic", "out", "--bus", dir, "--from", "beginning", "--stop-at-end", "--url", mqtttest.Shared, "--mqtt-topic-from-key", "--qos", "2")
	got := sub.Receive(t, 2, 10*time.Second)
	if got[0].Topic != topic+"/a" || string(got[0].Payload) != "1" || got[1].Topic != topic+"/b" || string(got[1].Payload) != "2" {
		t.Fatalf("got %s=%q %s=%q", got[0].Topic, got[0].Payload, got[1].Topic, got[1].Payload)
	}
	dead := connectortest.ReadTopic(t, dir, "out.dlq")
	if len(dead) != 2 || string(dead[0].Value) != "no key" || string(dead[1].Value) != "wildcard" {
		t.Fatalf("dead letters: %d", len(dead))
	}
	if e, _ := dead[1].Header("culvert.error"); !strings.Contains(string(e), "wildcard") {
		t.Errorf("culvert.error %q", e)
	}
}

// TestBrokerRestart restarts a private broker while the sink writes: the
// sink reconnects by itself, and a subscriber with a persistent session
// gets every record.
func TestBrokerRestart(t *testing.T) {
	b := mqtttest.Start(t, false)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	const n = 20000
	connectortest.Publish(t, dir, "out", numbered(n, func(i int) record.Record { return record.Record{Value: []byte(strconv.Itoa(i))} })...)
	got := make(chan *paho.Publish, 2*n)
	id := mqtttest.Topic(t)[len("culvert-test/"):]
	sub := mqtttest.DialSession(t, b.URL(), id, got)
	sub.Subscribe(t, topic, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var code int
	var stderr connectortest.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		var out bytes.Buffer
		code = app().Main(ctx, []string{"--log-format", "json", "--topic", "out", "--bus", dir, "--from", "beginning", "--stop-at-end",
			"--url", b.URL(), "--mqtt-topic", topic}, &out, &stderr)
	}()
	seen := map[string]bool{}
	collect := func(until func() bool, timeout time.Duration) {
		deadline := time.After(timeout)
		for !until() {
			select {
			case p := <-got:
				seen[string(p.Payload)] = true
			case <-deadline:
				logb, _ := os.ReadFile(filepath.Join(b.Dir, "mosquitto.log"))
				t.Fatalf("received %d distinct of %d; broker log:\n%s", len(seen), n, logb[max(0, len(logb)-4000):])
			}
		}
	}
	collect(func() bool { return len(seen) >= 2000 }, 30*time.Second)
	b.Restart(500 * time.Millisecond)
	mqtttest.DialSession(t, b.URL(), id, got)
	collect(func() bool { return len(seen) >= n }, 60*time.Second)
	wg.Wait()
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	for i := 1; i <= n; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("record %d lost", i)
		}
	}
	if !strings.Contains(stderr.String(), "reconnected to mqtt") {
		t.Errorf("no reconnection in the log:\n%s", stderr.String())
	}
}

// TestTLS writes over TLS with a client certificate, at QoS 2 and retained.
func TestTLS(t *testing.T) {
	b := mqtttest.Start(t, true)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	connectortest.Publish(t, dir, "out", numbered(100, func(i int) record.Record { return record.Record{Value: []byte(strconv.Itoa(i))} })...)
	sub := mqtttest.Dial(t, b.URL())
	sub.Subscribe(t, topic, 2)
	mustRun(t, "--topic", "out", "--bus", dir, "--from", "beginning", "--stop-at-end", "--url", b.TLSURL(),
		"--tls-ca", b.CA, "--tls-cert", b.ClientCert, "--tls-key", b.ClientKey, "--mqtt-topic", topic, "--qos", "2", "--retain")
	got := payloads(sub.Receive(t, 100, 20*time.Second))
	want := make([]string, 100)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	// The last one was retained: a new subscriber gets it.
	late := mqtttest.Dial(t, b.URL())
	late.Subscribe(t, topic, 1)
	if r := late.Receive(t, 1, 10*time.Second)[0]; string(r.Payload) != "100" || !r.Retain {
		t.Fatalf("retained message %q retain=%v", r.Payload, r.Retain)
	}
}

func TestBadUsage(t *testing.T) {
	base := []string{"--topic", "t", "--bus", filepath.Join(t.TempDir(), "bus")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mqtt-topic", "a"}, "--url"},
		{[]string{"--url", "tcp://h"}, "--mqtt-topic"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--mqtt-topic-from-key"}, "--mqtt-topic"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a/#"}, "--mqtt-topic"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--qos", "5"}, "--qos"},
		{[]string{"--url", "ws://u:s3cret@h/mqtt?x=1", "--mqtt-topic", "a"}, "--url"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--password", "s3cret"}, "--username"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--ack-timeout", "0s"}, "--ack-timeout"},
	} {
		code, stdout, stderr := connectortest.Run(t, context.Background(), app(), append(append([]string(nil), base...), tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, stderr, tc.want)
		}
		if stdout != "" || strings.Contains(stderr, "s3cret") {
			t.Errorf("%q: stdout %q, stderr %q", tc.args, stdout, stderr)
		}
	}
}
