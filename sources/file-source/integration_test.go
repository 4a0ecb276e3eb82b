package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binary returns the path of a built connector: $CULVERT_BIN/<name> when
// CULVERT_BIN is set and holds it, else one built once for this test run.
func binary(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("CULVERT_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Logf("%s not found in CULVERT_BIN=%s; building it", name, dir)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "culvert-file-source-test-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator),
			".", "github.com/culvert-dev/culvert/sinks/file-sink")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runBinary runs a built connector to completion, with a time limit.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(bin), args, err, errb.String())
	}
	return out.String(), errb.String()
}

// TestEndToEndWithFileSink publishes a file with the file-source binary and
// writes the topic back out with the file-sink binary.
func TestEndToEndWithFileSink(t *testing.T) {
	src, snk := binary(t, "file-source"), binary(t, "file-sink")
	dir := t.TempDir()
	busDir, in, out := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	var sb strings.Builder
	for i := 1; i <= 2000; i++ {
		fmt.Fprintf(&sb, "{\"seq\":%d,\"amount\":%d}\n", i, i%200)
	}
	writeFile(t, in, sb.String())
	runBinary(t, src, "--topic", "orders", "--bus", busDir, "--path", in)
	runBinary(t, snk, "--topic", "orders", "--bus", busDir, "--path", out, "--from", "beginning", "--stop-at-end")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != sb.String() {
		t.Fatalf("file-sink wrote %d bytes, not the %d bytes file-source read", len(got), sb.Len())
	}

	// With a transform on each side.
	runBinary(t, src, "--topic", "big", "--bus", busDir, "--path", in, "--filter", ".amount > 150")
	stdout, _ := runBinary(t, snk, "--topic", "big", "--bus", busDir, "--path", "-", "--from", "beginning", "--stop-at-end",
		"--map", "{seq}")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 490 { // amounts 151..199 are 49 of every 200
		t.Fatalf("got %d records, want 490", len(lines))
	}
	if lines[0] != `{"seq":151}` {
		t.Fatalf("first record %s", lines[0])
	}
}

// topicProbe reads how many records a topic holds, through one open bus.
type topicProbe struct {
	b   bus.Bus
	sub bus.Subscription
}

func newTopicProbe(t *testing.T, busDir, topic string) *topicProbe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, busDir)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, topic, "test-probe", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	p := &topicProbe{b: b, sub: sub}
	t.Cleanup(func() { sub.Close(); b.Close() })
	return p
}

// end returns the number of records in the topic (the probe never commits).
func (p *topicProbe) end(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := p.sub.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// killAfter starts file-source and SIGKILLs it once the topic holds at least
// atLeast records. It reports whether the process was killed before it
// finished, and how many records the topic then held.
func killAfter(t *testing.T, bin string, probe *topicProbe, atLeast int64, args ...string) (killed bool, end int64) {
	t.Helper()
	var errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for probe.end(t) < atLeast {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("file-source failed before it was killed: %v\n%s", err, errb.String())
			}
			return false, probe.end(t)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the topic never reached %d records", atLeast)
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	err := <-exited
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, probe.end(t)
		}
	}
	if err != nil {
		t.Fatalf("file-source failed: %v\n%s", err, errb.String())
	}
	return false, probe.end(t) // it finished just before the kill
}

// TestKillNineNeitherLosesNorDuplicates is file-source's guarantee: killed
// with SIGKILL at any point and restarted, every line of the file is on the
// topic exactly once, in order, because each write to the bus carries the
// file position reached in the same transaction.
func TestKillNineNeitherLosesNorDuplicates(t *testing.T) {
	src, snk := binary(t, "file-source"), binary(t, "file-sink")
	for attempt, n := 1, 300000; attempt <= 3; attempt, n = attempt+1, n*3 {
		dir := t.TempDir()
		busDir, in := filepath.Join(dir, "bus"), filepath.Join(dir, "seq.jsonl")
		f, err := os.Create(in)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "{\"seq\":%d}\n", i)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()

		args := []string{"--topic", "seq", "--bus", busDir, "--path", in,
			"--batch-size", "1000", "--linger", "0s", "--read-size", "16384", "--log-level", "warn"}
		probe := newTopicProbe(t, busDir, "seq")
		// Kill it up to three times, each time a third of the rest of the
		// way, and count the kills that left lines unpublished.
		var kills []int64
		for end := int64(0); len(kills) < 3; {
			killed, now := killAfter(t, src, probe, end+max(1, (int64(n)-end)/3), args...)
			if !killed || now >= int64(n) {
				break
			}
			if now < end {
				t.Fatalf("the topic shrank from %d to %d records", end, now)
			}
			kills, end = append(kills, now), now
		}
		if len(kills) == 0 {
			t.Logf("file-source finished %d lines before it could be killed; retrying with more", n)
			continue
		}
		t.Logf("%d lines: killed with %v records published", n, kills)
		runBinary(t, src, args...)

		out := filepath.Join(dir, "out.jsonl")
		runBinary(t, snk, "--topic", "seq", "--bus", busDir, "--path", out, "--from", "beginning", "--stop-at-end")
		checkSequence(t, out, n)
		return
	}
	t.Fatal("file-source always finished before it could be killed, even with the largest file")
}

// checkSequence checks that path holds {"seq":1} … {"seq":n}, each once, in order.
func checkSequence(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := 1
	for sc.Scan() {
		var rec struct{ Seq int }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d: %v: %q", want, err, sc.Text())
		}
		switch {
		case rec.Seq < want:
			t.Fatalf("seq %d appears again after %d (duplicate)", rec.Seq, want-1)
		case rec.Seq > want:
			t.Fatalf("seq %d follows %d: %d records lost", rec.Seq, want-1, rec.Seq-want)
		}
		want++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if want-1 != n {
		t.Fatalf("topic ends at seq %d, want %d", want-1, n)
	}
}
