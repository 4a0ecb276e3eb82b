// Package benchkit is the plumbing the subcommands of scripts/bench share:
// their flag sets, number formatting, Markdown and text tables, a description of the
// machine, the orders as values, an embedded bus loaded with them, the
// connector binaries started with their logs in files, CPU time and peak
// RSS, and Floors, which checks each figure against the floor the README or
// an issue sets for it and gives the exit code. It holds no measurement:
// each program decides what it times and how, and which floors apply.
package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

// Int formats r rounded to a whole number with thousands separators:
// 1234567.8 is "1,234,568".
func Int(r float64) string {
	s := fmt.Sprintf("%.0f", r)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Ratio formats a/b as "0.80×".
func Ratio(a, b float64) string { return fmt.Sprintf("%.2f×", a/b) }

// PerK formats the CPU time d spent on n records as milliseconds per 1,000
// records: "1.5 ms".
func PerK(d time.Duration, n int) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)*1000/float64(n))
}

// Sayer returns a function printing one progress line, prefixed with
// "prog: ", to w (the program's stderr).
func Sayer(w io.Writer, prog string) func(format string, a ...any) {
	return func(format string, a ...any) { fmt.Fprintf(w, prog+": "+format+"\n", a...) }
}

// Date is the current time in UTC to the minute, for a table's heading.
func Date() string { return time.Now().UTC().Format("2006-01-02 15:04 UTC") }

// CPUs describes the machine briefly: "2 CPUs, go1.26.8".
func CPUs() string { return fmt.Sprintf("%d CPUs, %s", runtime.NumCPU(), runtime.Version()) }

// Machine describes the machine in full, with the local date: "machine: <CPU
// model>, 2 CPUs, linux/amd64, go1.26.8; date: 2026-11-23 18:10 UTC".
func Machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		model = CPUModel(f)
		f.Close()
	}
	return fmt.Sprintf("machine: %s, %d CPUs, %s/%s, %s; date: %s",
		model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().Format("2006-01-02 15:04 MST"))
}

// CPUModel returns the first "model name" of a /proc/cpuinfo, or "unknown CPU".
func CPUModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// CPUTime is the user and system CPU time this process used so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessCPU is the user and system CPU time of an exited process.
func ProcessCPU(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

// PeakRSSKiB is the peak resident set size of an exited process in KiB, 0
// when unknown.
func PeakRSSKiB(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	if runtime.GOOS == "darwin" { // bytes there, KiB on Linux
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}

// ID is 8 random hex digits, to name a run's queues, streams and topics.
func ID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Bins makes dir absolute and checks that it holds every named binary; the
// error says to build them first.
func Bins(dir string, names ...string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s not found (build it first: make build, or point -bin at it): %w", path, err)
		}
	}
	return dir, nil
}

// Command prepares a connector binary with JSON logs, no progress lines and
// its stderr in the file logPath (not created when logPath is empty).
func Command(ctx context.Context, logPath, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, append(args, "--log-format", "json", "--progress-interval", "0")...)
	if logPath != "" {
		if f, err := os.Create(logPath); err == nil {
			cmd.Stderr = f
		}
	}
	return cmd
}

// Orders returns n orders generated from seed, each one JSON value as
// orders.Write writes them (without the newline).
func Orders(n int, seed uint64) [][]byte {
	values := make([][]byte, 0, n)
	g := orders.NewGenerator(seed)
	for range n {
		values = append(values, g.Next().AppendJSON(nil))
	}
	return values
}

// WriteOrders writes n orders generated from seed to the file at path, as
// orders.Write writes them, and returns how many pass Filter.
func WriteOrders(path string, n int, seed uint64) (passing int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	err = orders.Write(f, n, seed, func(o orders.Order) {
		if Passes(o) {
			passing++
		}
	})
	return passing, err
}

// Lines joins values into JSON lines, each ended by a newline.
func Lines(values [][]byte) []byte {
	var b bytes.Buffer
	for _, v := range values {
		b.Write(v)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// LoadBus publishes values to topic on the bus at url (an embedded bus's
// directory or a bus URL), batch records per Publish. The caller imports the
// bus drivers it needs (common/bus/embedded, common/bus/all).
func LoadBus(ctx context.Context, url, topic string, values [][]byte, batch int) error {
	b, err := bus.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close()
	recs := make([]record.Record, 0, batch)
	for i := 0; i < len(values); i += batch {
		recs = recs[:0]
		for _, v := range values[i:min(i+batch, len(values))] {
			recs = append(recs, record.Record{Value: v})
		}
		if err := bus.Publish(ctx, b, topic, recs...); err != nil {
			return fmt.Errorf("loading the bus: %w", err)
		}
	}
	return nil
}

// Tail returns the last n lines of the file at path (a connector's log),
// read from its last 16 KiB; the error in parentheses when it cannot be read.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 16<<10 {
		f.Seek(-16<<10, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return LastLines(string(b), n)
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Main runs bench with a context cancelled on SIGINT or SIGTERM and returns
// the exit code: 0, or 1 after printing "prog: FAILED: <error>" to stderr.
// A benchmark whose figures have floors uses MainFloors.
func Main(prog string, stderr io.Writer, bench func(ctx context.Context) error) int {
	return MainFloors(prog, io.Discard, stderr, func(ctx context.Context, _ *Floors) error { return bench(ctx) })
}

// WorkDir returns the scratch directory dir, created if missing, or when dir
// is empty a new temporary directory named prefix*. Call done with the
// benchmark's error at the end: it removes a temporary directory after a
// success and otherwise says where it was kept; a given dir is always kept.
func WorkDir(dir, prefix string, say func(format string, a ...any)) (work string, done func(error), err error) {
	if dir != "" {
		return dir, func(error) {}, os.MkdirAll(dir, 0o755)
	}
	if work, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, err
	}
	return work, func(err error) {
		if err == nil {
			os.RemoveAll(work)
		} else {
			say("work dir kept for inspection: %s", work)
		}
	}, nil
}

// Filter and Map are the jq expressions the pipeline benchmarks (bench all,
// bench bus) give file-source with --filter and --map, and jq.
const (
	Filter = `.amount > 50`
	Map    = `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`
)

// Passes tells whether an order passes Filter.
func Passes(o orders.Order) bool { return o.Amount > 50 }

// CountLines returns how many newlines the file at path holds.
func CountLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 1<<20)
	for {
		m, err := f.Read(buf)
		n += int64(bytes.Count(buf[:m], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("reading %s: %w", path, err)
		}
	}
}

// Run runs the binary at path to its end, its stdout and stderr in the file
// logPath, and returns how long it took. Its error names the binary and
// ends with the last lines of its log.
func Run(ctx context.Context, logPath, path string, args ...string) (time.Duration, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", filepath.Base(path), err, Tail(logPath, 5))
	}
	return time.Since(t0), nil
}
