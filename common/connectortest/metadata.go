package connectortest

import "testing"

// HasProperties fails the test (going on) for each of names, a snake_case
// option name, that the metadata's schema lacks.
func (md Metadata) HasProperties(t testing.TB, names ...string) {
	t.Helper()
	for _, p := range names {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
}
