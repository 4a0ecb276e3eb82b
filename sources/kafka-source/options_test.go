package main

import (
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestMaxRetries: --max-retries bounds the failed connection attempts in a
// row, at start too; a bad value exits 2 naming it.
func TestMaxRetries(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir(), "--kafka-topic", "k"}
	connectortest.BadOption(t, app(), "tls-key", append(base, "--brokers", "h", "--tls-cert", "c.pem")...)
	connectortest.MaxRetries(t, app, "kafka", 1, ": connecting to kafka", append(base, "--brokers", connectortest.FreeAddr(t))...)
}
