// Package culvertbench is `bench culvert`: it measures `culvert consume`
// next to file-sink reading the same topic of the embedded bus, in one run,
// alternating the two (-runs times each), with the orders data set:
//
//	file-sink        --from beginning --stop-at-end --path FILE, a group of its own per run
//	culvert consume  TOPIC (from the beginning, to the end), standard output to a file
//
// Both write each record's value and a newline to a file, and both are
// checked to have written every record. The table gives each one's
// median rate and the ratio culvert / file-sink, checked against its floor
// (0.8 or more); bench culvert exits 1 after the table when it is missed.
//
// Usage:
//
//	bench culvert [-bin bin] [-n 1000000] [-runs 3]
package culvertbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "culvert"
	Summary = "culvert consume next to file-sink on the same topic of the embedded bus (ratio; floor 0.8)"
)

// minVsFileSink is the floor of the ratio. Issue 14: "`culvert consume` of
// 1,000,000 records ≥ 0.8× file-sink on the same topic" (README: "The
// target is 0.8×").
const (
	minVsFileSink = 0.8
	defaultN      = 1_000_000
)

// Main runs `bench culvert` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built culvert and file-sink")
	n := fl.Int("n", defaultN, "orders in the topic (the floor is set for the default)")
	runs := fl.Int("runs", 3, "runs of each, alternated")
	md := fl.Bool("md", false, "print the table as Markdown")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *n <= 0 || *runs <= 0 {
		fmt.Fprintln(stderr, "bench culvert: -n and -runs must be positive")
		return 2
	}
	return benchkit.MainFloors("bench culvert", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *runs, *md, stdout, stderr)
	})
}

func run(ctx context.Context, f *benchkit.Floors, bin string, n, runs int, md bool, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench culvert")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "culvert", "file-sink"); err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "bench-culvert", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	busDir := filepath.Join(work, "bus")
	say("loading %d orders into the embedded bus", n)
	if err := benchkit.LoadBus(ctx, busDir, "orders", benchkit.Orders(n, 1), 5000); err != nil {
		return err
	}
	outPath, logPath := filepath.Join(work, "out"), filepath.Join(work, "log")
	var sink, cons []float64
	for i := range runs {
		os.Remove(outPath)
		say("run %d of %d: file-sink", i+1, runs)
		d, err := benchkit.Run(ctx, logPath, filepath.Join(bin, "file-sink"), "--bus", busDir, "--topic", "orders",
			"--group", "bench-"+strconv.Itoa(i), "--path", outPath, "--from", "beginning", "--stop-at-end",
			"--log-format", "json", "--progress-interval", "0")
		if err != nil {
			return err
		}
		if err := check(outPath, n, "file-sink"); err != nil {
			return err
		}
		sink = append(sink, float64(n)/d.Seconds())

		os.Remove(outPath)
		say("run %d of %d: culvert consume", i+1, runs)
		if d, err = consume(ctx, filepath.Join(bin, "culvert"), busDir, outPath, logPath); err != nil {
			return err
		}
		if err := check(outPath, n, "culvert consume"); err != nil {
			return err
		}
		cons = append(cons, float64(n)/d.Seconds())
	}
	ms, mc := benchkit.Median(sink), benchkit.Median(cons)
	t := benchkit.NewTable("lrrrrl", "step", "records/s (median)", "min", "max", "vs file-sink", "floor")
	t.Row("file-sink --stop-at-end", benchkit.Int(ms), benchkit.Int(slices.Min(sink)), benchkit.Int(slices.Max(sink)), "-", "-")
	t.Row("culvert consume", benchkit.Int(mc), benchkit.Int(slices.Min(cons)), benchkit.Int(slices.Max(cons)), benchkit.Ratio(mc, ms),
		f.AtLeast("culvert consume vs file-sink (medians)", mc/ms, minVsFileSink, "×"))
	f.SetFor(defaultN, n, "orders")
	fmt.Fprintf(out, "culvert consume vs file-sink, %s records, %d runs each alternated (%s)\n\n", benchkit.Int(float64(n)), runs, benchkit.Machine())
	if md {
		t.Markdown(out)
	} else {
		t.Text(out)
	}
	return nil
}

// consume runs culvert consume of the whole topic with its standard output
// in the file outPath, and returns how long it took.
func consume(ctx context.Context, culvert, busDir, outPath, logPath string) (time.Duration, error) {
	f, err := os.Create(outPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, culvert, "--bus", busDir, "consume", "orders", "--from", "beginning")
	cmd.Stdout, cmd.Stderr = f, logf
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("culvert consume: %w: %s", err, benchkit.Tail(logPath, 5))
	}
	return time.Since(t0), nil
}

// check fails unless the file at path has n lines.
func check(path string, n int, who string) error {
	got, err := benchkit.CountLines(path)
	if err != nil {
		return err
	}
	if got != int64(n) {
		return fmt.Errorf("%s wrote %d lines, want %d", who, got, n)
	}
	return nil
}
