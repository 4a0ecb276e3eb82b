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
//	kafka-source     the binary: Kafka -> embedded bus, each batch committed once durable (next to raw consume)
//	file-sink        for reference: embedded bus -> /dev/null, the runner and the embedded bus alone
//	file-source      for reference: file -> embedded bus, the same for a source
//
// Every step runs in a process of its own, so that every ratio compares two
// processes: the connectors are the real binaries, and the raw franz-go
// clients and the kafka:// bus clients are this program started again as
// `bench kafka -raw produce|consume|bus-publish|bus-consume`. A writer reads
// its orders into memory (one file of JSON lines, read before it connects)
// and a reader gets them from the topic that the raw producer wrote.
//
// Every Kafka step is timed from outside the same way, by kfake, polled
// every 5ms: a writer from the first look that finds records in its topic
// (the partition's end offset above 0) to the one that finds all of them; a
// reader from the first look that finds its group's committed offset above
// 0 to the one that finds it at the end. So neither the process's start,
// its connection and group join, nor the raw writer's reading of its file
// counts, on either side; each writer's topic must then hold exactly the
// records written. The file-sink and file-source rows are timed from the
// process's start to its end, and are for reference only. kfake runs on
// the same two cores throughout.
//
// Each step runs -rep times, alternating, and the table shows the best run,
// with the CPU time (user and system) per 1,000 records and the peak RSS of
// its process in that run (benchkit.Proc: the process's own, not the bench's
// that started it). The CPU time of the raw producer and of the bus
// publisher includes reading their file (about 0.04 ms per 1,000 records);
// their peak RSS is mostly the orders they hold, 81 MB of the 1,000,000,
// which Go's heap, collected at twice what is live, makes about 250 MB: it
// says little about the clients' own memory. The floor column checks each
// ratio to raw franz-go (>= 0.8x); bench kafka exits 1 after the table when
// one is missed.
//
// Usage:
//
//	bench kafka [-bin bin] [-n 1000000] [-batch 5000] [-rep 3]
//
// With BENCH_PROFILE_DIR set, each connector run writes a CPU profile
// there (CULVERT_CPUPROFILE), named after its step and run: kafka-sink-0.prof.
package kafka

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

type config struct {
	bin, work     string
	n, batch, rep int
	seed          uint64
	self          string // this program, started again for the raw and bus clients
	stderr        io.Writer
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "kafka"
	Summary = "kafka-sink, kafka-source and the kafka:// bus next to raw franz-go, each in its own process, on scripts/kfake"
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
	raw := fl.String("raw", "", "internal: be the client process: produce, consume, bus-publish or bus-consume")
	brokers := fl.String("brokers", "", "internal: the client's Kafka (host:port)")
	topic := fl.String("topic", "", "internal: the client's topic")
	group := fl.String("group", "", "internal: the reader's group")
	values := fl.String("values", "", "internal: the writer's file of values, one a line")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if fl.NArg() > 0 || c.n <= 0 || c.batch <= 0 || c.rep <= 0 {
		fmt.Fprintln(stderr, "bench kafka: -n, -batch and -rep must be > 0 and no arguments are accepted")
		return 2
	}
	if *raw != "" {
		return benchkit.Main("bench kafka -raw "+*raw, stderr, func(ctx context.Context) error {
			return client(ctx, *raw, *brokers, *topic, *group, *values, c.n, c.batch)
		})
	}
	c.stderr = stderr
	return benchkit.MainFloors("bench kafka", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error { return run(ctx, c, f, stdout, stderr) })
}

// minVsRaw is the floor of every ratio to raw franz-go. Issue 6, of the
// bus backends: "Floor: ≥ 0.8 × the raw client"; issue 16, 5:
// "kafka-sink and kafka-source ≥ 0.8× raw franz-go (kfake)".
const minVsRaw = 0.8

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 1_000_000

// every is how often kfake is asked how far a step got.
const every = 5 * time.Millisecond

// result is one timed run of a step.
type result struct {
	rate float64
	use  benchkit.Usage // of the process doing the step
}

func run(ctx context.Context, c config, f *benchkit.Floors, stdout, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench kafka")
	if c.bin, err = benchkit.Bins(c.bin, "kafka-sink", "kafka-source", "file-sink", "file-source"); err != nil {
		return err
	}
	if c.self, err = os.Executable(); err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "culvert-bench-kafka-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	c.work = work

	say("generating %d orders", c.n)
	values := benchkit.Orders(c.n, c.seed)
	sinkBus := filepath.Join(c.work, "sink-bus")
	if err := benchkit.LoadBus(ctx, sinkBus, "orders", values, c.batch); err != nil {
		return err
	}
	ordersFile := filepath.Join(c.work, "orders.jsonl")
	if err := os.WriteFile(ordersFile, benchkit.Lines(values), 0o644); err != nil {
		return err
	}
	values = nil // the writers read ordersFile or sinkBus
	runtime.GC()

	addr, stopKfake, err := benchkit.StartKfake(ctx, filepath.Join(c.bin, "kfake"), filepath.Join(c.work, "kfake.log"))
	if err != nil {
		return err
	}
	defer stopKfake()
	say("kfake at %s", addr)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	runs := map[string][]result{}
	add := func(step string, r result, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", step, err, c.work)
		}
		say("%s: %.0f records/s", step, r.rate)
		runs[step] = append(runs[step], r)
		return nil
	}
	for i := 0; i < c.rep; i++ {
		rawTopic, busTopic, sinkOut := fmt.Sprint("raw-", i), fmt.Sprint("bus-", i), fmt.Sprint("sink-out-", i)
		for _, t := range []string{rawTopic, busTopic, sinkOut} {
			if _, err := adm.CreateTopic(ctx, 1, -1, nil, t); err != nil {
				return fmt.Errorf("creating topic %s: %w", t, err)
			}
		}
		// For reference: the runner and the embedded bus alone, the other
		// side of each connector.
		r, err := toEnd(ctx, c, fmt.Sprint("file-sink-", i), "file-sink", "--bus", sinkBus, "--topic", "orders", "--from", "beginning", "--stop-at-end",
			"--group", fmt.Sprint("file-sink-", i), "--path", os.DevNull)
		if err := add("file-sink", r, err); err != nil {
			return err
		}
		refBus := filepath.Join(c.work, "file-source-bus")
		r, err = toEnd(ctx, c, fmt.Sprint("file-source-", i), "file-source", "--bus", refBus, "--topic", "orders", "--path", ordersFile)
		if err := add("file-source", r, err); err != nil {
			return err
		}
		os.RemoveAll(refBus)

		r, err = writer(ctx, c, adm, rawTopic, c.client("produce", addr, rawTopic, "", ordersFile))
		if err := add("raw produce", r, err); err != nil {
			return err
		}
		r, err = writer(ctx, c, adm, busTopic, c.client("bus-publish", addr, busTopic, "", ordersFile))
		if err := add("bus publish", r, err); err != nil {
			return err
		}
		group := fmt.Sprint("raw-consume-", i)
		r, err = reader(ctx, c, adm, rawTopic, group, c.client("consume", addr, rawTopic, group, ""), false)
		if err := add("raw consume", r, err); err != nil {
			return err
		}
		group = fmt.Sprint("bus-consume-", i)
		r, err = reader(ctx, c, adm, busTopic, group, c.client("bus-consume", addr, busTopic, group, ""), false)
		if err := add("bus consume", r, err); err != nil {
			return err
		}
		// kafka-sink: the orders on an embedded bus, written to Kafka.
		r, err = writer(ctx, c, adm, sinkOut, c.connector(fmt.Sprint("kafka-sink-", i), "kafka-sink", "--bus", sinkBus, "--topic", "orders",
			"--from", "beginning", "--stop-at-end", "--group", fmt.Sprint("kafka-sink-", i), "--brokers", addr, "--kafka-topic", sinkOut))
		if err := add("kafka-sink", r, err); err != nil {
			return err
		}
		// kafka-source: the raw topic to an embedded bus, until the group
		// committed every record (committed only once durable on the bus).
		group = fmt.Sprint("source-", i)
		srcBus := filepath.Join(c.work, fmt.Sprint("source-bus-", i))
		r, err = reader(ctx, c, adm, rawTopic, group, c.connector(fmt.Sprint("kafka-source-", i), "kafka-source", "--bus", srcBus, "--topic", "orders",
			"--brokers", addr, "--kafka-topic", rawTopic, "--kafka-group", group), true)
		if err := add("kafka-source", r, err); err != nil {
			return err
		}
		// Free kfake's memory and the disk of this run.
		if _, err := adm.DeleteTopics(ctx, rawTopic, busTopic, sinkOut); err != nil {
			return err
		}
		os.RemoveAll(srcBus)
	}

	best := func(step string) result { return benchkit.Best(runs[step], func(r result) float64 { return r.rate }) }
	rawProduce, rawConsume := best("raw produce"), best("raw consume")
	fmt.Fprintf(stdout, "\nbench kafka: %s orders, %s; machine: %s; kfake (scripts/kfake) on the same machine; batches and polls of %d records, one partition; every step in a process of its own, best of %d runs\n\n",
		benchkit.Int(float64(c.n)), benchkit.Date(), benchkit.CPUs(), c.batch, c.rep)
	t := benchkit.NewTable("lrrrrlrrrr", "step", "records", "records/s", "raw franz-go records/s", "ratio", "floor",
		"CPU per 1,000 records", "raw CPU per 1,000", "peak RSS MB", "raw peak RSS MB")
	alone := func(step string, r result) {
		t.Row(step, benchkit.Int(float64(c.n)), benchkit.Int(r.rate), "–", "–", "–", benchkit.PerK(r.use.CPU, c.n), "–", r.use.MB(), "–")
	}
	alone("raw produce (acks=all, idempotent)", rawProduce)
	alone("raw consume (group, commit per poll)", rawConsume)
	for _, r := range []struct {
		step     string
		got, raw result
	}{
		{"bus publish (kafka://)", best("bus publish"), rawProduce},
		{"bus consume (kafka://)", best("bus consume"), rawConsume},
		{"kafka-sink (embedded bus → Kafka)", best("kafka-sink"), rawProduce},
		{"kafka-source (Kafka → embedded bus)", best("kafka-source"), rawConsume},
	} {
		t.Row(r.step, benchkit.Int(float64(c.n)), benchkit.Int(r.got.rate), benchkit.Int(r.raw.rate), benchkit.Ratio(r.got.rate, r.raw.rate),
			f.AtLeast(r.step+" vs raw franz-go", r.got.rate/r.raw.rate, minVsRaw, "×"),
			benchkit.PerK(r.got.use.CPU, c.n), benchkit.PerK(r.raw.use.CPU, c.n), r.got.use.MB(), r.raw.use.MB())
	}
	alone("for reference: file-sink (embedded bus → /dev/null)", best("file-sink"))
	alone("for reference: file-source (file → embedded bus)", best("file-source"))
	t.Markdown(stdout)
	fmt.Fprintf(stdout, "\nThe Kafka rows are timed by kfake from the first record to the last (end offset, or the group's committed offset); the reference rows from process start to exit.\n")
	f.SetFor(defaultN, c.n, "orders")
	return nil
}

// client prepares this program as a raw or bus client process.
func (c config) client(mode, addr, topic, group, values string) *exec.Cmd {
	cmd := exec.Command(c.self, Name, "-raw", mode, "-brokers", addr, "-topic", topic, "-group", group, "-values", values,
		"-n", strconv.Itoa(c.n), "-batch", strconv.Itoa(c.batch))
	cmd.Stderr = c.stderr
	return cmd
}

// connector prepares the binary bin of c.bin with its log in
// <work>/<name>.log (and, with BENCH_PROFILE_DIR, its CPU profile there).
func (c config) connector(name, bin string, args ...string) *exec.Cmd {
	cmd := benchkit.Command(context.Background(), filepath.Join(c.work, name+".log"), filepath.Join(c.bin, bin), append(args, "--log-level", "warn")...)
	cmd.Env = benchkit.ProfileEnv(name)
	return cmd
}

// toEnd runs a connector to its end, timed from its start.
func toEnd(ctx context.Context, c config, name, bin string, args ...string) (result, error) {
	p, err := benchkit.Start(c.connector(name, bin, args...))
	if err != nil {
		return result{}, err
	}
	stop := context.AfterFunc(ctx, p.Kill)
	defer stop()
	if err := p.Wait(); err != nil {
		return result{}, fmt.Errorf("%s: %w: %s", bin, err, benchkit.Tail(filepath.Join(c.work, name+".log"), 5))
	}
	return result{float64(c.n) / p.Elapsed().Seconds(), p.Usage()}, nil
}

// writer runs cmd, a process that writes c.n records to topic and exits,
// timed by the topic's end offset; the topic must then hold exactly c.n.
func writer(ctx context.Context, c config, adm *kadm.Client, topic string, cmd *exec.Cmd) (result, error) {
	end := func() (int64, error) {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return 0, err
		}
		o, ok := ends.Lookup(topic, 0)
		if !ok {
			return 0, fmt.Errorf("no end offset of %s", topic)
		}
		return o.Offset, o.Err
	}
	return timed(ctx, c, cmd, end, false, func() error {
		if got, err := end(); err != nil || got != int64(c.n) {
			return fmt.Errorf("%s holds %d records, want %d (%v)", topic, got, c.n, err)
		}
		return nil
	})
}

// reader runs cmd, a process that reads topic in group, timed by the
// group's committed offset until it is at the end (c.n); a connector (stop)
// runs until SIGTERM, a client exits by itself.
func reader(ctx context.Context, c config, adm *kadm.Client, topic, group string, cmd *exec.Cmd, stop bool) (result, error) {
	committed := func() (int64, error) {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return 0, nil // the group may not exist yet
		}
		o, _ := offs.Lookup(topic, 0)
		return o.At, nil
	}
	return timed(ctx, c, cmd, committed, stop, nil)
}

// timed starts cmd and watches count (of kfake) until it is c.n; then it
// stops the process (a connector that runs until told) or waits for it to
// exit, and runs check.
func timed(ctx context.Context, c config, cmd *exec.Cmd, count func() (int64, error), stop bool, check func() error) (result, error) {
	p, err := benchkit.Start(cmd)
	if err != nil {
		return result{}, err
	}
	prog, err := p.WatchThenEnd(ctx, every, count, int64(c.n), stop)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", filepath.Base(cmd.Path), err)
	}
	if check != nil {
		if err := check(); err != nil {
			return result{}, err
		}
	}
	rate, err := prog.FirstToDone()
	return result{rate, p.Usage()}, err
}

// client is the raw or bus client process: produce and bus-publish write
// the values of the file at valuesPath to topic in batches of batch;
// consume and bus-consume read n records of topic in group from the start,
// committing after every poll of at most batch.
func client(ctx context.Context, mode, brokers, topic, group, valuesPath string, n, batch int) error {
	switch mode {
	case "produce", "bus-publish":
		values, err := benchkit.ReadLines(valuesPath)
		if err != nil {
			return err
		}
		if len(values) != n {
			return fmt.Errorf("%s holds %d values, want %d", valuesPath, len(values), n)
		}
		if mode == "produce" {
			return produce(ctx, brokers, topic, values, batch)
		}
		return benchkit.LoadBus(ctx, "kafka://"+brokers, topic, values, batch)
	case "consume":
		return benchkit.KafkaConsume(ctx, brokers, topic, group, n, batch)
	case "bus-consume":
		return busConsume(ctx, brokers, topic, group, n, batch)
	}
	return fmt.Errorf("unknown -raw %q", mode)
}

// produce is raw franz-go: idempotent (its default), acks=all, no linger,
// each batch produced and acknowledged before the next.
func produce(ctx context.Context, brokers, topic string, values [][]byte, batch int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<17))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, batch)
	for i := 0; i < len(values); i += batch {
		recs = recs[:0]
		for _, v := range values[i:min(i+batch, len(values))] {
			recs = append(recs, &kgo.Record{Topic: topic, Value: v})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

// busConsume is the kafka:// bus's Subscribe from the beginning, Poll of
// at most batch and Commit after every poll.
func busConsume(ctx context.Context, brokers, topic, group string, n, batch int) error {
	b, err := bus.Open(ctx, "kafka://"+brokers)
	if err != nil {
		return err
	}
	defer b.Close()
	sub, err := b.Subscribe(ctx, topic, group, bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: batch})
	if err != nil {
		return err
	}
	defer sub.Close()
	for got := 0; got < n; {
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
}
