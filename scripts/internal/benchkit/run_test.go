package benchkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunLogsAndReportsTheTail(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh not available")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "x.log")
	if _, err := Run(context.Background(), logPath, sh, "-c", "echo out; echo err >&2"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(logPath); string(b) != "out\nerr\n" {
		t.Fatalf("log %q", b)
	}
	_, err = Run(context.Background(), logPath, sh, "-c", "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3")
	if err == nil || !strings.HasPrefix(err.Error(), "sh: exit status 3: line3\n") || !strings.HasSuffix(err.Error(), "line7") {
		t.Fatalf("err = %v", err)
	}
}

func TestCountLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("a\nb\n\nno newline"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := CountLines(path); n != 3 || err != nil {
		t.Fatalf("CountLines = %d, %v", n, err)
	}
	if _, err := CountLines(path + ".missing"); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestWriteOrdersIsOrdersAsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.jsonl")
	k, err := WriteOrders(path, 500, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(Lines(Orders(500, 3))) {
		t.Fatal("the file is not the orders of Orders(500, 3) as lines")
	}
	if k == 0 || k == 500 {
		t.Fatalf("%d of 500 pass the filter", k)
	}
}
