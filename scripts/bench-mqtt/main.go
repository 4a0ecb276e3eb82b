// Command bench-mqtt measures mqtt-source and mqtt-sink next to a raw paho
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
//	              acknowledged as it arrives; timed from the first publish of
//	              a pipelined QoS 1 publisher to the last message received
//	mqtt-source   the real binary, the same publisher; timed until the last
//	              record is durable on the embedded bus (each message is
//	              acknowledged to the broker only after that)
//
// The raw publisher and mqtt-sink are timed the same way, by the subscriber that checks
// that every message arrived: from its first message to its last (so the
// sink's process start, ~0.1s, and the raw client's connection, made
// beforehand, are both left out).
//
// Every run uses fresh topics and client ids.
//
// Usage:
//
//	bench-mqtt [-bin bin] [-n 100000] [-url tcp://127.0.0.1:1883]
//
// With BENCH_PROFILE_DIR set, each connector run writes a CPU profile
// there (CULVERT_CPUPROFILE), named after its log: sink-g0.prof, srcbus0.prof.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

type row struct {
	step      string
	rate, raw float64
	note      string
}

func main() {
	bin := flag.String("bin", "bin", "directory of the built mqtt-source and mqtt-sink")
	n := flag.Int("n", 100000, "orders")
	url := flag.String("url", "tcp://127.0.0.1:1883", "MQTT broker (tcp://host:port)")
	flag.Parse()
	if err := run(*bin, *n, *url, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-mqtt:", err)
		os.Exit(1)
	}
}

func say(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench-mqtt: "+format+"\n", a...) }

func run(bin string, n int, url string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, _ = filepath.Abs(bin)
	for _, b := range []string{"mqtt-source", "mqtt-sink"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%v (make build first)", err)
		}
	}
	work, err := os.MkdirTemp("", "bench-mqtt")
	if err != nil {
		return err
	}
	var id [4]byte
	rand.Read(id[:])
	ns := "culvert-bench/" + hex.EncodeToString(id[:])

	values := make([][]byte, 0, n)
	g := orders.NewGenerator(1)
	for range n {
		values = append(values, g.Next().AppendJSON(nil))
	}
	pub, ca, err := connect(ctx, url, ns+"-pub", nil)
	if err != nil {
		return err
	}
	defer pub.Disconnect(&paho.Disconnect{})
	window := 65535
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		window = int(*ca.Properties.ReceiveMaximum)
	}
	busDir := filepath.Join(work, "bus")
	if err := loadBus(ctx, busDir, "orders", values); err != nil {
		return err
	}
	// This machine is shared and noisy: each step runs `rounds` times,
	// interleaved, and the best rate of each is kept.
	var best [4]float64
	for r := range rounds {
		steps := []func() (float64, error){
			func() (float64, error) {
				return rawPublish(ctx, pub, url, fmt.Sprintf("%s/%d/raw", ns, r), values, window)
			},
			func() (float64, error) {
				return sinkRun(ctx, bin, work, busDir, fmt.Sprintf("g%d", r), url, fmt.Sprintf("%s/%d/sink", ns, r), len(values))
			},
			func() (float64, error) {
				return rawConsume(ctx, pub, url, fmt.Sprintf("%s/%d/in-raw", ns, r), values, window)
			},
			func() (float64, error) {
				return sourceRun(ctx, bin, filepath.Join(work, fmt.Sprintf("srcbus%d", r)), pub, url, fmt.Sprintf("%s/%d/in-src", ns, r), values, window)
			},
		}
		for i, step := range steps {
			say("round %d: %s", r+1, []string{"raw publish", "mqtt-sink", "raw consume", "mqtt-source"}[i])
			rate, err := step()
			if err != nil {
				return fmt.Errorf("%w (logs in %s)", err, work)
			}
			best[i] = max(best[i], rate)
		}
	}
	os.RemoveAll(work) // kept on failure, for the logs
	rows := []row{
		{"mqtt-sink (bus → broker), QoS 1", best[1], best[0],
			fmt.Sprintf("raw: publishes with up to %d awaiting PUBACK (the broker's receive maximum), every PUBACK awaited. Both timed by a subscriber, first message to last", window)},
		{"mqtt-source (broker → bus), QoS 1", best[3], best[2],
			"raw: QoS 1 subscription, receive maximum 65535 (as the source), manual ack of each message on arrival; the source acks only after its durable bus write. Both timed from the first publish of the same pipelined publisher"},
	}

	fmt.Fprintf(out, "bench-mqtt: %d orders, best of %d rounds, %s, broker %s; machine: %d CPUs, %s\n\n", n, rounds, time.Now().UTC().Format("2006-01-02 15:04 UTC"), url, runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(out, "| step | records/s | raw paho records/s | ratio | raw client does |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---|")
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %s | %s | %.2f× | %s |\n", r.step, fmtInt(r.rate), fmtInt(r.raw), r.rate/r.raw, r.note)
	}
	return nil
}

const rounds = 2

// counter subscribes a fresh client to topic and counts what arrives.
func counter(ctx context.Context, url, topic string, manual bool) (*paho.Client, *atomic.Int64, error) {
	c, got, _, err := timedCounter(ctx, url, topic, manual)
	return c, got, err
}

// arrivals are when a counter got its first and its latest message.
type arrivals struct{ first, last atomic.Int64 }

// rate is the messages per second between the first and the last arrival.
func (a *arrivals) rate(n int) float64 {
	return float64(n-1) / time.Duration(a.last.Load()-a.first.Load()).Seconds()
}

func timedCounter(ctx context.Context, url, topic string, manual bool) (*paho.Client, *atomic.Int64, *arrivals, error) {
	var got atomic.Int64
	var at arrivals
	var c *paho.Client
	c, _, err := dial(ctx, url, strings.ReplaceAll(topic, "/", "-"), manual, func(p *paho.Publish) {
		if manual {
			c.Ack(p)
		}
		now := time.Now().UnixNano()
		if got.Add(1) == 1 {
			at.first.Store(now)
		}
		at.last.Store(now)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if err := subscribe(ctx, c, topic); err != nil {
		return nil, nil, nil, err
	}
	return c, &got, &at, nil
}

// rawPublish publishes values with paho; a subscriber must get them all.
// Timed as the sink is: from the subscriber's first message to its last.
func rawPublish(ctx context.Context, pub *paho.Client, url, topic string, values [][]byte, window int) (float64, error) {
	check, got, at, err := timedCounter(ctx, url, topic, false)
	if err != nil {
		return 0, err
	}
	defer check.Disconnect(&paho.Disconnect{})
	if err := publish(ctx, pub, topic, values, window); err != nil {
		return 0, fmt.Errorf("raw publish: %w", err)
	}
	if err := waitCount(ctx, got.Load, int64(len(values))); err != nil {
		return 0, fmt.Errorf("a subscriber got %d of the raw client's %d messages: %w", got.Load(), len(values), err)
	}
	return at.rate(len(values)), nil
}

// sinkRun runs mqtt-sink over the n records of the bus; a subscriber must
// get them all, and the sink must exit cleanly (offsets committed). Timed
// as the raw publisher is: from the subscriber's first message to its last
// (the process start, a fixed cost of ~0.1s, is left out of both).
func sinkRun(ctx context.Context, bin, work, busDir, group, url, topic string, n int) (float64, error) {
	check, got, at, err := timedCounter(ctx, url, topic, false)
	if err != nil {
		return 0, err
	}
	defer check.Disconnect(&paho.Disconnect{})
	if err := command(ctx, filepath.Join(work, "sink-"+group+".log"), filepath.Join(bin, "mqtt-sink"), "--topic", "orders", "--bus", busDir, "--url", url,
		"--mqtt-topic", topic, "--qos", "1", "--from", "beginning", "--stop-at-end", "--group", group).Run(); err != nil {
		return 0, fmt.Errorf("mqtt-sink: %w", err)
	}
	if err := waitCount(ctx, got.Load, int64(n)); err != nil {
		return 0, fmt.Errorf("a subscriber got %d of the sink's %d messages: %w", got.Load(), n, err)
	}
	return at.rate(n), nil
}

// rawConsume times a paho subscriber with manual acks receiving values.
func rawConsume(ctx context.Context, pub *paho.Client, url, topic string, values [][]byte, window int) (float64, error) {
	raw, got, err := counter(ctx, url, topic, true)
	if err != nil {
		return 0, err
	}
	defer raw.Disconnect(&paho.Disconnect{})
	start := time.Now()
	if err := publish(ctx, pub, topic, values, window); err != nil {
		return 0, err
	}
	if err := waitCount(ctx, got.Load, int64(len(values))); err != nil {
		return 0, fmt.Errorf("raw consume got %d of %d: %w", got.Load(), len(values), err)
	}
	return float64(len(values)) / time.Since(start).Seconds(), nil
}

// sourceRun times mqtt-source until every value is durable on its bus.
func sourceRun(ctx context.Context, bin, srcBus string, pub *paho.Client, url, topic string, values [][]byte, window int) (float64, error) {
	n := len(values)
	cmd := command(ctx, srcBus+".log", filepath.Join(bin, "mqtt-source"), "--topic", "orders", "--bus", srcBus, "--url", url,
		"--mqtt-topic", topic, "--client-id", strings.ReplaceAll(topic, "/", "-")+"-src", "--clean-session", "--session-expiry", "0s")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Process.Kill()
	b, err := bus.Open(ctx, srcBus)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	sub, err := b.Subscribe(ctx, "orders", "bench-counter", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	onBus := func() int64 {
		l, err := sub.Lag(ctx)
		if err != nil {
			return -1
		}
		return l
	}
	// Subscribed once a warm-up message is on the bus.
	warm := [][]byte{[]byte(`{"warmup":true}`)}
	for onBus() < 1 {
		if err := publish(ctx, pub, topic, warm, 1); err != nil {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("mqtt-source never subscribed")
		case <-time.After(50 * time.Millisecond):
		}
	}
	base := onBus()
	start := time.Now()
	if err := publish(ctx, pub, topic, values, window); err != nil {
		return 0, err
	}
	if err := waitCount(ctx, func() int64 { return onBus() - base }, int64(n)); err != nil {
		return 0, fmt.Errorf("mqtt-source: %d of %d records on the bus: %w", onBus()-base, n, err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("mqtt-source: %w", err)
	}
	return rate, nil
}

// connect connects a paho client with a clean session; got, if not nil,
// receives each message (acknowledged by paho after got returns).
func connect(ctx context.Context, url, id string, got func(*paho.Publish)) (*paho.Client, *paho.Connack, error) {
	return dial(ctx, url, id, false, got)
}

func dial(ctx context.Context, url, id string, manual bool, got func(*paho.Publish)) (*paho.Client, *paho.Connack, error) {
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s: %w", url, err)
	}
	cfg := paho.ClientConfig{Conn: nc, EnableManualAcknowledgment: manual, SendAcksInterval: 5 * time.Millisecond}
	if got != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got(pr.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	// The same Receive Maximum as mqtt-source's default: without it,
	// Mosquitto lets a client have only 20 messages unacknowledged.
	rm := uint16(65535)
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{ReceiveMaximum: &rm}})
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s: %w", url, err)
	}
	return c, ca, nil
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

// command runs a connector binary with its log in logPath.
func command(ctx context.Context, logPath, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, append(args, "--log-format", "json", "--progress-interval", "0")...)
	if f, err := os.Create(logPath); err == nil {
		cmd.Stderr = f
	}
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		// A CPU profile of each connector run, named after its log.
		cmd.Env = append(os.Environ(), "CULVERT_CPUPROFILE="+filepath.Join(dir, strings.TrimSuffix(filepath.Base(logPath), ".log")+".prof"))
	}
	return cmd
}

// loadBus publishes values to topic on the embedded bus in dir (not timed).
func loadBus(ctx context.Context, dir, topic string, values [][]byte) error {
	b, err := bus.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer b.Close()
	for i := 0; i < len(values); i += 10000 {
		chunk := values[i:min(i+10000, len(values))]
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
