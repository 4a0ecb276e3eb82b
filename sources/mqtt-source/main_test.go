package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "mqtt-source", cli.DirectionSource)
	for _, p := range []string{"url", "mqtt_topic", "qos", "client_id", "clean_session", "key_from", "username", "password", "tls_ca", "tls_cert", "tls_key"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if md.Schema.Properties["password"]["writeOnly"] != true {
		t.Errorf("password is not writeOnly: %v", md.Schema.Properties["password"])
	}
	if d := md.Schema.Properties["qos"]["default"]; d != float64(1) {
		t.Errorf("qos default %v", d)
	}
	for _, r := range []string{"url", "mqtt_topic", "topic"} {
		if !slices.Contains(md.Schema.Required, r) {
			t.Errorf("required = %v, want %s among them", md.Schema.Required, r)
		}
	}
}

// running is the connector running in the test process.
type running struct {
	cancel context.CancelFunc
	done   chan int
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (r *running) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.Write(p)
}

func (r *running) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan int, 1)}
	go func() {
		var out bytes.Buffer
		r.done <- app().Main(ctx, append([]string{"--log-format", "json"}, args...), &out, r)
	}()
	t.Cleanup(func() { r.cancel(); <-r.done; r.done <- 0 })
	return r
}

// stop stops the connector as SIGTERM would and checks it exits 0.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code
		if code != 0 {
			t.Fatalf("exit %d after stop\n%s", code, r.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the source did not stop")
	}
}

// waitFor polls topic until cond holds on its values (warm-ups left out).
func waitFor(t *testing.T, r *running, dir, topic string, timeout time.Duration, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case code := <-r.done:
			r.done <- code
			t.Fatalf("the source exited with %d\n%s", code, r.log())
		default:
		}
		vals := values(connectortest.ReadTopic(t, dir, topic))
		if cond(vals) {
			return vals
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %q: condition not met within %s; %d records\n%s", topic, timeout, len(vals), r.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const warmup = `{"n":-1}`

func values(recs []record.Record) []string {
	var out []string
	for _, r := range recs {
		if string(r.Value) != warmup {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// subscribed publishes warm-up messages until the source has one on the
// bus: then it is subscribed.
func subscribed(t *testing.T, r *running, pub *mqtttest.Client, mqttTopic, dir, topic string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pub.Publish(t, mqttTopic, 1, []byte(warmup))
		time.Sleep(100 * time.Millisecond)
		if n := len(connectortest.ReadTopic(t, dir, topic)); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source never subscribed\n%s", r.log())
		}
	}
}

func numbers(from, to int) [][]byte {
	var out [][]byte
	for i := from; i <= to; i++ {
		out = append(out, []byte(strconv.Itoa(i)))
	}
	return out
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// TestRoundTrip10000 sends 10,000 messages at QoS 1 through the shared
// broker: every one arrives, in order, with its topic as key and headers.
func TestRoundTrip10000(t *testing.T) {
	mqtttest.RequireShared(t)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	r := start(t, "--topic", "in", "--bus", dir, "--url", mqtttest.Shared, "--mqtt-topic", topic+"/#", "--clean-session")
	pub := mqtttest.Dial(t, mqtttest.Shared)
	subscribed(t, r, pub, topic+"/a", dir, "in")
	want := numbers(1, 10000)
	pub.Publish(t, topic+"/a", 1, want...)
	got := waitFor(t, r, dir, "in", 60*time.Second, func(v []string) bool { return len(v) >= len(want) })
	r.stop(t)
	if !slices.Equal(got, strs(want)) {
		t.Fatalf("got %d records, not the 10,000 sent in order (first %q)", len(got), got[:min(5, len(got))])
	}
	recs := connectortest.ReadTopic(t, dir, "in")
	last := recs[len(recs)-1]
	if string(last.Key) != topic+"/a" {
		t.Errorf("key %q, want the MQTT topic", last.Key)
	}
	for k, want := range map[string]string{"mqtt.topic": topic + "/a", "mqtt.qos": "1", "mqtt.retain": "false"} {
		if v, _ := last.Header(k); string(v) != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
}

// TestOfflineMessagesDelivered: with the default persistent session,
// what is published while the source is down arrives when it returns.
func TestOfflineMessagesDelivered(t *testing.T) {
	mqtttest.RequireShared(t)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	id := "culvert-test-offline-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() { mqtttest.DropSession(t, mqtttest.Shared, id) })
	args := []string{"--topic", "in", "--bus", dir, "--url", mqtttest.Shared, "--mqtt-topic", topic, "--key-from", "none",
		"--client-id", id, "--session-expiry", "1m"}
	r := start(t, args...)
	pub := mqtttest.Dial(t, mqtttest.Shared)
	subscribed(t, r, pub, topic, dir, "in")
	r.stop(t)

	want := numbers(1, 500)
	pub.Publish(t, topic, 1, want...)
	r = start(t, args...)
	got := waitFor(t, r, dir, "in", 30*time.Second, func(v []string) bool { return len(v) >= len(want) })
	r.stop(t)
	if !slices.Equal(got, strs(want)) {
		t.Fatalf("got %q, want the 500 messages published while down", got)
	}
	if k := connectortest.ReadTopic(t, dir, "in")[1].Key; k != nil {
		t.Errorf("--key-from none: key %q", k)
	}

	// Each was acknowledged: a third run gets nothing again.
	r = start(t, args...)
	time.Sleep(time.Second)
	pub.Publish(t, topic, 1, []byte("last"))
	got = waitFor(t, r, dir, "in", 30*time.Second, func(v []string) bool { return slices.Contains(v, "last") })
	r.stop(t)
	if len(got) != len(want)+1 {
		t.Fatalf("third run: %d records, want %d (acknowledged messages came again)", len(got), len(want)+1)
	}
}

// TestBrokerRestart restarts a private broker mid-stream: the source
// reconnects by itself and nothing is lost.
func TestBrokerRestart(t *testing.T) {
	b := mqtttest.Start(t, false)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	r := start(t, "--topic", "in", "--bus", dir, "--url", b.URL(), "--mqtt-topic", topic, "--batch-size", "100", "--receive-maximum", "50")
	pub := mqtttest.Dial(t, b.URL())
	subscribed(t, r, pub, topic, dir, "in")
	pub.Publish(t, topic, 1, numbers(1, 3000)...)
	b.Restart(300 * time.Millisecond)
	pub = mqtttest.Dial(t, b.URL())
	pub.Publish(t, topic, 1, numbers(3001, 6000)...)
	got := waitFor(t, r, dir, "in", 60*time.Second, func(v []string) bool {
		seen := map[string]bool{}
		for _, s := range v {
			seen[s] = true
		}
		return len(seen) >= 6000
	})
	r.stop(t)
	seen := map[string]bool{}
	for _, s := range got {
		seen[s] = true
	}
	for _, w := range strs(numbers(1, 6000)) {
		if !seen[w] {
			t.Fatalf("message %s lost", w)
		}
	}
	if !strings.Contains(r.log(), "reconnected to mqtt") {
		t.Errorf("no reconnection in the log:\n%s", r.log())
	}
	t.Logf("%d records for 6000 messages (duplicates are allowed: at least once)", len(got))
}

// TestPoisonMessage: a message the transform cannot parse goes to the
// dead-letter topic and the others go on.
func TestPoisonMessage(t *testing.T) {
	mqtttest.RequireShared(t)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	r := start(t, "--topic", "in", "--bus", dir, "--url", mqtttest.Shared, "--mqtt-topic", topic, "--clean-session", "--map", ".n")
	pub := mqtttest.Dial(t, mqtttest.Shared)
	subscribed(t, r, pub, topic, dir, "in")
	pub.Publish(t, topic, 1, []byte(`{"n":1}`), []byte("not json"), []byte(`{"n":2}`))
	got := waitFor(t, r, dir, "in", 30*time.Second, func(v []string) bool { return slices.Contains(v, "2") })
	r.stop(t)
	if !slices.Equal(got[len(got)-2:], []string{"1", "2"}) {
		t.Fatalf("topic: %q", got)
	}
	dead := connectortest.ReadTopic(t, dir, "in.dlq")
	if len(dead) != 1 || string(dead[0].Value) != "not json" {
		t.Fatalf("dead letters: %d %q", len(dead), values(dead))
	}
	if v, _ := dead[0].Header("mqtt.topic"); string(v) != topic {
		t.Errorf("the dead letter lost its mqtt.topic header: %q", v)
	}
}

// TestTLS subscribes over TLS with a client certificate.
func TestTLS(t *testing.T) {
	b := mqtttest.Start(t, true)
	dir := filepath.Join(t.TempDir(), "bus")
	topic := mqtttest.Topic(t)
	r := start(t, "--topic", "in", "--bus", dir, "--url", b.TLSURL(), "--tls-ca", b.CA, "--tls-cert", b.ClientCert, "--tls-key", b.ClientKey,
		"--mqtt-topic", topic, "--qos", "2")
	pub := mqtttest.Dial(t, b.URL())
	subscribed(t, r, pub, topic, dir, "in")
	want := numbers(1, 100)
	pub.Publish(t, topic, 2, want...)
	got := waitFor(t, r, dir, "in", 30*time.Second, func(v []string) bool { return len(v) >= 100 })
	r.stop(t)
	if !slices.Equal(got, strs(want)) {
		t.Fatalf("got %q", got)
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
		{[]string{"--url", "http://h", "--mqtt-topic", "a"}, "--url"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a/#/b"}, "--mqtt-topic"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a+"}, "--mqtt-topic"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--qos", "3"}, "--qos"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--key-from", "value"}, "--key-from"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--tls-ca", "ca.pem"}, "--url"},
		{[]string{"--url", "ssl://h", "--mqtt-topic", "a", "--tls-cert", "c.pem"}, "--tls-cert"},
		{[]string{"--url", "tcp://h", "--mqtt-topic", "a", "--receive-maximum", "0"}, "--receive-maximum"},
		{[]string{"--url", "tcp://u:s3cret@h/x", "--mqtt-topic", "a"}, "--url"},
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

func TestUnreachableBrokerFails(t *testing.T) {
	port := mqtttest.FreePort(t)
	code, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", filepath.Join(t.TempDir(), "bus"),
		"--url", fmt.Sprintf("tcp://u:s3cret@127.0.0.1:%d", port), "--mqtt-topic", "a", "--connect-timeout", "2s")
	if code != 1 || !strings.Contains(stderr, "connecting to MQTT broker") || strings.Contains(stderr, "s3cret") {
		t.Fatalf("exit %d, stderr %q; want 1 with a clear error and no password", code, stderr)
	}
}
