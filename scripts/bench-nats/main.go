// Command bench-nats measures nats-source (JetStream) and nats-sink
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
// Every run uses fresh stream names and removes its streams.
//
// Usage:
//
//	bench-nats [-bin bin] [-n 200000] [-url nats://127.0.0.1:4222]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

const window = 4096

type row struct {
	step        string
	rate, raw   float64
	cpu, rawCPU time.Duration // user+system CPU time of the connector process and of the raw client
	n           int
	note        string
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perK formats a CPU time per 1,000 records.
func perK(d time.Duration, n int) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)*1000/float64(n))
}

func main() {
	bin := flag.String("bin", "bin", "directory of the built nats-source and nats-sink")
	n := flag.Int("n", 200000, "orders")
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS server with JetStream")
	flag.Parse()
	if err := run(*bin, *n, *url, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-nats:", err)
		os.Exit(1)
	}
}

func say(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench-nats: "+format+"\n", a...) }

func run(bin string, n int, url string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, _ = filepath.Abs(bin)
	for _, b := range []string{"nats-source", "nats-sink"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%v (make build first)", err)
		}
	}
	work, err := os.MkdirTemp("", "bench-nats")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	nc, err := natsgo.Connect(url, natsgo.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return err
	}
	var id [4]byte
	rand.Read(id[:])
	ns := "BENCH" + strings.ToUpper(hex.EncodeToString(id[:]))
	rawStream, sinkStream := ns+"_RAW", ns+"_SINK"
	for _, s := range []string{rawStream, sinkStream} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{s}, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("creating stream %s: %w", s, err)
		}
		defer js.DeleteStream(context.Background(), s)
	}

	values := make([][]byte, 0, n)
	g := orders.NewGenerator(1)
	for range n {
		values = append(values, g.Next().AppendJSON(nil))
	}
	var rows []row

	// Publish.
	say("raw publish of %d orders", n)
	start, cpu0 := time.Now(), cpuTime()
	if err := rawPublish(ctx, js, rawStream, values); err != nil {
		return fmt.Errorf("raw publish: %w", err)
	}
	rawPub := float64(n) / time.Since(start).Seconds()
	rawPubCPU := cpuTime() - cpu0

	busDir := filepath.Join(work, "bus")
	start, cpu0 = time.Now(), cpuTime()
	if err := loadBus(ctx, busDir, "orders", values); err != nil {
		return err
	}
	busRate, busCPU := float64(n)/time.Since(start).Seconds(), cpuTime()-cpu0
	say("nats-sink --jetstream")
	start = time.Now()
	sink := command(ctx, filepath.Join(work, "sink.log"), filepath.Join(bin, "nats-sink"), "--topic", "orders", "--bus", busDir, "--url", url,
		"--subject", sinkStream, "--jetstream", "--from", "beginning", "--stop-at-end")
	if err := sink.Run(); err != nil {
		return fmt.Errorf("nats-sink: %w (log in %s)", err, filepath.Join(work, "sink.log"))
	}
	sinkRate := float64(n) / time.Since(start).Seconds()
	sinkCPU := sink.ProcessState.UserTime() + sink.ProcessState.SystemTime()
	if got, err := streamMsgs(ctx, js, sinkStream); err != nil || got != uint64(n) {
		return fmt.Errorf("nats-sink wrote %d messages, want %d (%v)", got, n, err)
	}
	rows = append(rows, row{"nats-sink --jetstream (bus → JetStream)", sinkRate, rawPub, sinkCPU, rawPubCPU, n, "raw: async publish, at most 4,096 unacknowledged, every ack awaited"})

	// Consume.
	say("raw consume")
	start, cpu0 = time.Now(), cpuTime()
	if err := rawConsume(ctx, js, rawStream, n); err != nil {
		return fmt.Errorf("raw consume: %w", err)
	}
	rawCons := float64(n) / time.Since(start).Seconds()
	rawConsCPU := cpuTime() - cpu0

	say("nats-source --stream")
	srcBus := filepath.Join(work, "srcbus")
	start = time.Now()
	cmd := command(ctx, filepath.Join(work, "source.log"), filepath.Join(bin, "nats-source"), "--topic", "orders", "--bus", srcBus, "--url", url,
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
	srcCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	rows = append(rows, row{"nats-source --stream (JetStream → bus)", srcRate, rawCons, srcCPU, rawConsCPU, n, "raw: pull consumer, explicit ack of each message (the source also writes every record durably to the embedded bus)"})

	fmt.Fprintf(out, "bench-nats: %d orders, %s, NATS %s; machine: %d CPUs, %s\n\n", n, time.Now().UTC().Format("2006-01-02 15:04 UTC"), nc.ConnectedServerVersion(), runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(out, "| step | records/s | raw nats.go records/s | ratio | CPU per 1,000 records | raw CPU per 1,000 | raw client does |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %s | %s | %.2f× | %s | %s | %s |\n", r.step, fmtInt(r.rate), fmtInt(r.raw), r.rate/r.raw, perK(r.cpu, r.n), perK(r.rawCPU, r.n), r.note)
	}
	fmt.Fprintf(out, "\nFor reference, in the same run: the embedded bus alone took %s records/s and %s of CPU per 1,000 records (bus.Publish in batches of 5,000, as the source runner writes), "+
		"work that nats-source does on top of what the raw consumer does.\n", fmtInt(busRate), perK(busCPU, n))
	return nil
}

// command runs a connector binary with its log in logPath.
func command(ctx context.Context, logPath, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, append(args, "--log-format", "json", "--progress-interval", "0")...)
	if f, err := os.Create(logPath); err == nil {
		cmd.Stderr = f
	}
	return cmd
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

// loadBus publishes values to topic on the embedded bus in dir, in batches of 5,000.
func loadBus(ctx context.Context, dir, topic string, values [][]byte) error {
	b, err := bus.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer b.Close()
	for i := 0; i < len(values); i += 5000 {
		chunk := values[i:min(i+5000, len(values))]
		recs := make([]record.Record, len(chunk))
		for j, v := range chunk {
			recs[j] = record.Record{Value: v}
		}
		if err := bus.Publish(ctx, b, topic, recs...); err != nil {
			return fmt.Errorf("loading the bus: %w", err)
		}
	}
	return nil
}

// fmtInt formats a number as a whole number with thousands separators.
func fmtInt(r float64) string {
	s := fmt.Sprintf("%.0f", r)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
