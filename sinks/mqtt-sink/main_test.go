package main

import (
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
)

func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "mqtt-sink", cli.DirectionSink)
	md.HasProperties(t, "url", "mqtt_topic", "mqtt_topic_from_key", "qos", "retain", "username", "password", "tls_ca", "tls_cert", "tls_key")
	if md.Schema.Properties["password"]["writeOnly"] != true {
		t.Errorf("password is not writeOnly")
	}
	if d := md.Schema.Properties["qos"]["default"]; d != float64(1) {
		t.Errorf("qos default %v", d)
	}
}
