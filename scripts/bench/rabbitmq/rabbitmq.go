// Package rabbitmq is `bench rabbitmq`: it measures rabbitmq-sink and rabbitmq-source next to
// raw amqp091-go doing the same with the same guarantees, in one run, with
// the orders data set, against a RabbitMQ server:
//
//	raw publish      amqp091-go publisher with confirms: persistent messages to a
//	                 durable queue through the default exchange, in batches of
//	                 8,192 (what the sink gets from one bus poll), every confirm
//	                 of a batch awaited before the next
//	rabbitmq-sink    the real binary: the records from the embedded bus to the
//	                 queue, --mandatory, --stop-at-end
//	raw consume      amqp091-go consumer with manual acks, the same prefetch as
//	                 the source (10,000): what has arrived is acknowledged with
//	                 one multiple ack, as the source does once it is durable
//	rabbitmq-source  the real binary: the queue into the embedded bus (durable
//	                 writes), acknowledged after
//
// The raw clients run in a process of their own, as the connectors do: this
// program starts itself again as `bench rabbitmq -raw publish|consume`, so
// that every ratio compares two processes. Each step is timed from the
// process's start, so both sides count their start and their connection:
//
//	raw publish, rabbitmq-sink    until the process exits, every confirm
//	                              received (and, for the sink, committed);
//	                              the queue must then hold every message.
//	                              The raw publisher first reads its orders
//	                              (a file of JSON lines, about 4 MB) into
//	                              memory, which the sink reads from its bus.
//	raw consume                   until the process exits, every message
//	                              acknowledged (its channel's close waits
//	                              for the server to have the acks)
//	rabbitmq-source               until every record is on its bus (watched
//	                              every 10ms); the queue must then be empty
//
// Each side runs twice on half the orders, in the order raw, connector,
// connector, raw, so that the shared machine's load drifting during the run
// favours neither; a rate is the orders over the time of both runs. The
// CPU columns are the user and system time of the processes of both runs
// per 1,000 records, the RSS columns the higher peak of the two
// (benchkit.Proc: the process's own, not the bench's that started it). Every run
// uses fresh queue names and deletes its queues. The floor column checks
// each ratio to raw amqp091-go (>= 0.8x); bench rabbitmq exits 1 after the
// table when one is missed.
//
// Usage:
//
//	bench rabbitmq [-bin bin] [-n 100000] [-prefetch 10000] [-url amqp://guest:guest@127.0.0.1:5672/]
//
// With BENCH_PROFILE_DIR set, each connector run writes a CPU profile
// there (CULVERT_CPUPROFILE), named after its log: sink0.prof, source1.prof.
package rabbitmq

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/client/rabbitmq"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// confirmBatch is the records in one sink Write: the embedded bus's poll size.
const confirmBatch = 8192

// minVsRaw is the floor of each connector's ratio to raw amqp091-go. Issue
// 5: "Floor: the connector reaches ≥ 0.8 × the raw client's rate."
const minVsRaw = 0.8

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 100_000

// every is how often the source's bus is looked at.
const every = 10 * time.Millisecond

// side is one side of a comparison, its two runs added up.
type side struct {
	records int
	time    time.Duration
	use     benchkit.Usage
}

func (s *side) add(records int, d time.Duration, u benchkit.Usage) {
	s.records, s.time, s.use = s.records+records, s.time+d, s.use.Plus(u)
}

func (s side) rate() float64 { return float64(s.records) / s.time.Seconds() }

type row struct {
	step     string
	got, raw side
	note     string
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "rabbitmq"
	Summary = "rabbitmq-source and rabbitmq-sink next to raw amqp091-go in its own process with the same guarantees, on the local RabbitMQ"
)

// Main runs `bench rabbitmq` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built rabbitmq-source and rabbitmq-sink")
	n := fl.Int("n", defaultN, "orders (the floors are set for the default; the raw consumer's messages with -raw consume)")
	url := fl.String("url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ server")
	prefetch := fl.Int("prefetch", 10000, "prefetch of the source and the raw consumer (the source's default)")
	raw := fl.String("raw", "", "internal: be the raw client process, publish or consume")
	queue := fl.String("queue", "", "internal: the raw client's queue")
	values := fl.String("values", "", "internal: the raw publisher's file of values, one a line")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *raw != "" {
		return benchkit.Main("bench rabbitmq -raw "+*raw, stderr, func(ctx context.Context) error {
			return rawClient(ctx, *raw, *url, *queue, *values, *n, *prefetch)
		})
	}
	return benchkit.MainFloors("bench rabbitmq", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *prefetch, *url, stdout, stderr)
	})
}

// run measures; prefetch is the basic.qos of the source and the raw consumer.
func run(ctx context.Context, f *benchkit.Floors, bin string, n, prefetch int, url string, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench rabbitmq")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "rabbitmq-source", "rabbitmq-sink"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "bench-rabbitmq", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	conn, err := rabbitmq.Connect(ctx, url, rabbitmq.Options{Name: "bench-rabbitmq"})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	ns := "culvert-bench-" + benchkit.ID()
	// Each side runs twice on half the orders, in the order raw, culvert,
	// culvert, raw, so that a machine getting busier or quieter during the
	// run (it is shared) favours neither.
	rawQueue := ns + "-raw"
	sinkQueues := []string{ns + "-sink1", ns + "-sink2"}
	for _, q := range append([]string{rawQueue}, sinkQueues...) {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring queue %s: %w", q, err)
		}
		defer ch.QueueDelete(q, false, false, false)
	}

	values := benchkit.Orders(n, 1)
	halves := [][][]byte{values[:n/2], values[n/2:]}
	busDir := filepath.Join(work, "bus")
	files := make([]string, len(halves))
	for i, h := range halves {
		if err := benchkit.LoadBus(ctx, busDir, fmt.Sprint("orders", i), h, 10000); err != nil {
			return err
		}
		files[i] = filepath.Join(work, fmt.Sprint("orders", i, ".jsonl"))
		if err := os.WriteFile(files[i], benchkit.Lines(h), 0o644); err != nil {
			return err
		}
	}
	sizes := []int{len(halves[0]), len(halves[1])}
	values, halves = nil, nil
	var rows []row

	// Publish.
	var rawPub, sink side
	rawPublishHalf := func(i int) error {
		say("raw publish of %d orders", sizes[i])
		cmd := exec.CommandContext(ctx, self, Name, "-raw", "publish", "-url", url, "-queue", rawQueue, "-values", files[i])
		cmd.Stderr = stderr
		p, err := run1(cmd)
		if err != nil {
			return fmt.Errorf("raw publish: %w", err)
		}
		rawPub.add(sizes[i], p.Elapsed(), p.Usage())
		if got, err := ready(ch, rawQueue); err != nil || got != sizes[0]+i*sizes[1] {
			return fmt.Errorf("raw publish: the queue holds %d messages, want %d (%v)", got, sizes[0]+i*sizes[1], err)
		}
		return nil
	}
	sinkHalf := func(i int) error {
		say("rabbitmq-sink of %d records", sizes[i])
		name := fmt.Sprint("sink", i)
		logPath := filepath.Join(work, name+".log")
		cmd := benchkit.Command(ctx, logPath, filepath.Join(bin, "rabbitmq-sink"), "--topic", fmt.Sprint("orders", i), "--bus", busDir, "--url", url,
			"--routing-key", sinkQueues[i], "--mandatory", "--from", "beginning", "--stop-at-end")
		cmd.Env = benchkit.ProfileEnv(name)
		p, err := run1(cmd)
		if err != nil {
			return fmt.Errorf("rabbitmq-sink: %w (log in %s)", err, logPath)
		}
		sink.add(sizes[i], p.Elapsed(), p.Usage())
		if got, err := ready(ch, sinkQueues[i]); err != nil || got != sizes[i] {
			return fmt.Errorf("rabbitmq-sink wrote %d messages, want %d (%v)", got, sizes[i], err)
		}
		return nil
	}
	for _, step := range []func() error{
		func() error { return rawPublishHalf(0) }, func() error { return sinkHalf(0) },
		func() error { return sinkHalf(1) }, func() error { return rawPublishHalf(1) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	rows = append(rows, row{"rabbitmq-sink (bus → queue)", sink, rawPub, "raw: persistent publish with confirms, 8,192 per batch, every confirm awaited"})

	// Consume.
	var rawCons, source side
	rawConsumeHalf := func(i int) error {
		say("raw consume of %d messages", sizes[i])
		cmd := exec.CommandContext(ctx, self, Name, "-raw", "consume", "-url", url, "-queue", rawQueue, "-n", strconv.Itoa(sizes[i]),
			"-prefetch", strconv.Itoa(prefetch))
		cmd.Stderr = stderr
		p, err := run1(cmd)
		if err != nil {
			return fmt.Errorf("raw consume: %w", err)
		}
		rawCons.add(sizes[i], p.Elapsed(), p.Usage())
		return nil
	}
	sourceHalf := func(i int) error {
		say("rabbitmq-source of %d messages", sizes[i])
		name := fmt.Sprint("source", i)
		srcBus := filepath.Join(work, fmt.Sprint("srcbus", i))
		logPath := filepath.Join(work, name+".log")
		cmd := benchkit.Command(ctx, logPath, filepath.Join(bin, "rabbitmq-source"), "--topic", "orders", "--bus", srcBus, "--url", url,
			"--queue", sinkQueues[i], "--passive", "--prefetch", fmt.Sprint(prefetch))
		cmd.Env = benchkit.ProfileEnv(name)
		p, err := benchkit.Start(cmd)
		if err != nil {
			return err
		}
		count, closeBus := busCount(ctx, srcBus, "orders")
		prog, err := benchkit.Watch(ctx, every, count, int64(sizes[i]), p)
		closeBus()
		if werr := p.Stop(); err == nil && werr != nil {
			err = fmt.Errorf("rabbitmq-source: %w", werr)
		}
		if err != nil {
			return fmt.Errorf("%w (log in %s)", err, logPath)
		}
		source.add(sizes[i], prog.Done.Sub(p.Started), p.Usage())
		if left, err := ready(ch, sinkQueues[i]); err != nil || left != 0 {
			return fmt.Errorf("rabbitmq-source left %d messages in the queue (%v)", left, err)
		}
		return nil
	}
	for _, step := range []func() error{
		func() error { return rawConsumeHalf(0) }, func() error { return sourceHalf(0) },
		func() error { return sourceHalf(1) }, func() error { return rawConsumeHalf(1) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	rows = append(rows, row{"rabbitmq-source (queue → bus)", source, rawCons, "raw: consumer with manual acks, prefetch " + benchkit.Int(float64(prefetch)) + ", one multiple ack per arrival; the source also writes each record durably to the embedded bus"})

	fmt.Fprintf(out, "bench rabbitmq: %d orders, %s, RabbitMQ %v; machine: %s; the raw client in a process of its own\n\n", n, benchkit.Date(), conn.Properties["version"], benchkit.CPUs())
	t := benchkit.NewTable("lrrrlrrrrl", "step", "records/s", "raw amqp091-go records/s", "ratio", "floor",
		"CPU per 1,000 records", "raw CPU per 1,000", "peak RSS MB", "raw peak RSS MB", "raw client does")
	for _, r := range rows {
		t.Row(r.step, benchkit.Int(r.got.rate()), benchkit.Int(r.raw.rate()), benchkit.Ratio(r.got.rate(), r.raw.rate()),
			f.AtLeast(r.step+" vs raw amqp091-go", r.got.rate()/r.raw.rate(), minVsRaw, "×"),
			benchkit.PerK(r.got.use.CPU, r.got.records), benchkit.PerK(r.raw.use.CPU, r.raw.records), r.got.use.MB(), r.raw.use.MB(), r.note)
	}
	t.Markdown(out)
	f.SetFor(defaultN, n, "orders")
	return nil
}

// run1 runs cmd to its end.
func run1(cmd *exec.Cmd) (*benchkit.Proc, error) {
	p, err := benchkit.Start(cmd)
	if err != nil {
		return nil, err
	}
	return p, p.Wait()
}

// rawClient is the raw client process: publish publishes the values of
// the file at valuesPath to queue (rawPublish); consume consumes n of its
// messages (rawConsume).
func rawClient(ctx context.Context, mode, url, queue, valuesPath string, n, prefetch int) error {
	var values [][]byte
	if mode == "publish" {
		var err error
		if values, err = benchkit.ReadLines(valuesPath); err != nil {
			return err
		}
	}
	conn, err := rabbitmq.Connect(ctx, url, rabbitmq.Options{Name: "bench-rabbitmq-raw-" + mode})
	if err != nil {
		return err
	}
	defer conn.Close()
	switch mode {
	case "publish":
		return rawPublish(ctx, conn, queue, values)
	case "consume":
		return rawConsume(ctx, conn, queue, n, prefetch)
	}
	return fmt.Errorf("unknown -raw %q", mode)
}

// rawPublish publishes values as persistent messages with confirms, a batch
// at a time, every confirm of a batch awaited before the next.
func rawPublish(ctx context.Context, conn *amqp.Connection, queue string, values [][]byte) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	dcs := make([]*amqp.DeferredConfirmation, 0, confirmBatch)
	for i := 0; i < len(values); i += confirmBatch {
		dcs = dcs[:0]
		for _, v := range values[i:min(i+confirmBatch, len(values))] {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{Body: v, DeliveryMode: amqp.Persistent})
			if err != nil {
				return err
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("not confirmed (%v, channel closed: %v)", err, ch.IsClosed())
			}
		}
	}
	return nil
}

// rawConsume consumes n messages with manual acks and prefetch as its
// basic.qos: what has arrived is acknowledged with one multiple ack.
func rawConsume(ctx context.Context, conn *amqp.Connection, queue string, n, prefetch int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	got := 0
	for got < n {
		var d amqp.Delivery
		select {
		case d = <-ds:
		case <-ctx.Done():
			return ctx.Err()
		}
		got++
	drain:
		for got < n {
			select {
			case d = <-ds:
				got++
			default:
				break drain
			}
		}
		if err := ch.Ack(d.DeliveryTag, true); err != nil {
			return err
		}
	}
	return nil
}

func ready(ch *amqp.Channel, queue string) (int, error) {
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	return q.Messages, err
}

// busCount counts the records of topic on the embedded bus in dir, 0 until
// the bus exists (benchkit.TopicWatch: it does not compete with the
// source for SQLite's write lock); call closeBus after.
func busCount(ctx context.Context, dir, topic string) (count func() (int64, error), closeBus func()) {
	var w *benchkit.TopicWatch
	count = func() (int64, error) {
		if w == nil {
			if _, err := os.Stat(filepath.Join(dir, "bus.db")); err != nil {
				return 0, nil
			}
			var err error
			if w, err = benchkit.WatchTopic(ctx, dir, topic); err != nil {
				return 0, err
			}
		}
		return w.Len(ctx)
	}
	return count, func() {
		if w != nil {
			w.Close()
		}
	}
}
