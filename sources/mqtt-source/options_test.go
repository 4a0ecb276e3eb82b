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

	t.Run("bad values exit 2 naming the option", func(t *testing.T) {
		connectortest.BadOption(t, app(), "max-retries", append(base, "--url", "tcp://127.0.0.1:1883", "--max-retries", "-1")...)
		connectortest.BadOption(t, app(), "tls-key", append(base, "--url", "ssl://127.0.0.1:8883", "--tls-cert", "c.pem", "--password", "s3cret", "--username", "u")...)
	})

	t.Run("--max-retries gives up with one message", func(t *testing.T) {
		stderr := connectortest.Exits(t, app(), 1, "giving up after 3 failed attempts (--max-retries 2): connecting to MQTT broker",
			append(base, "--url", "tcp://u:s3cret@"+connectortest.FreeAddr(t), "--max-retries", "2")...)
		if n := strings.Count(stderr, `"message":"connecting to mqtt failed, retrying"`); n != 2 {
			t.Errorf("%d retries logged, want 2:\n%s", n, stderr)
		}
		if !strings.Contains(stderr, `"max_retries":2`) || !strings.Contains(stderr, `"retry_in":"`) {
			t.Errorf("a retry is not logged with max_retries and a retry_in with its unit:\n%s", stderr)
		}
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
