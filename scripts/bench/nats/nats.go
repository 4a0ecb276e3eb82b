// Package nats is `bench nats`: it measures nats-source (JetStream) and nats-sink
// (--jetstream) next to raw nats.go doing the same with the same guarantees,
// in one run, with the orders data set, against a NATS server with JetStream:
//
//	raw publish      nats.go async JetStream publish, at most 4,096 awaiting their
//	                 ack, every ack waited for
//	nats-sink        the real binary: the records from the embedded bus to JetStream,
//	                 --jetstream, --stop-at-end (process start and bus reads included)
//	raw consume      nats.go pull consumer with explicit acks: every message
//	                 acknowledged, the acks flushed
//	nats-source      the real binary: the stream into the embedded bus (durable
//	                 writes), every message acknowledged after; timed until the
//	                 server has no message pending or unacknowledged
//
// Besides records/s, the table shows the CPU time (user and system) that the
// connector process and the raw client spent per 1,000 records: on a busy
// machine it varies less than the rates. The raw client's CPU time is the
// bench process's own during its step.
//
// Every run uses fresh stream names and removes its streams. The floor
// column checks each ratio to raw nats.go (>= 0.8x); bench nats exits 1
// after the table when one is missed.
//
// Usage:
//
//	bench nats [-bin bin] [-n 200000] [-url nats://127.0.0.1:4222]
package nats

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

const window = 4096

// minVsRaw is the floor of each connector's ratio to raw nats.go. Issue 5
// (the broker connectors): "Floor: the connector reaches ≥ 0.8 × the raw
// client's rate." Its text names RabbitMQ and MQTT; the README holds NATS
// to the same floor (only Kafka's connectors had none, until issue 16).
const minVsRaw = 0.8

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 200_000

type row struct {
	step        string
	rate, raw   float64
	cpu, rawCPU time.Duration // user+system CPU time of the connector process and of the raw client
	n           int
	note        string
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "nats"
	Summary = "nats-source and nats-sink --jetstream next to raw nats.go JetStream, on the local NATS server"
)

// Main runs `bench nats` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built nats-source and nats-sink")
	n := fl.Int("n", defaultN, "orders (the floors are set for the default)")
	url := fl.String("url", "nats://127.0.0.1:4222", "NATS server with JetStream")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	return benchkit.MainFloors("bench nats", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *url, stdout, stderr)
	})
}

func run(ctx context.Context, f *benchkit.Floors, bin string, n int, url string, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench nats")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "nats-source", "nats-sink"); err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "bench-nats", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	nc, err := natsgo.Connect(url, natsgo.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return err
	}
	ns := "BENCH" + strings.ToUpper(benchkit.ID())
	rawStream, sinkStream := ns+"_RAW", ns+"_SINK"
	for _, s := range []string{rawStream, sinkStream} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{s}, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("creating stream %s: %w", s, err)
		}
		defer js.DeleteStream(context.Background(), s)
	}

	values := benchkit.Orders(n, 1)
	var rows []row

	// Publish.
	say("raw publish of %d orders", n)
	start, cpu0 := time.Now(), benchkit.CPUTime()
	if err := rawPublish(ctx, js, rawStream, values); err != nil {
		return fmt.Errorf("raw publish: %w", err)
	}
	rawPub := float64(n) / time.Since(start).Seconds()
	rawPubCPU := benchkit.CPUTime() - cpu0

	busDir := filepath.Join(work, "bus")
	start, cpu0 = time.Now(), benchkit.CPUTime()
	if err := benchkit.LoadBus(ctx, busDir, "orders", values, 5000); err != nil {
		return err
	}
	busRate, busCPU := float64(n)/time.Since(start).Seconds(), benchkit.CPUTime()-cpu0
	say("nats-sink --jetstream")
	start = time.Now()
	sink := benchkit.Command(ctx, filepath.Join(work, "sink.log"), filepath.Join(bin, "nats-sink"), "--topic", "orders", "--bus", busDir, "--url", url,
		"--subject", sinkStream, "--jetstream", "--from", "beginning", "--stop-at-end")
	if err := sink.Run(); err != nil {
		return fmt.Errorf("nats-sink: %w (log in %s)", err, filepath.Join(work, "sink.log"))
	}
	sinkRate := float64(n) / time.Since(start).Seconds()
	sinkCPU := benchkit.ProcessCPU(sink.ProcessState)
	if got, err := streamMsgs(ctx, js, sinkStream); err != nil || got != uint64(n) {
		return fmt.Errorf("nats-sink wrote %d messages, want %d (%v)", got, n, err)
	}
	rows = append(rows, row{"nats-sink --jetstream (bus → JetStream)", sinkRate, rawPub, sinkCPU, rawPubCPU, n, "raw: async publish, at most 4,096 unacknowledged, every ack awaited"})

	// Consume.
	say("raw consume")
	start, cpu0 = time.Now(), benchkit.CPUTime()
	if err := rawConsume(ctx, js, rawStream, n); err != nil {
		return fmt.Errorf("raw consume: %w", err)
	}
	rawCons := float64(n) / time.Since(start).Seconds()
	rawConsCPU := benchkit.CPUTime() - cpu0

	say("nats-source --stream")
	srcBus := filepath.Join(work, "srcbus")
	start = time.Now()
	cmd := benchkit.Command(ctx, filepath.Join(work, "source.log"), filepath.Join(bin, "nats-source"), "--topic", "orders", "--bus", srcBus, "--url", url,
		"--stream", rawStream, "--durable", "bench_source")
	if err := cmd.Start(); err != nil {
		return err
	}
	err = waitConsumed(ctx, js, rawStream, "bench_source", uint64(n))
	srcRate := float64(n) / time.Since(start).Seconds()
	cmd.Process.Signal(syscall.SIGTERM)
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("nats-source: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("%w (log in %s)", err, filepath.Join(work, "source.log"))
	}
	srcCPU := benchkit.ProcessCPU(cmd.ProcessState)
	rows = append(rows, row{"nats-source --stream (JetStream → bus)", srcRate, rawCons, srcCPU, rawConsCPU, n, "raw: pull consumer, explicit ack of each message (the source also writes every record durably to the embedded bus)"})

	fmt.Fprintf(out, "bench nats: %d orders, %s, NATS %s; machine: %s\n\n", n, benchkit.Date(), nc.ConnectedServerVersion(), benchkit.CPUs())
	t := benchkit.NewTable("lrrrlrrl", "step", "records/s", "raw nats.go records/s", "ratio", "floor", "CPU per 1,000 records", "raw CPU per 1,000", "raw client does")
	for _, r := range rows {
		t.Row(r.step, benchkit.Int(r.rate), benchkit.Int(r.raw), benchkit.Ratio(r.rate, r.raw), f.AtLeast(r.step+" vs raw nats.go", r.rate/r.raw, minVsRaw, "×"),
			benchkit.PerK(r.cpu, r.n), benchkit.PerK(r.rawCPU, r.n), r.note)
	}
	t.Markdown(out)
	f.SetFor(defaultN, n, "orders")
	fmt.Fprintf(out, "\nFor reference, in the same run: the embedded bus alone took %s records/s and %s of CPU per 1,000 records (bus.Publish in batches of 5,000, as the source runner writes), "+
		"work that nats-source does on top of what the raw consumer does.\n", benchkit.Int(busRate), benchkit.PerK(busCPU, n))
	return nil
}

func rawPublish(ctx context.Context, js jetstream.JetStream, subject string, values [][]byte) error {
	futs := make([]jetstream.PubAckFuture, 0, len(values))
	oldest := 0
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, v := range values {
		for ; len(futs)-oldest >= window; oldest++ {
			if err := wait(futs[oldest]); err != nil {
				return err
			}
		}
		f, err := js.PublishMsgAsync(&natsgo.Msg{Subject: subject, Data: v})
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	for ; oldest < len(futs); oldest++ {
		if err := wait(futs[oldest]); err != nil {
			return err
		}
	}
	return nil
}

func rawConsume(ctx context.Context, js jetstream.JetStream, stream string, n int) error {
	c, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "bench_raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		return err
	}
	got := 0
	for got < n {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		k := 0
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				return err
			}
			k++
		}
		if k == 0 {
			return fmt.Errorf("got %d of %d messages (%v)", got, n, batch.Error())
		}
		got += k
	}
	return waitConsumed(ctx, js, stream, "bench_raw", uint64(n))
}

// waitConsumed waits until the consumer has had n messages delivered and
// none is pending or unacknowledged.
func waitConsumed(ctx context.Context, js jetstream.JetStream, stream, durable string, n uint64) error {
	for {
		c, err := js.Consumer(ctx, stream, durable)
		if err == nil {
			ci, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if ci.AckFloor.Stream >= n && ci.NumPending == 0 && ci.NumAckPending == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
