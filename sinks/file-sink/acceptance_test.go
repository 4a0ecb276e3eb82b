package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite, writing to a file
// of the test's own.
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App: app,
		Start: func(t *testing.T, _ connectortest.Need) *connectortest.System {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			return &connectortest.System{
				Args:     []string{"--path", path},
				Received: func(t testing.TB) []string { return completeLines(t, path) },
				Check:    checkDeadLetterHeaders,
			}
		},
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--path", "-", "--from", "middle"}, Option: "--from"},
			{Args: []string{"--path", "-", "--output", "yaml"}, Option: "--output"},
			{Args: []string{"--path", "-", "--filter", ".a >"}, Option: "--filter"},
			{Args: []string{"--path", "-", "--batch-size", "0"}, Option: "--batch-size"},
			{Args: []string{"--path", "-", "--on-error", "ignore"}, Option: "--on-error"},
			{Args: []string{"--path", "-", "--shutdown-timeout", "later"}, Option: "--shutdown-timeout"},
			{Args: []string{"--path", "-", "--fsync=maybe"}, Option: "--fsync"},
			{Args: []string{}, Option: "--path"},
		},
		NotApplicable: map[connectortest.Scenario]string{
			connectortest.Restart: "a file has no server to restart",
			connectortest.TLS:     "a file is not reached over a network",
		},
	})
}

// completeLines returns the lines of the file at path that end with a
// newline (a line being written may not have its newline yet).
func completeLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		return strings.Split(string(b[:i]), "\n")
	}
	return nil
}

// checkDeadLetterHeaders: the dead letters of values that are not JSON
// say where they failed, with their bus offsets (records 3 and 7).
func checkDeadLetterHeaders(t testing.TB, s connectortest.Scenario, recs []record.Record, _ string) {
	if s != connectortest.Poison {
		return
	}
	for i, r := range recs {
		for k, want := range map[string]string{
			"culvert.stage":  "transform",
			"culvert.offset": []string{"3", "7"}[i],
			"culvert.step":   "decode",
		} {
			if got := connectortest.Header(t, r, k); got != want {
				t.Errorf("dead letter %d: %s = %q, want %q", i, k, got, want)
			}
		}
		if e := connectortest.Header(t, r, "culvert.error"); !strings.Contains(e, "not JSON") {
			t.Errorf("culvert.error = %q", e)
		}
	}
}
