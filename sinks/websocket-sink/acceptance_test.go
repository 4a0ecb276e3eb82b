package main

import (
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite with --url: the sink
// pushes to a WebSocket server of the test's own (wss:// with a
// self-signed certificate for TLS), restarted on the same address for the
// Restart scenario.
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startReceiver,
		BadOptions: []connectortest.BadArgs{
			{Option: "--listen"},
			{Args: []string{"--listen", ":1", "--url", "ws://h/"}, Option: "--url"},
			{Args: []string{"--listen", "nohostport"}, Option: "--listen"},
			{Args: []string{"--listen", ":1", "--path", "nope"}, Option: "--path"},
			{Args: []string{"--listen", ":1", "--slow-client", "block"}, Option: "--slow-client"},
			{Args: []string{"--listen", ":1", "--client-buffer", "0"}, Option: "--client-buffer"},
			{Args: []string{"--listen", ":1", "--wait-for-clients", "-1"}, Option: "--wait-for-clients"},
			{Args: []string{"--url", "ws://h/", "--wait-for-clients", "2"}, Option: "--wait-for-clients"},
			{Args: []string{"--listen", ":1", "--header", "A: b"}, Option: "--header"},
			{Args: []string{"--listen", ":1", "--tls-cert", "c.pem"}, Option: "--tls-key"},
			{Args: []string{"--url", "http://h/"}, Option: "--url"},
			{Args: []string{"--url", "ws://h/", "--header", "nocolon"}, Option: "--header"},
			{Args: []string{"--url", "ws://h/", "--message-type", "json"}, Option: "--message-type"},
			{Args: []string{"--url", "ws://h/", "--write-timeout", "0s"}, Option: "--write-timeout"},
		},
	})
}

// startReceiver serves a receiver, which keeps every message it gets.
func startReceiver(t *testing.T, need connectortest.Need) *connectortest.System {
	rc := &receiver{}
	addr := connectortest.FreeAddr(t)
	url := "ws://" + addr + "/in"
	var tlsArgs []string
	if need.TLS {
		var ca string
		rc.certFile, rc.keyFile, _ = selfSigned(t)
		ca, url = rc.certFile, "wss://"+addr+"/in"
		tlsArgs = []string{"--tls-ca", ca}
	}
	kill, _ := rc.serve(t, addr, 0)
	return &connectortest.System{
		Args:     append([]string{"--url", url, "--header", "Authorization: Bearer sk-91f0"}, tlsArgs...),
		Secret:   "sk-91f0",
		Received: func(testing.TB) []string { return rc.messages() },
		Restart: func(t testing.TB) {
			kill()
			time.Sleep(300 * time.Millisecond) // the sink finds the server gone
			kill, _ = rc.serve(t, addr, 0)
		},
		Check: func(t testing.TB, s connectortest.Scenario, _ []record.Record, stderr string) {
			if s != connectortest.Restart {
				return
			}
			// The unconfirmed batch is sent again: every record, in order of first arrival.
			connectortest.InOrder(t, rc.messages())
			if !strings.Contains(stderr, "reconnected") {
				t.Errorf("stderr lacks reconnected:\n%s", stderr)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if rc.conns < 2 {
				t.Errorf("%d connections, want a reconnection", rc.conns)
			}
			for i, a := range rc.auth {
				if a != "Bearer sk-91f0" {
					t.Errorf("connection %d: Authorization %q", i+1, a)
				}
			}
		},
	}
}
