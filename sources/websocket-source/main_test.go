package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "websocket-source", cli.DirectionSource)
	for _, p := range []string{"url", "header", "subscribe", "ping_interval", "max_retries", "read_limit", "tls_ca"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if !slices.Contains(md.Schema.Required, "url") {
		t.Errorf("required = %v, want url among them", md.Schema.Required)
	}
	if md.Schema.Properties["header"]["writeOnly"] != true {
		t.Errorf("header is not writeOnly: %v", md.Schema.Properties["header"])
	}
	if d := md.Schema.Properties["ping_interval"]["default"]; d != "30s" {
		t.Errorf("ping_interval default %v", d)
	}
}

// start runs the connector's command line until Stop.
func start(t *testing.T, args ...string) *connectortest.Running {
	t.Helper()
	return connectortest.Start(t, app(), args...)
}

func TestBadOptionsExit2NamingTheOption(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--url", []string{}},
		{"--url", []string{"--url", "http://example.com/"}},
		{"--url", []string{"--url", "ws:///nohost"}},
		{"--header", []string{"--url", "ws://h/", "--header", "no colon here"}},
		{"--ping-interval", []string{"--url", "ws://h/", "--ping-interval", "-1s"}},
		{"--read-limit", []string{"--url", "ws://h/", "--read-limit", "0"}},
		{"--max-retries", []string{"--url", "ws://h/", "--max-retries", "-1"}},
		{"--tls-key", []string{"--url", "wss://h/", "--tls-cert", "c.pem"}},
	} {
		connectortest.BadOption(t, app(), c.want, append([]string{"--topic", "t", "--bus", dir}, c.args...)...)
	}
	// A bad header is named by position, its value is never shown.
	_, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", dir, "--url", "ws://h/", "--header", "Authorization Bearer s3cr3t")
	if strings.Contains(stderr, "s3cr3t") {
		t.Errorf("stderr shows the header value: %s", stderr)
	}
}
