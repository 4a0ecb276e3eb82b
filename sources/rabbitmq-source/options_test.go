package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries, --username/--password and the --tls-*
// options, beside what the URL says.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "orders", "--bus", busDir, "--queue", "q"}

	t.Run("bad values exit 2 naming the option, --max-retries", func(t *testing.T) {
		connectortest.ConnectionOptions(t, app, "rabbitmq", 2, "", append(base, "--url", "amqp://guest:s3cret@"+connectortest.FreeAddr(t)+"/")...)
	})

	t.Run("--username and --password", func(t *testing.T) {
		queue := rabbitmqtest.Queue(t, "src-creds", nil)
		rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue, orders(0, 10)...)
		dir := t.TempDir()
		r := start(t, "--topic", "orders", "--bus", dir, "--url", "amqp://127.0.0.1:5672/", "--username", "guest", "--password", "guest", "--queue", queue, "--passive")
		connectortest.WaitTopic(t, dir, "orders", 10, r)
		r.StopOK(t)

		stderr := connectortest.Exits(t, app(), 1, "check the user and password",
			"--topic", "orders", "--bus", dir, "--url", "amqp://127.0.0.1:5672/", "--username", "guest", "--password", "s3cret", "--queue", queue)
		if !strings.Contains(stderr, "amqp://guest:") {
			t.Errorf("the error does not say which user was refused: %s", stderr)
		}
	})

	t.Run("--tls-ca, --tls-cert, --tls-key", func(t *testing.T) {
		addr, ca, q := rabbitmqtest.TLS(t)
		files, _ := url.ParseQuery(q)
		for _, tls := range [][]string{
			{"--tls-ca", ca},
			{"--tls-insecure-skip-verify"},
		} {
			queue := rabbitmqtest.Queue(t, "src-tls", nil)
			rabbitmqtest.Publish(t, rabbitmqtest.Channel(t), "", queue, orders(0, 10)...)
			dir := t.TempDir()
			args := append([]string{"--topic", "orders", "--bus", dir, "--url", "amqp://guest:guest@" + addr + "/", "--queue", queue, "--passive",
				"--tls-cert", files.Get("tls_cert"), "--tls-key", files.Get("tls_key")}, tls...)
			r := start(t, args...)
			connectortest.WaitTopic(t, dir, "orders", 10, r)
			stderr := r.StopOK(t)
			if tls[0] == "--tls-insecure-skip-verify" && !strings.Contains(stderr, "TLS CERTIFICATE VERIFICATION IS OFF") {
				t.Errorf("no warning with --tls-insecure-skip-verify:\n%s", stderr)
			}
		}
		// Without the CA the server's certificate does not verify: not retried.
		connectortest.Exits(t, app(), 1, "certificate", "--topic", "orders", "--bus", busDir, "--url", "amqps://guest:guest@"+addr+"/", "--queue", "q",
			"--tls-cert", files.Get("tls_cert"), "--tls-key", files.Get("tls_key"))
	})
}
