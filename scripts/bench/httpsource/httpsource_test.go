package httpsource

import (
	"bytes"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

func TestConnectionsFlag(t *testing.T) {
	for _, bad := range []string{"32,x", "0", "32,,128", "-4"} {
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"-connections", bad}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-connections") {
			t.Errorf("-connections %q: exit %d, stderr %q", bad, code, stderr.String())
		}
	}
}

// Each webhook with default options is checked against the raw server at
// its own number of connections; the --linger 0 rows have no floor.
func TestPrintTableChecksTheFloorsPerConnections(t *testing.T) {
	results := []result{
		{step: "raw", connections: 32, rps: 40000, onTopic: -1},
		{step: "webhook", connections: 32, rps: 32000, onTopic: 1, floors: true},
		{step: "webhook, --linger 0", connections: 32, rps: 10000, onTopic: 1},
		{step: "raw", connections: 128, rps: 50000, onTopic: -1},
		{step: "webhook", connections: 128, rps: 31000, onTopic: 1, floors: true},
	}
	var out, stderr bytes.Buffer
	var f benchkit.Floors
	printTable(&out, &stderr, results, &f)
	for _, want := range []string{
		"| webhook | 32 | 32,000 |", "| 0.80x | ≥ 0.8× ok; ≥ 30,000 requests/s ok |",
		"| webhook, --linger 0 | 32 | 10,000 |", "| 0.25x | – |",
		"| webhook | 128 | 31,000 |", "| 0.62x | ≥ 0.8× MISSED; ≥ 30,000 requests/s ok |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if m := f.Missed(); len(f.Checks()) != 4 || len(m) != 1 || m[0].What != "webhook, 128 connections, vs raw" {
		t.Errorf("checks %+v, missed %+v", f.Checks(), m)
	}
}
