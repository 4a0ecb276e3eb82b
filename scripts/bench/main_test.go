package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// make bench runs `bench all`, then every other listed subcommand, which
// the top-level Makefile names in BENCHES.
func TestMakefileBenchesNameEverySubcommand(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^BENCHES\s*:=(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no BENCHES := line")
	}
	var want []string
	for _, sc := range subcommands {
		if !sc.hidden && sc.name != "all" {
			want = append(want, sc.name)
		}
	}
	if got := strings.Fields(string(m[1])); !slices.Equal(got, want) {
		t.Fatalf("BENCHES = %q, want %q", got, want)
	}
}

func TestHelpListsTheSubcommandsOneLineEach(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"-h"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d, stderr %s", args, code, stderr.String())
		}
		out := stdout.String()
		for _, sc := range subcommands {
			line := "\n  " + sc.name + " "
			if got := strings.Count(out, line); sc.hidden && got != 0 || !sc.hidden && got != 1 {
				t.Errorf("%q: %q listed %d times (hidden: %v):\n%s", args, sc.name, got, sc.hidden, out)
			}
		}
	}
}

// Every subcommand has its own flag set: -h prints its usage and exits 0,
// a bad flag exits 2 naming it; nothing is left behind for the next one.
func TestEverySubcommandParsesItsOwnFlags(t *testing.T) {
	for _, sc := range subcommands {
		for range 2 {
			var stdout, stderr bytes.Buffer
			if code := run([]string{sc.name, "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: bench "+sc.name+" [flags]") {
				t.Errorf("%s -h: exit %d, stderr %s", sc.name, code, stderr.String())
			}
			stderr.Reset()
			if code := run([]string{sc.name, "-no-such-flag"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-no-such-flag") {
				t.Errorf("%s -no-such-flag: exit %d, stderr %s", sc.name, code, stderr.String())
			}
		}
	}
}

func TestHelpOfASubcommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help", "kafka"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-rep int") {
		t.Fatalf("help kafka: exit %d, stderr %s", code, stderr.String())
	}
}

func TestUnknownSubcommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"mqttt"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown subcommand "mqttt"`) || !strings.Contains(stderr.String(), "  mqtt ") {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
}

// `bench -bin bin -md` (make bench before subcommands) is `bench all -bin bin -md`.
func TestFlagsFirstMeanAll(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "bench all: -n must be > 0") {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"-bin", t.TempDir(), "-n", "10"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "bench all: FAILED") {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
}
