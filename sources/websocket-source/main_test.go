package main

import (
	"slices"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "websocket-source", cli.DirectionSource)
	md.HasProperties(t, "url", "header", "subscribe", "ping_interval", "max_retries", "read_limit", "tls_ca")
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
