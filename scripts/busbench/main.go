// Command busbench measures the embedded bus alone: it publishes the lines
// of an orders file in batches, then consumes them all as one consumer
// group, committing after each poll. It prints one JSON line per phase:
//
//	{"phase":"publish","records":1000000,"seconds":0.8}
//
// make bench runs it through scripts/bench.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/common/record"
)

func main() {
	spec := flag.String("bus", "", "bus to measure (a directory for the embedded store, or a URL)")
	n := flag.Int("n", 1000000, "records to publish and consume")
	orders := flag.String("orders", "", "file whose lines are the records (required)")
	batch := flag.Int("batch", 10000, "records per publish")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "busbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *spec == "" || *orders == "" {
		fmt.Fprintln(os.Stderr, "busbench: -bus and -orders are required")
		os.Exit(2)
	}
	if err := run(*spec, *orders, *n, *batch); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "busbench:", err)
		os.Exit(1)
	}
}

func report(phase string, records int, d time.Duration) {
	b, _ := json.Marshal(map[string]any{"phase": phase, "records": records, "seconds": d.Seconds()})
	fmt.Println(string(b))
}

func run(spec, orders string, n, batch int) error {
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
	report("publish", published, time.Since(start))

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
	report("consume", consumed, time.Since(start))
	return nil
}
