package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "websocket-sink", cli.DirectionSink)
	md.HasProperties(t, "listen", "path", "url", "client_buffer", "slow_client", "wait_for_clients", "header", "tls_cert", "tls_key", "tls_ca")
	if md.Schema.Properties["header"]["writeOnly"] != true {
		t.Errorf("header is not writeOnly: %v", md.Schema.Properties["header"])
	}
	if e := md.Schema.Properties["slow_client"]["enum"]; !slices.Equal(toStrings(e), []string{"drop", "disconnect"}) {
		t.Errorf("slow_client enum %v", e)
	}
	if d := md.Schema.Properties["wait_for_clients"]["default"]; d != float64(0) {
		t.Errorf("wait_for_clients default %v", d)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// start runs the connector's command line until it exits or Stop.
func start(t *testing.T, args ...string) *connectortest.Running {
	t.Helper()
	return connectortest.Start(t, app(), args...)
}

// publish writes values to topic on the embedded bus in dir; each record
// whose value starts with "bin-" carries websocket.type binary.
func publish(t *testing.T, dir, topic string, values ...string) {
	t.Helper()
	recs := connectortest.Records(values...)
	for i, v := range values {
		if strings.HasPrefix(v, "bin-") {
			recs[i].Headers = []record.Header{{Key: HeaderType, Value: []byte("binary")}}
		}
	}
	connectortest.Publish(t, dir, topic, recs...)
}
