package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Proc is a process that a benchmark started and watches from outside
// while it runs (Watch); once it has ended, Usage gives its CPU time and
// peak RSS.
//
// The peak RSS that the kernel reports for a child (PeakRSSKiB) is never
// below the parent's own peak: Go starts a child with CLONE_VM|CLONE_VFORK,
// sharing the parent's memory until it execs, and Linux's exec keeps the
// peak of the memory it leaves as the process's. A bench holding a data
// set would see every process it starts at least as large as itself. So
// Proc also reads the process's VmHWM (/proc/<pid>/status, the peak of its
// own memory since its exec) every 20ms while it runs, and Usage takes that
// when the kernel's figure is not above this process's peak at the start.
type Proc struct {
	Cmd     *exec.Cmd
	Started time.Time // just before the process was started
	ended   time.Time
	done    chan struct{}
	err     error

	parentKiB int64        // this process's peak RSS once the process was started
	hwmKiB    atomic.Int64 // the process's VmHWM, as last read
}

// Start starts cmd, noting when.
func Start(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, done: make(chan struct{}), Started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.parentKiB = selfPeakKiB()
	go func() {
		p.err = cmd.Wait()
		p.ended = time.Now()
		close(p.done)
	}()
	go p.sampleHWM()
	return p, nil
}

// sampleHWM reads the process's VmHWM every 20ms until it ends.
func (p *Proc) sampleHWM() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if kib := StatusKiB(p.Cmd.Process.Pid, "VmHWM"); kib > 0 {
			p.hwmKiB.Store(kib)
		}
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

// StatusKiB returns a field of /proc/<pid>/status given in kB (VmHWM,
// VmRSS), in KiB, or 0 when it cannot be read (a process that ended, not
// Linux).
func StatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

// selfPeakKiB is this process's peak RSS in KiB.
func selfPeakKiB() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	if runtime.GOOS == "darwin" { // bytes there
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}

// Exited tells, without waiting, whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end and returns the error of its
// exec.Cmd.Wait (the same on every call).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop asks the process to end (SIGTERM), as a connector that runs until
// told is stopped, and waits for it.
func (p *Proc) Stop() error {
	if !p.Exited() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
	}
	return p.Wait()
}

// Kill kills the process and waits for it: after a failure.
func (p *Proc) Kill() {
	if !p.Exited() {
		p.Cmd.Process.Kill()
	}
	<-p.done
}

// Elapsed is the time from its start to its end; after Wait.
func (p *Proc) Elapsed() time.Duration { return p.ended.Sub(p.Started) }

// Usage is its CPU time and peak RSS; after Wait. The peak RSS is the
// kernel's when above this process's peak at the start, else the last
// VmHWM read (see Proc).
func (p *Proc) Usage() Usage {
	u := UsageOf(p.Cmd.ProcessState)
	if hwm := p.hwmKiB.Load(); hwm > 0 && u.RSSKiB <= p.parentKiB {
		u.RSSKiB = hwm
	}
	return u
}

// Usage is what a process used: its user and system CPU time and its
// peak RSS.
type Usage struct {
	CPU    time.Duration
	RSSKiB int64
}

// UsageOf is the usage of an exited process (zero when ps is nil).
func UsageOf(ps *os.ProcessState) Usage {
	if ps == nil {
		return Usage{}
	}
	return Usage{ProcessCPU(ps), PeakRSSKiB(ps)}
}

// Plus is the usage of two runs: their CPU times added, the higher peak
// RSS.
func (u Usage) Plus(v Usage) Usage { return Usage{u.CPU + v.CPU, max(u.RSSKiB, v.RSSKiB)} }

// MB formats the peak RSS in MiB with one decimal, the unit of the
// tables' "peak RSS MB" columns: "23.4".
func (u Usage) MB() string { return fmt.Sprintf("%.1f", float64(u.RSSKiB)/1024) }

// Progress is what Watch saw of a count rising to N: the first look at
// which it was above 0 (First, the count then Base) and the first at which
// it was N or more (Done).
type Progress struct {
	First, Done time.Time
	Base, N     int64
}

// FirstToDone is the rate from the first look that saw the count above 0
// to the one that saw it reach N: N-Base records in that time. It fails
// when the first look saw N already (too few records to time).
func (p Progress) FirstToDone() (float64, error) {
	if p.Base >= p.N || !p.Done.After(p.First) {
		return 0, fmt.Errorf("all %d counted at the first look: too few to time", p.N)
	}
	return float64(p.N-p.Base) / p.Done.Sub(p.First).Seconds(), nil
}

// Since is the rate of all N records from t (a process's start) to Done.
func (p Progress) Since(t time.Time) float64 { return float64(p.N) / p.Done.Sub(t).Seconds() }

// Watch looks at count every interval until it is n or more: count is what
// a broker or a bus says a process has done (records written, committed,
// acknowledged). It fails when count fails, when count has not moved for
// 20s, and when p (if not nil) has ended and count has not moved for a
// second since (a process that stopped short of n).
func Watch(ctx context.Context, every time.Duration, count func() (int64, error), n int64, p *Proc) (Progress, error) {
	prog := Progress{N: n}
	last, lastChange := int64(-1), time.Now()
	for {
		c, err := count()
		if err != nil {
			return prog, err
		}
		now := time.Now()
		if c > 0 && prog.First.IsZero() {
			prog.First, prog.Base = now, c
		}
		if c >= n {
			prog.Done = now
			return prog, nil
		}
		if c != last {
			last, lastChange = c, now
		} else if now.Sub(lastChange) > 20*time.Second {
			return prog, fmt.Errorf("stalled at %d of %d", c, n)
		}
		if p != nil && p.Exited() && now.Sub(lastChange) > time.Second {
			return prog, fmt.Errorf("the process ended at %d of %d (%v)", c, n, p.Wait())
		}
		select {
		case <-ctx.Done():
			return prog, ctx.Err()
		case <-time.After(every):
		}
	}
}

// WatchThenEnd watches count until it is n (Watch), then stops the
// process (stop: a connector that runs until told) or waits for it to
// exit by itself; a watch that fails kills it.
func (p *Proc) WatchThenEnd(ctx context.Context, every time.Duration, count func() (int64, error), n int64, stop bool) (Progress, error) {
	prog, err := Watch(ctx, every, count, n, p)
	if err != nil {
		p.Kill()
		return prog, err
	}
	if stop {
		return prog, p.Stop()
	}
	return prog, p.Wait()
}

// ReadLines reads the file at path, values one a line as Lines writes
// them, into memory: one read, each value a slice of it.
func ReadLines(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(b) == 0 {
		lines = nil
	}
	return lines, nil
}

// ProfileEnv is the environment of a connector run named name: with
// BENCH_PROFILE_DIR set, this process's environment and
// CULVERT_CPUPROFILE=$BENCH_PROFILE_DIR/name.prof, so that the connector
// writes its CPU profile there; else nil (exec.Cmd's default, this
// process's environment).
func ProfileEnv(name string) []string {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" {
		return nil
	}
	return append(os.Environ(), "CULVERT_CPUPROFILE="+filepath.Join(dir, name+".prof"))
}
