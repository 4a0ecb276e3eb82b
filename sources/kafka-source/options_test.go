package main

import (
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestMaxRetries: --max-retries bounds the failed connection attempts in a
// row, at start too; a bad value, and --tls-cert or --tls-key alone, exit 2
// naming the option.
func TestMaxRetries(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir(), "--kafka-topic", "k"}
	connectortest.ConnectionOptions(t, app, "kafka", 1, ": connecting to kafka", append(base, "--brokers", connectortest.FreeAddr(t))...)
}
