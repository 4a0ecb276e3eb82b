package main

import (
	"strings"
	"testing"
)

// TestREADMENamesEachOptionsVariable: the catalog shows the environment
// variable that metadata gives in each property's x-env.
func TestREADMENamesEachOptionsVariable(t *testing.T) {
	envelope, err := compileEnvelopeSchema()
	if err != nil {
		t.Fatal(err)
	}
	meta := `{"name":"zeta-source","direction":"source","version":"1","description":"Z.","schema":{"type":"object","properties":{` +
		`"path":{"type":"string","description":"A path.","x-env":"CULVERT_ZETA_SOURCE_PATH"},` +
		`"topic":{"type":"string","description":"A topic.","x-env":"CULVERT_TOPIC"}},"required":["topic"]}}`
	c, err := parseMetadata("zeta-source", []byte(meta), envelope)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(renderREADME([]connector{c}))
	for _, want := range []string{"| `path` | `--path`, `CULVERT_ZETA_SOURCE_PATH` |", "| `topic` | `--topic`, `CULVERT_TOPIC` |"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q:\n%s", want, readme)
		}
	}
}
