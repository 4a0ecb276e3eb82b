package main

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries, --username/--password and
// --tls-insecure-skip-verify.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "t", "--bus", busDir, "--kafka-topic", "k"}

	t.Run("bad values exit 2 naming the option, --max-retries", func(t *testing.T) {
		connectortest.ConnectionOptions(t, app, "kafka", 2, ": connecting to kafka", append(base, "--brokers", connectortest.FreeAddr(t), "--username", "u", "--password", "s3cret")...)
	})

	t.Run("--username, --password and --tls-insecure-skip-verify", func(t *testing.T) {
		_, serverTLS := kafkatest.Certs(t, t.TempDir())
		addr := kafkatest.Start(t, kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("PLAIN", "culvert", "pa55word"))
		dir := t.TempDir()
		connectortest.PublishValues(t, dir, "t", `{"n":1}`, `{"n":2}`)
		args := []string{"--topic", "t", "--bus", dir, "--kafka-topic", "k", "--brokers", addr, "--tls-insecure-skip-verify", "--username", "culvert",
			"--from", "beginning", "--stop-at-end"}
		stderr := connectortest.MustRun(t, app(), append(args, "--password", "pa55word")...)
		if !strings.Contains(stderr, "TLS CERTIFICATE VERIFICATION IS OFF") {
			t.Errorf("no warning with --tls-insecure-skip-verify:\n%s", stderr)
		}
		// A refused password is not retried, and not shown.
		connectortest.Exits(t, app(), 1, "connecting to kafka kafka://culvert:*****@", append(args, "--password", "s3cret", "--group", "g2")...)
	})
}
