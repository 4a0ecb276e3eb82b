package main

import (
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries (at start too) and
// --tls-insecure-skip-verify.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "in", "--bus", busDir, "--mqtt-topic", "a"}

	t.Run("bad values exit 2 naming the option, --max-retries", func(t *testing.T) {
		connectortest.ConnectionOptions(t, app, "mqtt", 2, ": connecting to MQTT broker", append(base, "--url", "tcp://u:s3cret@"+connectortest.FreeAddr(t))...)
	})

	t.Run("--tls-insecure-skip-verify", func(t *testing.T) {
		b := mqtttest.Start(t, true)
		topic := mqtttest.Topic(t)
		dir := t.TempDir()
		r := connectortest.Start(t, app(), "--topic", "in", "--bus", dir, "--url", b.TLSURL(), "--tls-insecure-skip-verify",
			"--tls-cert", b.ClientCert, "--tls-key", b.ClientKey, "--mqtt-topic", topic, "--qos", "1")
		connectortest.WaitFor(t, r, "the subscription", func() bool { return strings.Contains(r.Stderr.String(), `"subscribed"`) })
		pub := mqtttest.Dial(t, b.URL())
		pub.Publish(t, topic, 1, []byte("1"), []byte("2"), []byte("3"))
		connectortest.WaitTopic(t, dir, "in", 3, r)
		if stderr := r.StopOK(t); !strings.Contains(stderr, "TLS CERTIFICATE VERIFICATION IS OFF") {
			t.Errorf("no warning with --tls-insecure-skip-verify:\n%s", stderr)
		}
	})
}
