package benchkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProcPeakRSSIsTheChildsNotTheParents(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil || runtime.GOOS != "linux" {
		t.Skip("needs sh and Linux")
	}
	// This process grows to 256 MiB; a shell started after that, sharing
	// its memory until it execs, is reported by the kernel as at least as
	// large.
	big := make([]byte, 256<<20)
	for i := range big {
		big[i] = 1
	}
	p, err := Start(exec.Command(sh, "-c", "sleep 0.2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(big)
	if kernel := PeakRSSKiB(p.Cmd.ProcessState); kernel < 256<<10 {
		t.Logf("the kernel reports %d KiB: it does not count the parent's memory here", kernel)
	}
	u := p.Usage()
	if u.RSSKiB <= 0 || u.RSSKiB > 64<<10 {
		t.Fatalf("sh's peak RSS %d KiB", u.RSSKiB)
	}
	if p.Elapsed() < 200*time.Millisecond {
		t.Fatalf("elapsed %v", p.Elapsed())
	}
	if u.MB() == "" || !strings.Contains(u.MB(), ".") {
		t.Fatalf("MB %q", u.MB())
	}
}

func TestProcStopAndExited(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh not available")
	}
	p, err := Start(exec.Command(sh, "-c", "exec sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("exited at once")
	}
	if err := p.Stop(); err == nil {
		t.Fatal("sleep stopped by SIGTERM: no error")
	}
	if !p.Exited() {
		t.Fatal("not exited after Stop")
	}
}

func TestWatch(t *testing.T) {
	var c atomic.Int64
	count := func() (int64, error) { return c.Add(10) - 10, nil }
	prog, err := Watch(context.Background(), time.Millisecond, count, 50, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prog.Base != 10 || prog.N != 50 || !prog.Done.After(prog.First) {
		t.Fatalf("%+v", prog)
	}
	if r, err := prog.FirstToDone(); err != nil || r <= 0 {
		t.Fatalf("FirstToDone = %v, %v", r, err)
	}
	if r := prog.Since(prog.First.Add(-time.Second)); r <= 0 || r > 50 {
		t.Fatalf("Since = %v", r)
	}
	// All at the first look: too few to time.
	prog, err = Watch(context.Background(), time.Millisecond, func() (int64, error) { return 50, nil }, 50, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prog.FirstToDone(); err == nil {
		t.Fatal("all at the first look: no error")
	}
}

func TestWatchAProcessThatEndsShort(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh not available")
	}
	p, err := Start(exec.Command(sh, "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Watch(context.Background(), 10*time.Millisecond, func() (int64, error) { return 7, nil }, 50, p)
	if err == nil || !strings.Contains(err.Error(), "ended at 7 of 50") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadLinesIsLinesBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v")
	values := Orders(100, 2)
	if err := os.WriteFile(path, Lines(values), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLines(path)
	if err != nil || len(got) != 100 || string(Lines(got)) != string(Lines(values)) {
		t.Fatalf("ReadLines: %d values, %v", len(got), err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadLines(path); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %d values, %v", len(got), err)
	}
}

func TestProfileEnv(t *testing.T) {
	t.Setenv("BENCH_PROFILE_DIR", "")
	if env := ProfileEnv("x"); env != nil {
		t.Fatalf("without BENCH_PROFILE_DIR: %v", env)
	}
	t.Setenv("BENCH_PROFILE_DIR", "/tmp/p")
	env := ProfileEnv("sink-1")
	if len(env) == 0 || env[len(env)-1] != "CULVERT_CPUPROFILE=/tmp/p/sink-1.prof" {
		t.Fatalf("env ends %v", env[max(0, len(env)-1):])
	}
}
