package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	md.HasProperties(t, "url", "mqtt_topic", "qos", "client_id", "clean_session", "key_from", "username", "password", "tls_ca", "tls_cert", "tls_key")
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

// waitValues waits until cond holds on the values of the topic in (the
// warm-ups left out) and returns them.
func waitValues(t *testing.T, r *connectortest.Running, dir string, cond func([]string) bool) []string {
	t.Helper()
	var vals []string
	connectortest.WaitFor(t, r, "the records", func() bool {
		vals = values(connectortest.ReadTopic(t, dir, "in"))
		return cond(vals)
	})
	return vals
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
// topic in: then it is subscribed.
func subscribed(t *testing.T, r *connectortest.Running, pub *mqtttest.Client, mqttTopic, dir string) {
	t.Helper()
	connectortest.WaitFor(t, r, "a subscribed source", func() bool {
		pub.Publish(t, mqttTopic, 1, []byte(warmup))
		time.Sleep(100 * time.Millisecond)
		return len(connectortest.ReadTopic(t, dir, "in")) > 0
	})
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
	r := connectortest.Start(t, app(), args...)
	pub := mqtttest.Dial(t, mqtttest.Shared)
	subscribed(t, r, pub, topic, dir)
	r.StopOK(t)

	want := numbers(1, 500)
	pub.Publish(t, topic, 1, want...)
	r = connectortest.Start(t, app(), args...)
	got := waitValues(t, r, dir, func(v []string) bool { return len(v) >= len(want) })
	r.StopOK(t)
	if !slices.Equal(got, strs(want)) {
		t.Fatalf("got %q, want the 500 messages published while down", got)
	}
	if k := connectortest.ReadTopic(t, dir, "in")[1].Key; k != nil {
		t.Errorf("--key-from none: key %q", k)
	}

	// Each was acknowledged: a third run gets nothing again.
	r = connectortest.Start(t, app(), args...)
	time.Sleep(time.Second)
	pub.Publish(t, topic, 1, []byte("last"))
	got = waitValues(t, r, dir, func(v []string) bool { return slices.Contains(v, "last") })
	r.StopOK(t)
	if len(got) != len(want)+1 {
		t.Fatalf("third run: %d records, want %d (acknowledged messages came again)", len(got), len(want)+1)
	}
}

func TestUnreachableBrokerFails(t *testing.T) {
	port := mqtttest.FreePort(t)
	code, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", filepath.Join(t.TempDir(), "bus"),
		"--url", fmt.Sprintf("tcp://u:s3cret@127.0.0.1:%d", port), "--mqtt-topic", "a", "--connect-timeout", "2s", "--max-retries", "1")
	if code != 1 || !strings.Contains(stderr, "connecting to MQTT broker") || strings.Contains(stderr, "s3cret") {
		t.Fatalf("exit %d, stderr %q; want 1 with a clear error and no password", code, stderr)
	}
}
