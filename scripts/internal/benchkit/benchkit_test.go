package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

func TestInt(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 7: "7", 999.4: "999", 999.6: "1,000", 1234: "1,234", 123456: "123,456",
		1234567.8: "1,234,568", -1234: "-1,234", -123456: "-123,456",
	} {
		if got := Int(in); got != want {
			t.Errorf("Int(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRatioAndPerK(t *testing.T) {
	if got := Ratio(80, 100); got != "0.80×" {
		t.Errorf("Ratio = %q", got)
	}
	if got := PerK(1500*time.Millisecond, 1_000_000); got != "1.5 ms" {
		t.Errorf("PerK = %q", got)
	}
}

func TestMarkdown(t *testing.T) {
	tb := NewTable("lrl", "step", "records/s", "notes")
	tb.Row("raw", Int(100000), "a|b")
	tb.Row("short")
	var b bytes.Buffer
	tb.Markdown(&b)
	want := "| step | records/s | notes |\n|---|---:|---|\n| raw | 100,000 | a\\|b |\n| short |  |  |\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestText(t *testing.T) {
	tb := NewTable("lrl", "step", "records/s", "notes")
	tb.Row("file-source", "1,000", "x")
	tb.Row("jq", "12", "")
	var b bytes.Buffer
	tb.Text(&b)
	want := "" +
		"step         records/s  notes\n" +
		"-----------  ---------  -----\n" +
		"file-source      1,000  x\n" +
		"jq                  12\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestNewTablePanicsOnBadAlign(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	NewTable("l", "a", "b")
}

func TestCPUModel(t *testing.T) {
	in := "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\nflags\t: x\n"
	if got := CPUModel(strings.NewReader(in)); got != "AMD EPYC 9654 96-Core Processor" {
		t.Errorf("CPUModel = %q", got)
	}
	if got := CPUModel(strings.NewReader("processor : 0\n")); got != "unknown CPU" {
		t.Errorf("CPUModel = %q", got)
	}
}

// Orders and Lines give what orders.Write writes.
func TestOrdersAreWhatWriteWrites(t *testing.T) {
	var b bytes.Buffer
	if err := orders.Write(&b, 100, 3, nil); err != nil {
		t.Fatal(err)
	}
	if got := Lines(Orders(100, 3)); !bytes.Equal(got, b.Bytes()) {
		t.Errorf("Lines(Orders(100, 3)) differs from orders.Write")
	}
}

func TestID(t *testing.T) {
	a, b := ID(), ID()
	if len(a) != 8 || a == b {
		t.Errorf("ID() = %q, %q", a, b)
	}
}

func TestBins(t *testing.T) {
	if _, err := Bins(t.TempDir(), "nothing-here"); err == nil || !strings.Contains(err.Error(), "nothing-here not found (build it first") {
		t.Errorf("Bins: %v", err)
	}
}

func TestTail(t *testing.T) {
	if got := LastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("LastLines = %q", got)
	}
	if got := LastLines("a\n", 5); got != "a" {
		t.Errorf("LastLines = %q", got)
	}
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 5000 { // more than the 16 KiB read
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	if got := Tail(path, 2); got != "line 4998\nline 4999" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail("/nonexistent/log", 3); !strings.HasPrefix(got, "(open ") {
		t.Errorf("Tail of a missing file = %q", got)
	}
}

func TestWorkDir(t *testing.T) {
	var said []string
	say := func(format string, a ...any) { said = append(said, fmt.Sprintf(format, a...)) }
	work, done, err := WorkDir("", "benchkit-test-", say)
	if err != nil {
		t.Fatal(err)
	}
	done(nil)
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("temporary work dir not removed after success: %v", err)
	}
	work, done, err = WorkDir("", "benchkit-test-", say)
	if err != nil {
		t.Fatal(err)
	}
	done(errors.New("failed"))
	if _, err := os.Stat(work); err != nil || len(said) != 1 || !strings.Contains(said[0], work) {
		t.Errorf("work dir not kept after a failure: %v, said %q", err, said)
	}
	os.RemoveAll(work)
	given := filepath.Join(t.TempDir(), "a", "b")
	if work, done, err = WorkDir(given, "x", say); err != nil || work != given {
		t.Fatalf("WorkDir(given) = %q, %v", work, err)
	}
	done(nil)
	if _, err := os.Stat(given); err != nil {
		t.Errorf("given work dir not kept: %v", err)
	}
}

func TestMainExitCodes(t *testing.T) {
	var b bytes.Buffer
	if code := Main("bench-x", &b, func(context.Context) error { return nil }); code != 0 || b.Len() != 0 {
		t.Errorf("success: exit %d, %q", code, b.String())
	}
	if code := Main("bench-x", &b, func(context.Context) error { return errors.New("boom") }); code != 1 || b.String() != "bench-x: FAILED: boom\n" {
		t.Errorf("failure: exit %d, %q", code, b.String())
	}
}

func TestPasses(t *testing.T) {
	if !Passes(orders.Order{Amount: 50.01}) || Passes(orders.Order{Amount: 50}) {
		t.Errorf("Passes disagrees with %s", Filter)
	}
}
