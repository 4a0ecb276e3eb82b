package main

import (
	"net/url"
	"testing"

	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries, --username/--password and the --tls-*
// options, beside what the URL says.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "orders", "--bus", busDir, "--routing-key", "q"}

	t.Run("bad values exit 2 naming the option, --max-retries", func(t *testing.T) {
		connectortest.ConnectionOptions(t, app, "rabbitmq", 2, "", append(base, "--url", "amqp://guest:s3cret@"+connectortest.FreeAddr(t)+"/")...)
	})

	t.Run("--username and --password", func(t *testing.T) {
		queue := rabbitmqtest.Queue(t, "snk-creds", nil)
		dir := t.TempDir()
		connectortest.PublishValues(t, dir, "orders", `{"n":1}`, `{"n":2}`)
		connectortest.MustRun(t, app(), "--topic", "orders", "--bus", dir, "--url", "amqp://127.0.0.1:5672/", "--username", "guest", "--password", "guest",
			"--routing-key", queue, "--from", "beginning", "--stop-at-end")
		if n := rabbitmqtest.Messages(t, queue); n != 2 {
			t.Errorf("%d messages in the queue, want 2", n)
		}
		connectortest.Exits(t, app(), 1, "check the user and password",
			"--topic", "orders", "--bus", dir, "--url", "amqp://127.0.0.1:5672/", "--username", "guest", "--password", "s3cret", "--routing-key", queue)
	})

	t.Run("--tls-ca, --tls-cert, --tls-key", func(t *testing.T) {
		addr, ca, q := rabbitmqtest.TLS(t)
		files, _ := url.ParseQuery(q)
		queue := rabbitmqtest.Queue(t, "snk-tls", nil)
		dir := t.TempDir()
		connectortest.PublishValues(t, dir, "orders", `{"n":1}`, `{"n":2}`)
		connectortest.MustRun(t, app(), "--topic", "orders", "--bus", dir, "--url", "amqp://guest:guest@"+addr+"/", "--routing-key", queue, "--from", "beginning", "--stop-at-end",
			"--tls-ca", ca, "--tls-cert", files.Get("tls_cert"), "--tls-key", files.Get("tls_key"))
		if n := rabbitmqtest.Messages(t, queue); n != 2 {
			t.Errorf("%d messages in the queue, want 2", n)
		}
	})
}
