// Package nats is `bench nats`: it measures nats-source (JetStream) and nats-sink
// (--jetstream) next to raw nats.go doing the same with the same guarantees,
// in one run, with the orders data set, against a NATS server with JetStream:
//
//	raw publish      nats.go async JetStream publish, at most 4,096 awaiting their
//	                 ack, every ack waited for
//	nats-sink        the real binary: the records from the embedded bus to JetStream,
//	                 --jetstream, --stop-at-end
//	raw consume      nats.go pull consumer with explicit acks, fetches of 1,000:
//	                 every message acknowledged, the acks flushed
//	nats-source      the real binary: the stream into the embedded bus (durable
//	                 writes), every message acknowledged after
//
// The raw clients run in a process of their own, as the connectors do: this
// program starts itself again as `bench nats -raw publish|consume`, so
// that every ratio compares two processes. Each step is timed from the
// process's start, so both sides count their start and their connection:
//
//	raw publish, nats-sink    until the process exits, every ack received
//	                          (and, for the sink, committed); the stream must
//	                          then hold every message. The raw publisher
//	                          first reads its orders (a file of JSON lines,
//	                          16 MB of the 200,000) into memory, which the
//	                          sink reads from its bus.
//	raw consume, nats-source  until the server reports every message of the
//	                          stream delivered to the consumer and
//	                          acknowledged (the consumer's info, asked every
//	                          10ms); the raw consumer then exits, the source
//	                          is stopped
//
// Besides records/s, the table shows the CPU time (user and system) per
// 1,000 records and the peak RSS of the connector's process and of the raw
// client's (benchkit.Proc: the process's own, not the bench's that started
// it): on a busy machine the CPU time varies less than the rates. The raw
// publisher's CPU time includes reading its file; its peak RSS is mostly the
// orders it holds and the acknowledgement future of every message, which it
// keeps until the end (as it did in the bench process): it says little about
// nats.go's own memory. Each step runs once, raw first.
//
// Every run uses fresh stream names and removes its streams. The floor
// column checks each ratio to raw nats.go (>= 0.8x); bench nats exits 1
// after the table when one is missed.
//
// Usage:
//
//	bench nats [-bin bin] [-n 200000] [-url nats://127.0.0.1:4222]
//
// With BENCH_PROFILE_DIR set, each connector run writes a CPU profile
// there (CULVERT_CPUPROFILE), named after its log: sink.prof, source.prof.
package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// every is how often the server is asked how far a consumer got.
const every = 10 * time.Millisecond

// result is one timed step.
type result struct {
	rate float64
	use  benchkit.Usage // of the process doing the step
}

type row struct {
	step     string
	got, raw result
	note     string
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "nats"
	Summary = "nats-source and nats-sink --jetstream next to raw nats.go JetStream in its own process, on the local NATS server"
)

// Main runs `bench nats` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built nats-source and nats-sink")
	n := fl.Int("n", defaultN, "orders (the floors are set for the default)")
	url := fl.String("url", "nats://127.0.0.1:4222", "NATS server with JetStream")
	raw := fl.String("raw", "", "internal: be the raw client process, publish or consume")
	stream := fl.String("stream", "", "internal: the raw client's stream (and subject)")
	values := fl.String("values", "", "internal: the raw publisher's file of values, one a line")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *raw != "" {
		return benchkit.Main("bench nats -raw "+*raw, stderr, func(ctx context.Context) error { return rawClient(ctx, *raw, *url, *stream, *values, *n) })
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
	self, err := os.Executable()
	if err != nil {
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
	js, err := jetstream.New(nc)
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
	ordersFile := filepath.Join(work, "orders.jsonl")
	if err := os.WriteFile(ordersFile, benchkit.Lines(values), 0o644); err != nil {
		return err
	}
	var rows []row

	// Publish.
	say("raw publish of %d orders", n)
	cmd := exec.CommandContext(ctx, self, Name, "-raw", "publish", "-url", url, "-stream", rawStream, "-values", ordersFile)
	cmd.Stderr = stderr
	rawPub, err := toEnd(cmd, n)
	if err != nil {
		return fmt.Errorf("raw publish: %w", err)
	}
	if got, err := streamMsgs(ctx, js, rawStream); err != nil || got != uint64(n) {
		return fmt.Errorf("raw publish wrote %d messages, want %d (%v)", got, n, err)
	}

	busDir := filepath.Join(work, "bus")
	start, cpu0 := time.Now(), benchkit.CPUTime()
	if err := benchkit.LoadBus(ctx, busDir, "orders", values, 5000); err != nil {
		return err
	}
	busRate, busCPU := float64(n)/time.Since(start).Seconds(), benchkit.CPUTime()-cpu0
	values = nil
	say("nats-sink --jetstream")
	sinkLog := filepath.Join(work, "sink.log")
	cmd = benchkit.Command(ctx, sinkLog, filepath.Join(bin, "nats-sink"), "--topic", "orders", "--bus", busDir, "--url", url,
		"--subject", sinkStream, "--jetstream", "--from", "beginning", "--stop-at-end")
	cmd.Env = benchkit.ProfileEnv("sink")
	sink, err := toEnd(cmd, n)
	if err != nil {
		return fmt.Errorf("nats-sink: %w (log in %s)", err, sinkLog)
	}
	if got, err := streamMsgs(ctx, js, sinkStream); err != nil || got != uint64(n) {
		return fmt.Errorf("nats-sink wrote %d messages, want %d (%v)", got, n, err)
	}
	rows = append(rows, row{"nats-sink --jetstream (bus → JetStream)", sink, rawPub, "raw: async publish, at most 4,096 unacknowledged, every ack awaited"})

	// Consume.
	say("raw consume")
	cmd = exec.CommandContext(ctx, self, Name, "-raw", "consume", "-url", url, "-stream", rawStream, "-n", strconv.Itoa(n))
	cmd.Stderr = stderr
	rawCons, err := consumed(ctx, js, rawStream, rawDurable, n, cmd, false)
	if err != nil {
		return fmt.Errorf("raw consume: %w", err)
	}

	say("nats-source --stream")
	srcLog := filepath.Join(work, "source.log")
	cmd = benchkit.Command(ctx, srcLog, filepath.Join(bin, "nats-source"), "--topic", "orders", "--bus", filepath.Join(work, "srcbus"), "--url", url,
		"--stream", rawStream, "--durable", "bench_source")
	cmd.Env = benchkit.ProfileEnv("source")
	src, err := consumed(ctx, js, rawStream, "bench_source", n, cmd, true)
	if err != nil {
		return fmt.Errorf("nats-source: %w (log in %s)", err, srcLog)
	}
	rows = append(rows, row{"nats-source --stream (JetStream → bus)", src, rawCons, "raw: pull consumer, explicit ack of each message (the source also writes every record durably to the embedded bus)"})

	fmt.Fprintf(out, "bench nats: %d orders, %s, NATS %s; machine: %s; the raw client in a process of its own\n\n", n, benchkit.Date(), nc.ConnectedServerVersion(), benchkit.CPUs())
	t := benchkit.NewTable("lrrrlrrrrl", "step", "records/s", "raw nats.go records/s", "ratio", "floor",
		"CPU per 1,000 records", "raw CPU per 1,000", "peak RSS MB", "raw peak RSS MB", "raw client does")
	for _, r := range rows {
		t.Row(r.step, benchkit.Int(r.got.rate), benchkit.Int(r.raw.rate), benchkit.Ratio(r.got.rate, r.raw.rate), f.AtLeast(r.step+" vs raw nats.go", r.got.rate/r.raw.rate, minVsRaw, "×"),
			benchkit.PerK(r.got.use.CPU, n), benchkit.PerK(r.raw.use.CPU, n), r.got.use.MB(), r.raw.use.MB(), r.note)
	}
	t.Markdown(out)
	f.SetFor(defaultN, n, "orders")
	fmt.Fprintf(out, "\nFor reference, in the same run: the embedded bus alone took %s records/s and %s of CPU per 1,000 records (bus.Publish in batches of 5,000, as the source runner writes), "+
		"work that nats-source does on top of what the raw consumer does.\n", benchkit.Int(busRate), benchkit.PerK(busCPU, n))
	return nil
}

// rawDurable is the raw consumer's durable name.
const rawDurable = "bench_raw"

// toEnd runs cmd, a process that writes n records, timed from its start
// to its end.
func toEnd(cmd *exec.Cmd, n int) (result, error) {
	p, err := benchkit.Start(cmd)
	if err != nil {
		return result{}, err
	}
	if err := p.Wait(); err != nil {
		return result{}, err
	}
	return result{float64(n) / p.Elapsed().Seconds(), p.Usage()}, nil
}

// consumed runs cmd, a process that consumes stream as durable, timed from
// its start until the server reports n messages delivered and every one
// acknowledged; a connector (stop) runs until SIGTERM, the raw consumer
// exits by itself.
func consumed(ctx context.Context, js jetstream.JetStream, stream, durable string, n int, cmd *exec.Cmd, stop bool) (result, error) {
	p, err := benchkit.Start(cmd)
	if err != nil {
		return result{}, err
	}
	acked := func() (int64, error) {
		c, err := js.Consumer(ctx, stream, durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, nil // not made yet
		} else if err != nil {
			return 0, err
		}
		ci := c.CachedInfo()
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			return min(int64(ci.AckFloor.Stream), int64(n)-1), nil
		}
		return int64(ci.AckFloor.Stream), nil
	}
	prog, err := p.WatchThenEnd(ctx, every, acked, int64(n), stop)
	if err != nil {
		return result{}, err
	}
	return result{prog.Since(p.Started), p.Usage()}, nil
}

// rawClient is the raw client process: publish publishes the values of
// the file at valuesPath to the subject stream (rawPublish); consume
// consumes n messages of stream (rawConsume).
func rawClient(ctx context.Context, mode, url, stream, valuesPath string, n int) error {
	var values [][]byte
	if mode == "publish" {
		var err error
		if values, err = benchkit.ReadLines(valuesPath); err != nil {
			return err
		}
	}
	nc, err := natsgo.Connect(url, natsgo.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return err
	}
	switch mode {
	case "publish":
		return rawPublish(ctx, js, stream, values)
	case "consume":
		if err := rawConsume(ctx, js, stream, n); err != nil {
			return err
		}
		return nc.Flush() // the acks sent
	}
	return fmt.Errorf("unknown -raw %q", mode)
}

// rawPublish publishes values to subject asynchronously, at most window
// awaiting their ack, and waits for every ack.
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

// rawConsume consumes n messages of stream as the durable rawDurable,
// fetching 1,000 at a time and acknowledging each (Ack: sent, not awaited).
func rawConsume(ctx context.Context, js jetstream.JetStream, stream string, n int) error {
	c, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: rawDurable, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
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
	return nil
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
