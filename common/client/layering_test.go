// Package client_test checks the layering of common: the client packages
// and the bus backends sit below the connector runner.
package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are the packages that no client package nor bus backend may
// depend on, even indirectly: the runner, and through it the jq engine and
// Prometheus.
var forbidden = []string{
	"github.com/culvert-dev/culvert/common/connector",
	"github.com/culvert-dev/culvert/common/cli",
	"github.com/itchyny/gojq",
	"github.com/prometheus/client_golang/prometheus",
}

// TestNoArrowRunsUpward fails when a package under common/client or
// common/bus imports (directly or not) one of forbidden. Test helpers
// (packages whose name ends in "test") are held to the same rule, except
// bustest and connectortest's users, which may run connectors.
func TestNoArrowRunsUpward(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`,
		"github.com/culvert-dev/culvert/common/client/...", "github.com/culvert-dev/culvert/common/bus/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		checked++
		for _, f := range forbidden {
			for _, d := range deps {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s: client packages and bus backends must not import the connector runner, gojq or Prometheus", pkg, d)
					break
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list listed only %d packages:\n%s", checked, out)
	}
}
