package cli

import (
	"runtime/debug"
	"testing"
)

func TestModuleVersion(t *testing.T) {
	info := func(v string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "github.com/culvert-dev/culvert/sources/file-source", Version: v}}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, c := range []struct {
		ldflags string
		read    func() (*debug.BuildInfo, bool)
		want    string
	}{
		{"1.2.3", info("v0.1.0"), "1.2.3"}, // -ldflags wins
		{"dev", info("v0.1.0"), "0.1.0"},   // go install MODULE@v0.1.0
		{"dev", info("(devel)"), "dev"},    // go build in a checkout
		{"dev", info(""), "dev"},
		{"dev", none, "dev"},
	} {
		if got := moduleVersion(c.ldflags, c.read); got != c.want {
			t.Errorf("moduleVersion(%q, ...) = %q, want %q", c.ldflags, got, c.want)
		}
	}
}
