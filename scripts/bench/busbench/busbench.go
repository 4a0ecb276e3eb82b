// Package busbench is the hidden subcommand `bench busbench`, the helper
// that `bench all` runs as a process of its own (the bench binary started
// again): it measures the embedded bus alone. It publishes the lines of an
// orders file in batches, then consumes them all as one consumer group,
// committing after each poll. It prints one JSON line per phase:
//
//	{"phase":"publish","records":1000000,"seconds":0.8}
package busbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "busbench"
	Summary = "internal: the bus publish/consume helper that `bench all` runs as a process of its own"
)

// Main runs `bench busbench` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	spec := fl.String("bus", "", "bus to measure (a directory for the embedded store, or a URL)")
	n := fl.Int("n", 1000000, "records to publish and consume")
	orders := fl.String("orders", "", "file whose lines are the records (required)")
	batch := fl.Int("batch", 10000, "records per publish")
	cpuprofile := fl.String("cpuprofile", "", "write a CPU profile to this file")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "busbench:", err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *spec == "" || *orders == "" {
		fmt.Fprintln(stderr, "busbench: -bus and -orders are required")
		return 2
	}
	if err := run(*spec, *orders, *n, *batch, stdout); err != nil {
		fmt.Fprintln(stderr, "busbench:", err)
		return 1
	}
	return 0
}

func report(w io.Writer, phase string, records int, d time.Duration) {
	b, _ := json.Marshal(map[string]any{"phase": phase, "records": records, "seconds": d.Seconds()})
	fmt.Fprintln(w, string(b))
}

func run(spec, orders string, n, batch int, stdout io.Writer) error {
	ctx := context.Background()
	b, err := bus.Open(ctx, spec)
	if err != nil {
		return err
	}
	defer b.Close()
	const topic = "busbench"

	f, err := os.Open(orders)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	start := time.Now()
	published := 0
	recs := make([]record.Record, 0, batch)
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		err := bus.Publish(ctx, b, topic, recs...)
		published += len(recs)
		recs = recs[:0]
		return err
	}
	now := time.Now()
	for published+len(recs) < n && sc.Scan() {
		recs = append(recs, record.Record{Value: append([]byte(nil), sc.Bytes()...), Time: now})
		if len(recs) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return err
	}
	report(stdout, "publish", published, time.Since(start))

	start = time.Now()
	sub, err := b.Subscribe(ctx, topic, "busbench", bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: batch})
	if err != nil {
		return err
	}
	defer sub.Close()
	consumed := 0
	for consumed < published {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			return err
		}
		if err := sub.Commit(ctx, msgs); err != nil {
			return err
		}
		consumed += len(msgs)
	}
	report(stdout, "consume", consumed, time.Since(start))
	return nil
}
