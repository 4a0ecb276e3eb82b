package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/testserver"
)

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries, --username/--password and the --tls-*
// options, beside what the URL says.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "t", "--bus", busDir, "--subject", "a"}

	t.Run("bad values exit 2 naming the option", func(t *testing.T) {
		connectortest.BadOption(t, app(), "username", append(base, "--password", "s3cret")...)
	})

	t.Run("--tls-cert/--tls-key pair, --max-retries", func(t *testing.T) {
		connectortest.ConnectionOptions(t, app, "nats", 2, ": connecting to NATS at nats://u:*****@", append(base, "--url", "nats://u:s3cret@"+connectortest.FreeAddr(t))...)
	})

	// roundTrip reads 3 messages of a new stream through the source run
	// with args; connect makes the test's own client.
	roundTrip := func(t *testing.T, url string, opts []natsgo.Option, args ...string) string {
		_, js := natstest.Connect(t, url, opts...)
		stream, subj := natstest.Unique("S"), natstest.Unique("s.")
		natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj}})
		for i := range 3 {
			if _, err := js.Publish(context.Background(), subj, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		dir := t.TempDir()
		r := connectortest.Start(t, app(), append([]string{"--topic", "t", "--bus", dir, "--stream", stream}, args...)...)
		connectortest.WaitTopic(t, dir, "t", 3, r)
		return r.StopOK(t)
	}

	t.Run("--username and --password", func(t *testing.T) {
		srv := testserver.NATS(t, "--user", "culvert", "--pass", "pa55word")
		roundTrip(t, "nats://"+srv.Addr, []natsgo.Option{natsgo.UserInfo("culvert", "pa55word")},
			"--url", "nats://"+srv.Addr, "--username", "culvert", "--password", "pa55word")
		// A refused password is not retried, and not shown.
		connectortest.Exits(t, app(), 1, "nats: Authorization Violation",
			"--topic", "t", "--bus", busDir, "--subject", "a", "--url", "nats://"+srv.Addr, "--username", "culvert", "--password", "s3cret")
	})

	t.Run("--tls-ca and --tls-insecure-skip-verify", func(t *testing.T) {
		certs := natstest.NewCerts(t, t.TempDir())
		srv := natstest.StartServer(t, &certs)
		roundTrip(t, srv.PlainURL(), srv.ClientOptions(), "--url", fmt.Sprintf("nats://127.0.0.1:%d", srv.Port), "--tls-ca", certs.CA)
		stderr := roundTrip(t, srv.PlainURL(), srv.ClientOptions(), "--url", fmt.Sprintf("nats://127.0.0.1:%d", srv.Port), "--tls-insecure-skip-verify")
		if !strings.Contains(stderr, "TLS CERTIFICATE VERIFICATION IS OFF") {
			t.Errorf("no warning with --tls-insecure-skip-verify:\n%s", stderr)
		}
	})
}
