package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileMatchesStdout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.jsonl")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "50", "-seed", "3", "-o", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"-n", "50", "-seed", "3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, stdout.Bytes()) {
		t.Fatal("-o output differs from stdout output")
	}
	if got := strings.Count(string(file), "\n"); got != 50 {
		t.Fatalf("got %d lines, want 50", got)
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{{"-n", "-1"}, {"-bogus"}, {"extra"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
