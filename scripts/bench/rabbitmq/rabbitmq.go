// Package rabbitmq is `bench rabbitmq`: it measures rabbitmq-sink and rabbitmq-source next to
// raw amqp091-go doing the same with the same guarantees, in one run, with
// the orders data set, against a RabbitMQ server:
//
//	raw publish      amqp091-go publisher with confirms: persistent messages to a
//	                 durable queue through the default exchange, in batches of
//	                 8,192 (what the sink gets from one bus poll), every confirm
//	                 of a batch awaited before the next
//	rabbitmq-sink    the real binary: the records from the embedded bus to the
//	                 queue, --mandatory, --stop-at-end (process start and bus
//	                 reads included)
//	raw consume      amqp091-go consumer with manual acks, the same prefetch as
//	                 the source (10,000): what has arrived is acknowledged with
//	                 one multiple ack, as the source does once it is durable
//	rabbitmq-source  the real binary: the queue into the embedded bus (durable
//	                 writes), acknowledged after; timed until every record is on
//	                 the bus, then checked that the queue is empty
//
// Each side runs twice on half the orders, in the order raw, connector,
// connector, raw, so that the shared machine's load drifting during the run
// favours neither. Every run uses fresh queue names and deletes its queues.
// The floor column checks each ratio to raw amqp091-go (>= 0.8x); bench
// rabbitmq exits 1 after the table when one is missed.
//
// Usage:
//
//	bench rabbitmq [-bin bin] [-n 100000] [-prefetch 10000] [-url amqp://guest:guest@127.0.0.1:5672/]
package rabbitmq

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
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

type row struct {
	step      string
	rate, raw float64
	note      string
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "rabbitmq"
	Summary = "rabbitmq-source and rabbitmq-sink next to raw amqp091-go with the same guarantees, on the local RabbitMQ"
)

// Main runs `bench rabbitmq` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built rabbitmq-source and rabbitmq-sink")
	n := fl.Int("n", defaultN, "orders (the floors are set for the default)")
	url := fl.String("url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ server")
	prefetch := fl.Int("prefetch", 10000, "prefetch of the source and the raw consumer (the source's default)")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
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
	for i, h := range halves {
		if err := benchkit.LoadBus(ctx, busDir, fmt.Sprint("orders", i), h, 10000); err != nil {
			return err
		}
	}
	var rows []row

	// Publish.
	var rawPubTime, sinkTime time.Duration
	rawPublishHalf := func(i int) error {
		say("raw publish of %d orders", len(halves[i]))
		start := time.Now()
		if err := rawPublish(ctx, conn, rawQueue, halves[i]); err != nil {
			return fmt.Errorf("raw publish: %w", err)
		}
		rawPubTime += time.Since(start)
		return nil
	}
	sinkHalf := func(i int) error {
		say("rabbitmq-sink of %d records", len(halves[i]))
		start := time.Now()
		logPath := filepath.Join(work, fmt.Sprint("sink", i, ".log"))
		if err := benchkit.Command(ctx, logPath, filepath.Join(bin, "rabbitmq-sink"), "--topic", fmt.Sprint("orders", i), "--bus", busDir, "--url", url,
			"--routing-key", sinkQueues[i], "--mandatory", "--from", "beginning", "--stop-at-end").Run(); err != nil {
			return fmt.Errorf("rabbitmq-sink: %w (log in %s)", err, logPath)
		}
		sinkTime += time.Since(start)
		if got, err := ready(ch, sinkQueues[i]); err != nil || got != len(halves[i]) {
			return fmt.Errorf("rabbitmq-sink wrote %d messages, want %d (%v)", got, len(halves[i]), err)
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
	rows = append(rows, row{"rabbitmq-sink (bus → queue)", rate(n, sinkTime), rate(n, rawPubTime), "raw: persistent publish with confirms, 8,192 per batch, every confirm awaited"})

	// Consume.
	var rawConsTime, srcTime time.Duration
	rawConsumeHalf := func(i int) error {
		say("raw consume of %d messages", len(halves[i]))
		start := time.Now()
		if err := rawConsume(ctx, conn, rawQueue, len(halves[i]), prefetch); err != nil {
			return fmt.Errorf("raw consume: %w", err)
		}
		rawConsTime += time.Since(start)
		return nil
	}
	sourceHalf := func(i int) error {
		say("rabbitmq-source of %d messages", len(halves[i]))
		srcBus := filepath.Join(work, fmt.Sprint("srcbus", i))
		logPath := filepath.Join(work, fmt.Sprint("source", i, ".log"))
		start := time.Now()
		cmd := benchkit.Command(ctx, logPath, filepath.Join(bin, "rabbitmq-source"), "--topic", "orders", "--bus", srcBus, "--url", url,
			"--queue", sinkQueues[i], "--passive", "--prefetch", fmt.Sprint(prefetch))
		if err := cmd.Start(); err != nil {
			return err
		}
		err := waitTopic(ctx, srcBus, "orders", int64(len(halves[i])))
		srcTime += time.Since(start)
		cmd.Process.Signal(syscall.SIGTERM)
		if werr := cmd.Wait(); err == nil && werr != nil {
			err = fmt.Errorf("rabbitmq-source: %w", werr)
		}
		if err != nil {
			return fmt.Errorf("%w (log in %s)", err, logPath)
		}
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
	rows = append(rows, row{"rabbitmq-source (queue → bus)", rate(n, srcTime), rate(n, rawConsTime), "raw: consumer with manual acks, prefetch " + benchkit.Int(float64(prefetch)) + ", one multiple ack per arrival; the source also writes each record durably to the embedded bus"})

	fmt.Fprintf(out, "bench rabbitmq: %d orders, %s, RabbitMQ %v; machine: %s\n\n", n, benchkit.Date(), conn.Properties["version"], benchkit.CPUs())
	t := benchkit.NewTable("lrrrll", "step", "records/s", "raw amqp091-go records/s", "ratio", "floor", "raw client does")
	for _, r := range rows {
		t.Row(r.step, benchkit.Int(r.rate), benchkit.Int(r.raw), benchkit.Ratio(r.rate, r.raw), f.AtLeast(r.step+" vs raw amqp091-go", r.rate/r.raw, minVsRaw, "×"), r.note)
	}
	t.Markdown(out)
	f.SetFor(defaultN, n, "orders")
	return nil
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

// waitTopic waits until topic on the embedded bus in dir has n records
// (benchkit.TopicWatch: it does not compete with the source for SQLite's
// write lock).
func waitTopic(ctx context.Context, dir, topic string, n int64) error {
	tick := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
			return nil
		}
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "bus.db")); err == nil {
			break
		}
		if err := tick(); err != nil {
			return err
		}
	}
	w, err := benchkit.WatchTopic(ctx, dir, topic)
	if err != nil {
		return err
	}
	defer w.Close()
	for {
		end, err := w.Len(ctx)
		if err != nil {
			return err
		}
		if end >= n {
			return nil
		}
		if err := tick(); err != nil {
			return err
		}
	}
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
