// Package kafka is `bench kafka`: it measures, in one run against one kfake cluster
// (scripts/kfake, franz-go's in-process Kafka, in a process of its own:
// Apache Kafka cannot be installed on this machine), with the orders data
// set:
//
//	raw produce      franz-go, idempotent, acks=all, batches of -batch records, each acknowledged before the next
//	bus publish      the kafka:// bus's Publish, same batches (what the source runner does)
//	raw consume      franz-go as a consumer group from the start, committing after every poll of up to -batch
//	bus consume      the kafka:// bus's Subscribe, Poll and Commit after every poll
//	kafka-sink       the binary: embedded bus -> Kafka, --stop-at-end (next to raw produce)
//	kafka-source     the binary: Kafka -> embedded bus, until the group committed every record (next to raw consume)
//	file-sink        for reference: embedded bus -> /dev/null, the runner and the embedded bus alone
//	file-source      for reference: file -> embedded bus, the same for a source
//
// The connector rows include the process's start and the embedded bus on the
// other side, whose own cost the file-sink and file-source rows show; kfake
// runs on the same two cores throughout. Each step runs -rep times,
// alternating, and the table shows the best run. The floor column checks
// each ratio to raw franz-go (>= 0.8x); bench kafka exits 1 after the table
// when one is missed.
//
// Usage:
//
//	bench kafka [-bin bin] [-n 1000000] [-batch 5000] [-rep 3]
package kafka

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

type config struct {
	bin, work     string
	n, batch, rep int
	seed          uint64
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "kafka"
	Summary = "kafka-sink, kafka-source and the kafka:// bus next to raw franz-go, on scripts/kfake"
)

// Main runs `bench kafka` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	var c config
	fl.StringVar(&c.bin, "bin", "bin", "directory with the built kafka-sink, kafka-source, file-sink and file-source (and kfake, built there when missing)")
	fl.IntVar(&c.n, "n", defaultN, "orders (the floors are set for the default)")
	fl.IntVar(&c.batch, "batch", 5000, "records per publish and most records per poll")
	fl.Uint64Var(&c.seed, "seed", 1, "seed of the generated orders")
	fl.IntVar(&c.rep, "rep", 3, "runs of each step, alternating; the table shows the best of each (the machine is shared and noisy)")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if fl.NArg() > 0 || c.n <= 0 || c.batch <= 0 || c.rep <= 0 {
		fmt.Fprintln(stderr, "bench kafka: -n, -batch and -rep must be > 0 and no arguments are accepted")
		return 2
	}
	return benchkit.MainFloors("bench kafka", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error { return run(ctx, c, f, stdout, stderr) })
}

type row struct {
	step      string
	records   int
	rate, raw float64
}

// minVsRaw is the floor of every ratio to raw franz-go. Issue 6, of the
// bus backends: "Floor: ≥ 0.8 × the raw client"; issue 16, 5:
// "kafka-sink and kafka-source ≥ 0.8× raw franz-go (kfake)".
const minVsRaw = 0.8

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 1_000_000

func run(ctx context.Context, c config, f *benchkit.Floors, stdout, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench kafka")
	if c.bin, err = benchkit.Bins(c.bin, "kafka-sink", "kafka-source", "file-sink", "file-source"); err != nil {
		return err
	}
	if c.work, err = os.MkdirTemp("", "culvert-bench-kafka-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)

	say("generating %d orders", c.n)
	values := benchkit.Orders(c.n, c.seed)

	addr, stopKfake, err := benchkit.StartKfake(ctx, filepath.Join(c.bin, "kfake"), filepath.Join(c.work, "kfake.log"))
	if err != nil {
		return err
	}
	defer stopKfake()
	say("kfake at %s", addr)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<17))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := []string{"warmup"}
	for i := 0; i < c.rep; i++ {
		topics = append(topics, fmt.Sprint("raw-", i), fmt.Sprint("bus-", i), fmt.Sprint("sink-out-", i))
	}
	for _, t := range topics {
		if _, err := adm.CreateTopic(ctx, 1, -1, nil, t); err != nil {
			return fmt.Errorf("creating topic %s: %w", t, err)
		}
	}
	b, err := bus.Open(ctx, "kafka://"+addr)
	if err != nil {
		return err
	}
	defer b.Close()

	// Warm up the connection and the producer ID before anything is timed.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "warmup", Value: []byte("{}")}).FirstErr(); err != nil {
		return err
	}
	var rows []row
	best := map[string]float64{}
	timed := func(step string, f func() error) error {
		runtime.GC()
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		r := float64(c.n) / time.Since(start).Seconds()
		say("%s: %.0f records/s", step, r)
		best[step] = max(best[step], r)
		return nil
	}
	sinkBus := filepath.Join(c.work, "sink-bus")
	if err := benchkit.LoadBus(ctx, sinkBus, "orders", values, c.batch); err != nil {
		return err
	}
	ordersFile := filepath.Join(c.work, "orders.jsonl")
	if err := os.WriteFile(ordersFile, benchkit.Lines(values), 0o644); err != nil {
		return err
	}
	for i := 0; i < c.rep; i++ {
		// For reference: the runner and the embedded bus alone, the other
		// side of each connector.
		if err := timed("file-sink", func() error {
			return runBin(ctx, c, "file-sink", "--bus", sinkBus, "--topic", "orders", "--from", "beginning", "--stop-at-end",
				"--group", fmt.Sprint("file-sink-", i), "--path", os.DevNull, "--log-level", "warn")
		}); err != nil {
			return err
		}
		refBus := filepath.Join(c.work, "file-source-bus")
		if err := timed("file-source", func() error {
			return runBin(ctx, c, "file-source", "--bus", refBus, "--topic", "orders", "--path", ordersFile, "--log-level", "warn")
		}); err != nil {
			return err
		}
		os.RemoveAll(refBus)
		if err := steps(ctx, c, i, addr, cl, adm, b, values, sinkBus, timed); err != nil {
			return err
		}
		// Free kfake's memory and the disk of this run.
		if _, err := adm.DeleteTopics(ctx, fmt.Sprint("raw-", i), fmt.Sprint("bus-", i), fmt.Sprint("sink-out-", i)); err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(c.work, fmt.Sprint("source-bus-", i)))
	}
	rawProduce, rawConsume := best["raw produce"], best["raw consume"]
	rows = append(rows,
		row{"bus publish (kafka://)", c.n, best["bus publish"], rawProduce},
		row{"bus consume (kafka://)", c.n, best["bus consume"], rawConsume},
		row{"kafka-sink (embedded bus → Kafka)", c.n, best["kafka-sink"], rawProduce},
		row{"kafka-source (Kafka → embedded bus)", c.n, best["kafka-source"], rawConsume},
	)
	fmt.Fprintf(stdout, "\nmachine: %d CPUs, %s/%s, %s; kfake (scripts/kfake) on the same machine; %d orders, batches and polls of %d records, one partition; best of %d runs per step\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), c.n, c.batch, c.rep)
	t := benchkit.NewTable("lrrrrl", "step", "records", "records/s", "raw franz-go records/s", "ratio", "floor")
	t.Row("raw produce (acks=all, idempotent)", benchkit.Int(float64(c.n)), benchkit.Int(rawProduce), "–", "–", "–")
	t.Row("raw consume (group, commit per poll)", benchkit.Int(float64(c.n)), benchkit.Int(rawConsume), "–", "–", "–")
	for _, r := range rows {
		t.Row(r.step, benchkit.Int(float64(r.records)), benchkit.Int(r.rate), benchkit.Int(r.raw), benchkit.Ratio(r.rate, r.raw),
			f.AtLeast(r.step+" vs raw franz-go", r.rate/r.raw, minVsRaw, "×"))
	}
	t.Row("for reference: file-sink (embedded bus → /dev/null)", benchkit.Int(float64(c.n)), benchkit.Int(best["file-sink"]), "–", "–", "–")
	t.Row("for reference: file-source (file → embedded bus)", benchkit.Int(float64(c.n)), benchkit.Int(best["file-source"]), "–", "–", "–")
	t.Markdown(stdout)
	f.SetFor(defaultN, c.n, "orders")
	return nil
}

// steps runs every step once, as run number i (fresh topics and groups).
func steps(ctx context.Context, c config, i int, addr string, cl *kgo.Client, adm *kadm.Client, b bus.Bus, values [][]byte, sinkBus string,
	timed func(string, func() error) error) error {
	rawTopic, busTopic, sinkOut := fmt.Sprint("raw-", i), fmt.Sprint("bus-", i), fmt.Sprint("sink-out-", i)

	if err := timed("raw produce", func() error {
		recs := make([]*kgo.Record, 0, c.batch)
		for i := 0; i < c.n; i += c.batch {
			recs = recs[:0]
			for _, v := range values[i:min(i+c.batch, c.n)] {
				recs = append(recs, &kgo.Record{Topic: rawTopic, Value: v})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := timed("bus publish", func() error {
		recs := make([]record.Record, 0, c.batch)
		for i := 0; i < c.n; i += c.batch {
			recs = recs[:0]
			for _, v := range values[i:min(i+c.batch, c.n)] {
				recs = append(recs, record.Record{Value: v})
			}
			if err := bus.Publish(ctx, b, busTopic, recs...); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := timed("raw consume", func() error {
		cc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(fmt.Sprint("raw-consume-", i)), kgo.ConsumeTopics(rawTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		if err != nil {
			return err
		}
		defer cc.Close()
		for got := 0; got < c.n; {
			fs := cc.PollRecords(ctx, c.batch)
			if err := fs.Err0(); err != nil {
				return err
			}
			recs := fs.Records()
			if err := cc.CommitRecords(ctx, recs...); err != nil {
				return err
			}
			got += len(recs)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := timed("bus consume", func() error {
		sub, err := b.Subscribe(ctx, busTopic, fmt.Sprint("bus-consume-", i), bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: c.batch})
		if err != nil {
			return err
		}
		defer sub.Close()
		for got := 0; got < c.n; {
			msgs, err := sub.Poll(ctx)
			if err != nil {
				return err
			}
			if err := sub.Commit(ctx, msgs); err != nil {
				return err
			}
			got += len(msgs)
		}
		return nil
	}); err != nil {
		return err
	}

	// kafka-sink: the orders on an embedded bus, written to Kafka.
	if err := timed("kafka-sink", func() error {
		return runBin(ctx, c, "kafka-sink", "--bus", sinkBus, "--topic", "orders", "--from", "beginning", "--stop-at-end",
			"--group", fmt.Sprint("kafka-sink-", i), "--brokers", addr, "--kafka-topic", sinkOut, "--log-level", "warn")
	}); err != nil {
		return err
	}
	if ends, err := adm.ListEndOffsets(ctx, sinkOut); err != nil {
		return err
	} else if o, _ := ends.Lookup(sinkOut, 0); o.Offset != int64(c.n) {
		return fmt.Errorf("kafka-sink wrote %d records, want %d", o.Offset, c.n)
	}

	// kafka-source: the raw topic to an embedded bus, until the group
	// committed every record (committed only once durable on the bus).
	srcBus := filepath.Join(c.work, fmt.Sprint("source-bus-", i))
	group := fmt.Sprint("source-", i)
	return timed("kafka-source", func() error {
		cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kafka-source"), "--bus", srcBus, "--topic", "orders",
			"--brokers", addr, "--kafka-topic", rawTopic, "--kafka-group", group, "--log-level", "warn")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
		exited := make(chan struct{})
		go func() { cmd.Process.Wait(); close(exited) }()
		for {
			select {
			case <-exited:
				return fmt.Errorf("kafka-source exited early: %s", stderr.String())
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			offs, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				continue
			}
			if o, ok := offs.Lookup(rawTopic, 0); ok && o.At >= int64(c.n) {
				return nil
			}
		}
	})
}

// runBin runs a binary of c.bin to its end, its log in <work>/<name>.log.
func runBin(ctx context.Context, c config, name string, args ...string) error {
	_, err := benchkit.Run(ctx, filepath.Join(c.work, name+".log"), filepath.Join(c.bin, name), args...)
	return err
}
