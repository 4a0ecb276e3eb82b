package main

import (
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestMaxRetries: --max-retries bounds the failed connection attempts in a
// row, at start too; a bad value, and --tls-cert or --tls-key alone, exit 2
// naming the option.
func TestMaxRetries(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir(), "--mqtt-topic", "a"}
	connectortest.ConnectionOptions(t, app, "mqtt", 2, ": connecting to MQTT broker", append(base, "--url", "tcp://u:s3cret@"+connectortest.FreeAddr(t))...)
}
