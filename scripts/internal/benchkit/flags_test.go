package benchkit

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlagSetAndParse(t *testing.T) {
	var stderr bytes.Buffer
	fl := FlagSet("x", "does x", &stderr)
	n := fl.Int("n", 5, "records")
	if code, ok := Parse(fl, []string{"-n", "7"}); !ok || code != 0 || *n != 7 {
		t.Fatalf("-n 7: %d, %v, n=%d", code, ok, *n)
	}
	if code, ok := Parse(FlagSet("x", "does x", &stderr), []string{"-h"}); ok || code != 0 {
		t.Fatalf("-h: %d, %v", code, ok)
	}
	if out := stderr.String(); !strings.Contains(out, "usage: bench x [flags]\n\ndoes x\n") {
		t.Fatalf("-h printed %q", out)
	}
	stderr.Reset()
	if code, ok := Parse(FlagSet("x", "does x", &stderr), []string{"-nope"}); ok || code != 2 || !strings.Contains(stderr.String(), "-nope") {
		t.Fatalf("-nope: %d, %v, %q", code, ok, stderr.String())
	}
}
