package main

import (
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestMaxRetries: --max-retries bounds the failed connection attempts in a
// row, at start too; a bad value exits 2 naming it.
func TestMaxRetries(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir(), "--kafka-topic", "k"}
	connectortest.BadOption(t, app(), "max-retries", append(base, "--brokers", "h", "--max-retries", "-1")...)
	connectortest.BadOption(t, app(), "tls-key", append(base, "--brokers", "h", "--tls-cert", "c.pem")...)
	stderr := connectortest.Exits(t, app(), 1, "giving up after 2 failed attempts (--max-retries 1): connecting to kafka",
		append(base, "--brokers", connectortest.FreeAddr(t), "--max-retries", "1")...)
	if n := strings.Count(stderr, `"message":"connecting to kafka failed, retrying"`); n != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", n, stderr)
	}
}
