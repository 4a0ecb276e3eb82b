// Package mqtt is `bench mqtt`: it measures mqtt-source and mqtt-sink next to a raw paho
// MQTT 5 client (github.com/eclipse/paho.golang) doing the same at the same
// QoS, in one run, with the orders data set, on the local Mosquitto:
//
//	raw publish   paho, QoS 1, as many publishes awaiting their PUBACK as the
//	              broker's receive maximum allows (the sink's window), every
//	              PUBACK waited for
//	mqtt-sink     the real binary: the records from the embedded bus to the
//	              broker at QoS 1, --stop-at-end, each batch committed after
//	              its PUBACKs
//	raw consume   paho, QoS 1 subscription with manual acks, each message
//	              acknowledged as it arrives
//	mqtt-source   the real binary, default options; each message is
//	              acknowledged to the broker only after it is durable on the
//	              embedded bus
//
// The raw clients run in a process of their own, as the connectors do: this
// program starts itself again as `bench mqtt -raw publish|consume`. On a machine with two CPUs shared
// by the broker, the publisher and the subscriber, a client that shares the
// bench process with the other end hands messages over between goroutines
// where a separate process waits for the kernel to switch; with the raw
// publisher in the bench process, the raw figures were 1.3 to 1.8 times
// those of the same client in its own process.
//
// The raw publisher and mqtt-sink are timed by a subscriber in this process
// that checks that every message arrived, from its first message to its last
// (so neither the sink's start nor the raw client's connection counts). The
// raw consumer and mqtt-source are timed from the first publish of a
// pipelined QoS 1 publisher in this process until the raw consumer got the
// last message, or the last record was on the source's bus.
//
// The machine is shared and noisy: each step runs twice, interleaved (raw,
// connector, connector, raw), and the best rate of each is kept. The CPU
// columns are the user and system time of the connector's process and of
// the raw client's, per 1,000 records, in the run with the best rate.
//
// Every run uses fresh topics and client ids. The floor column checks each
// ratio to raw paho (>= 0.8x); bench mqtt exits 1 after the table when one
// is missed.
//
// Usage:
//
//	bench mqtt [-bin bin] [-n 100000] [-url tcp://127.0.0.1:1883]
//
// With BENCH_PROFILE_DIR set, each connector run writes a CPU profile
// there (CULVERT_CPUPROFILE), named after its log: sink-2.prof, source-6.prof.
package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/paho"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "mqtt"
	Summary = "mqtt-source and mqtt-sink next to a raw paho MQTT 5 client at QoS 1, on the local Mosquitto"
)

// minVsRaw is the floor of each connector's ratio to raw paho. Issue 5:
// "Floor: the connector reaches ≥ 0.8 × the raw client's rate."
const minVsRaw = 0.8

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 100_000

// Main runs `bench mqtt` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built mqtt-source and mqtt-sink")
	n := fl.Int("n", defaultN, "orders (the floors are set for the default)")
	url := fl.String("url", "tcp://127.0.0.1:1883", "MQTT broker (tcp://host:port)")
	raw := fl.String("raw", "", "internal: be the raw client process, publish or consume")
	topic := fl.String("topic", "", "internal: the raw client's MQTT topic")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *raw != "" {
		return benchkit.Main("bench mqtt -raw "+*raw, stderr, func(ctx context.Context) error { return rawClient(ctx, *raw, *url, *topic, *n, stdout) })
	}
	return benchkit.MainFloors("bench mqtt", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *url, stdout, stderr)
	})
}

// result is one timed step.
type result struct {
	rate float64
	cpu  time.Duration // of the process doing the step
}

func run(ctx context.Context, f *benchkit.Floors, bin string, n int, url string, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench mqtt")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "mqtt-source", "mqtt-sink"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "bench-mqtt", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	ns := "culvert-bench/" + benchkit.ID()
	values := benchkit.Orders(n, 1)
	pub, window, err := connect(ctx, url, strings.ReplaceAll(ns, "/", "-")+"-pub", false, nil)
	if err != nil {
		return err
	}
	defer pub.Disconnect(&paho.Disconnect{})
	busDir := filepath.Join(work, "bus")
	if err := benchkit.LoadBus(ctx, busDir, "orders", values, 10000); err != nil {
		return err
	}

	rawPub := func(topic string, _ int) (result, error) {
		cmd := exec.CommandContext(ctx, self, Name, "-raw", "publish", "-url", url, "-topic", topic, "-n", strconv.Itoa(n))
		cmd.Stderr = stderr
		return timedBySubscriber(ctx, url, topic, n, cmd)
	}
	sink := func(topic string, i int) (result, error) {
		return timedBySubscriber(ctx, url, topic, n, command(ctx, work, fmt.Sprintf("sink-%d", i), filepath.Join(bin, "mqtt-sink"), "--topic", "orders", "--bus", busDir, "--url", url,
			"--mqtt-topic", topic, "--qos", "1", "--from", "beginning", "--stop-at-end", "--group", fmt.Sprintf("g%d", i)))
	}
	rawCons := func(topic string, _ int) (result, error) {
		return rawConsume(ctx, self, pub, url, topic, values, window, stderr)
	}
	source := func(topic string, i int) (result, error) {
		return sourceRun(ctx, work, bin, i, pub, url, topic, values, window)
	}
	var pubRuns, sinkRuns, consRuns, srcRuns []result
	for i, s := range []struct {
		list *[]result
		what string
		f    func(topic string, i int) (result, error)
	}{
		{&pubRuns, "raw publish", rawPub}, {&sinkRuns, "mqtt-sink", sink}, {&sinkRuns, "mqtt-sink", sink}, {&pubRuns, "raw publish", rawPub},
		{&consRuns, "raw consume", rawCons}, {&srcRuns, "mqtt-source", source}, {&srcRuns, "mqtt-source", source}, {&consRuns, "raw consume", rawCons},
	} {
		say("%s", s.what)
		r, err := s.f(fmt.Sprintf("%s/%d", ns, i), i)
		if err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", s.what, err, work)
		}
		*s.list = append(*s.list, r)
	}

	fmt.Fprintf(out, "bench mqtt: %s orders, best of 2 runs each, %s, broker %s (receive maximum %d); machine: %s\n\n", benchkit.Int(float64(n)), benchkit.Date(), url, window, benchkit.CPUs())
	t := benchkit.NewTable("lrrrlrrl", "step", "records/s", "raw paho records/s", "ratio", "floor", "CPU per 1,000 records", "raw CPU per 1,000", "raw client does")
	for _, r := range []struct {
		step      string
		got, raw  result
		rawClient string
	}{
		{"mqtt-sink (bus → broker), QoS 1", best(sinkRuns), best(pubRuns),
			fmt.Sprintf("publishes from %d goroutines, each waiting for its PUBACK (the broker's receive maximum; unlike the sink it keeps no order); both timed by a subscriber, first message to last", window)},
		{"mqtt-source (broker → bus), QoS 1", best(srcRuns), best(consRuns),
			"QoS 1 subscription, receive maximum 65,535 (as the source), manual ack of each message on arrival; the source acks only after its durable bus write"},
	} {
		t.Row(r.step, benchkit.Int(r.got.rate), benchkit.Int(r.raw.rate), benchkit.Ratio(r.got.rate, r.raw.rate),
			f.AtLeast(r.step+" vs raw paho", r.got.rate/r.raw.rate, minVsRaw, "×"),
			benchkit.PerK(r.got.cpu, n), benchkit.PerK(r.raw.cpu, n), r.rawClient)
	}
	t.Markdown(out)
	f.SetFor(defaultN, n, "orders")
	return nil
}

// best is the run with the best rate.
func best(rs []result) result { return benchkit.Best(rs, func(r result) float64 { return r.rate }) }

// command prepares a connector run with its log (and, with
// BENCH_PROFILE_DIR, its CPU profile) named name.
func command(ctx context.Context, work, name, bin string, args ...string) *exec.Cmd {
	cmd := benchkit.Command(ctx, filepath.Join(work, name+".log"), bin, args...)
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		cmd.Env = append(os.Environ(), "CULVERT_CPUPROFILE="+filepath.Join(dir, name+".prof"))
	}
	return cmd
}

// timedBySubscriber runs cmd, a process that publishes n messages to topic,
// and times it by a subscriber that must get them all: from the first
// message to the last.
func timedBySubscriber(ctx context.Context, url, topic string, n int, cmd *exec.Cmd) (result, error) {
	var got, first, last atomic.Int64
	check, _, err := connect(ctx, url, strings.ReplaceAll(topic, "/", "-")+"-check", false, func(c *paho.Client, p *paho.Publish) {
		now := time.Now().UnixNano()
		if got.Add(1) == 1 {
			first.Store(now)
		}
		last.Store(now)
	})
	if err != nil {
		return result{}, err
	}
	defer check.Disconnect(&paho.Disconnect{})
	if err := subscribe(ctx, check, topic); err != nil {
		return result{}, err
	}
	if err := cmd.Run(); err != nil {
		return result{}, err
	}
	if err := waitCount(ctx, got.Load, int64(n)); err != nil {
		return result{}, fmt.Errorf("a subscriber got %d of %d messages: %w", got.Load(), n, err)
	}
	return result{float64(n-1) / time.Duration(last.Load()-first.Load()).Seconds(), benchkit.ProcessCPU(cmd.ProcessState)}, nil
}

// rawConsume starts the raw consumer process (`bench mqtt -raw consume`,
// its stderr to stderr), publishes values once it has subscribed, and times
// it until it got the last one.
func rawConsume(ctx context.Context, self string, pub *paho.Client, url, topic string, values [][]byte, window int, stderr io.Writer) (result, error) {
	cmd := exec.CommandContext(ctx, self, Name, "-raw", "consume", "-url", url, "-topic", topic, "-n", strconv.Itoa(len(values)))
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "subscribed" {
		return result{}, fmt.Errorf("the raw consumer did not subscribe (%q)", lines.Text())
	}
	start := time.Now()
	if err := publish(ctx, pub, topic, values, window); err != nil {
		return result{}, err
	}
	if !lines.Scan() {
		return result{}, fmt.Errorf("the raw consumer stopped early: %v", cmd.Wait())
	}
	last, err := strconv.ParseInt(lines.Text(), 10, 64)
	if err != nil {
		return result{}, fmt.Errorf("the raw consumer said %q", lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("the raw consumer: %w", err)
	}
	return result{float64(len(values)) / time.Duration(last-start.UnixNano()).Seconds(), benchkit.ProcessCPU(cmd.ProcessState)}, nil
}

// rawClient is the raw client process: publish sends n orders to topic
// from as many goroutines as the broker's receive maximum; consume
// subscribes, says "subscribed", and after n messages prints when the last
// one arrived (Unix nanoseconds).
func rawClient(ctx context.Context, mode, url, topic string, n int, out io.Writer) error {
	id := strings.ReplaceAll(topic, "/", "-") + "-raw-" + mode
	switch mode {
	case "publish":
		c, window, err := connect(ctx, url, id, false, nil)
		if err != nil {
			return err
		}
		defer c.Disconnect(&paho.Disconnect{})
		return publish(ctx, c, topic, benchkit.Orders(n, 1), window)
	case "consume":
		var got, last atomic.Int64
		c, _, err := connect(ctx, url, id, true, func(c *paho.Client, p *paho.Publish) {
			c.Ack(p)
			last.Store(time.Now().UnixNano())
			got.Add(1)
		})
		if err != nil {
			return err
		}
		defer c.Disconnect(&paho.Disconnect{})
		if err := subscribe(ctx, c, topic); err != nil {
			return err
		}
		fmt.Fprintln(out, "subscribed")
		if err := waitCount(ctx, got.Load, int64(n)); err != nil {
			return fmt.Errorf("got %d of %d messages: %w", got.Load(), n, err)
		}
		fmt.Fprintln(out, last.Load())
		return nil
	}
	return fmt.Errorf("unknown -raw %q", mode)
}

// sourceRun times mqtt-source until every value is durable on its bus.
func sourceRun(ctx context.Context, work, bin string, i int, pub *paho.Client, url, topic string, values [][]byte, window int) (result, error) {
	n := len(values)
	srcBus := filepath.Join(work, fmt.Sprintf("srcbus-%d", i))
	cmd := command(ctx, work, fmt.Sprintf("source-%d", i), filepath.Join(bin, "mqtt-source"), "--topic", "orders", "--bus", srcBus, "--url", url,
		"--mqtt-topic", topic, "--client-id", strings.ReplaceAll(topic, "/", "-")+"-src", "--clean-session", "--session-expiry", "0s")
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Process.Kill()
	w, err := benchkit.WatchTopic(ctx, srcBus, "orders")
	if err != nil {
		return result{}, err
	}
	defer w.Close()
	onBus := func() int64 {
		l, err := w.Len(ctx)
		if err != nil {
			return -1
		}
		return l
	}
	// Subscribed once a warm-up message is on the bus.
	warm := [][]byte{[]byte(`{"warmup":true}`)}
	for onBus() < 1 {
		if err := publish(ctx, pub, topic, warm, 1); err != nil {
			return result{}, err
		}
		select {
		case <-ctx.Done():
			return result{}, fmt.Errorf("mqtt-source never subscribed")
		case <-time.After(50 * time.Millisecond):
		}
	}
	base := onBus()
	start := time.Now()
	if err := publish(ctx, pub, topic, values, window); err != nil {
		return result{}, err
	}
	if err := waitCount(ctx, func() int64 { return onBus() - base }, int64(n)); err != nil {
		return result{}, fmt.Errorf("%d of %d records on the bus: %w", onBus()-base, n, err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return result{}, err
	}
	return result{rate, benchkit.ProcessCPU(cmd.ProcessState)}, nil
}

// connect connects a paho client with a clean session and returns it with
// the broker's receive maximum; got, if not nil, receives each message
// (acknowledged by paho after got returns, unless manual).
func connect(ctx context.Context, url, id string, manual bool, got func(*paho.Client, *paho.Publish)) (*paho.Client, int, error) {
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
	if err != nil {
		return nil, 0, fmt.Errorf("connecting to %s: %w", url, err)
	}
	cfg := paho.ClientConfig{Conn: nc, EnableManualAcknowledgment: manual, SendAcksInterval: 5 * time.Millisecond}
	var c *paho.Client
	if got != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got(c, pr.Packet)
			return true, nil
		}}
	}
	c = paho.NewClient(cfg)
	// The same Receive Maximum as mqtt-source's default: without it,
	// Mosquitto lets a client have only 20 messages unacknowledged.
	rm := uint16(65535)
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{ReceiveMaximum: &rm}})
	if err != nil {
		return nil, 0, fmt.Errorf("connecting to %s: %w", url, err)
	}
	window := 65535
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		window = int(*ca.Properties.ReceiveMaximum)
	}
	return c, window, nil
}

func subscribe(ctx context.Context, c *paho.Client, topic string) error {
	_, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	return err
}

// publish publishes values at QoS 1 from window goroutines, each waiting
// for its PUBACK before the next.
func publish(ctx context.Context, c *paho.Client, topic string, values [][]byte, window int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, window)
	for range min(window, len(values)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(values) {
					return
				}
				if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: values[i]}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// waitCount waits until count reaches n; it fails when count has not moved
// for 20s.
func waitCount(ctx context.Context, count func() int64, n int64) error {
	last, lastChange := count(), time.Now()
	for {
		c := count()
		if c >= n {
			return nil
		}
		if c != last {
			last, lastChange = c, time.Now()
		} else if time.Since(lastChange) > 20*time.Second {
			return fmt.Errorf("stalled at %d", c)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
