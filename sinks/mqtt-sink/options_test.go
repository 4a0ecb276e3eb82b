package main

import (
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestMaxRetries: --max-retries bounds the failed connection attempts in a
// row, at start too; a bad value exits 2 naming it.
func TestMaxRetries(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir(), "--mqtt-topic", "a"}
	connectortest.BadOption(t, app(), "max-retries", append(base, "--url", "tcp://127.0.0.1:1883", "--max-retries", "-1")...)
	stderr := connectortest.Exits(t, app(), 1, "giving up after 3 failed attempts (--max-retries 2): connecting to MQTT broker",
		append(base, "--url", "tcp://u:s3cret@"+connectortest.FreeAddr(t), "--max-retries", "2")...)
	if n := strings.Count(stderr, `"message":"connecting to mqtt failed, retrying"`); n != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", n, stderr)
	}
}
