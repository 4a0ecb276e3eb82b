package main

import (
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "sql-sink", cli.DirectionSink)
	md.HasProperties(t, "url", "username", "password", "max_retries", "table", "columns", "mode", "key_columns", "cdc", "auto_create", "auto_evolve")
	for _, p := range []string{"url", "password"} {
		if md.Schema.Properties[p]["writeOnly"] != true {
			t.Errorf("%s is not writeOnly: %v", p, md.Schema.Properties[p])
		}
	}
}

func TestHelpStatesTheGuaranteeOfEachMode(t *testing.T) {
	connectortest.Help(t, app(), "--mode insert is at-least-once", "--mode upsert and --cdc make redelivery harmless", "SQLSTATE", "never dead-lettered", "Examples:")
}
