package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite on a file the suite
// appends lines to, which the source follows (--follow).
func TestAcceptance(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in")
	writeFile(t, path, "x\n")
	bad := func(option string, args ...string) connectortest.BadArgs {
		return connectortest.BadArgs{Args: args, Option: option}
	}
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startFile,
		BadOptions: []connectortest.BadArgs{
			bad("--batch-size", "--path", path, "--batch-size", "0"),
			bad("--batch-size", "--path", path, "--batch-size", "many"),
			bad("--from", "--path", path, "--from", "middle"),
			bad("--filter", "--path", path, "--filter", ".a >"),
			bad("--map", "--path", path, "--map", "}"),
			bad("--path"),
			bad("--follow", "--path", "-", "--follow"),
			bad("--delimiter", "--path", path, "--delimiter", `\q`),
			bad("--delimiter", "--path", path, "--delimiter", ""),
			bad("--read-size", "--path", path, "--read-size", "10"),
			bad("--poll-interval", "--path", path, "--poll-interval", "soon"),
			bad("--poll-interval", "--path", path, "--follow", "--poll-interval", "0s"),
			bad("--linger", "--path", path, "--linger", "-"),
			bad("--on-error", "--path", path, "--on-error", "ignore"),
			bad("--log-level", "--path", path, "--log-level", "loud"),
			bad("--path", "--path", dir),
			bad("extra", "--path", path, "extra"),
		},
		NotApplicable: map[connectortest.Scenario]string{
			connectortest.Restart: "a file has no server to restart",
			connectortest.TLS:     "a file is not reached over a network",
		},
	})
}

// startFile makes an empty file of the test's own.
func startFile(t *testing.T, _ connectortest.Need) *connectortest.System {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, "")
	return &connectortest.System{
		Args: []string{"--path", path, "--follow", "--poll-interval", "10ms"},
		Produce: func(t testing.TB, values ...string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteString(strings.Join(values, "\n") + "\n")
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		},
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.Poison:
				// The dead letter names the line's byte offset: after {"n":1}\n.
				for k, want := range map[string]string{"culvert.stage": "transform", "culvert.offset": "8", "culvert.step": "decode"} {
					if got := connectortest.Header(t, recs[0], k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
				if e := connectortest.Header(t, recs[0], "culvert.error"); !strings.Contains(e, "not JSON") {
					t.Errorf("culvert.error %q", e)
				}
				if !strings.Contains(stderr, "dead-letter") {
					t.Errorf("no warning about the dead letter in the log:\n%s", stderr)
				}
			case connectortest.Stop:
				// The position is saved with the records: a restart
				// neither repeats nor skips a line.
				connectortest.CheckSequence(t, connectortest.Values(recs), 3000, false)
			}
		},
	}
}
