// Package bus is `bench bus`: it measures the distributed bus backends next
// to their raw clients, in one run, with the orders data set (`make bench`
// runs it):
//
//	publish   bus.Publish in batches of -batch records, as the source runner
//	          writes, next to the raw client with the same guarantee (each
//	          batch acknowledged as stored before the next): nats.go JetStream
//	          async publish waiting for every ack, go-redis XADD pipelined,
//	          amqp091-go publisher confirms to a stream queue, franz-go
//	          ProduceSync with acks=all
//	consume   Subscribe, then Poll and Commit after every poll, next to the raw
//	          client doing the same: a JetStream pull consumer (fetch, ack, the
//	          last ack waiting for the server), XREADGROUP + XACK, a stream
//	          queue consumer with manual acks, a franz-go group with a
//	          synchronous commit per poll
//	pipeline  the real file-source (with the filter and map of scripts/bench)
//	          into the backend, then file-sink --stop-at-end out of it
//
// Raw and bus runs alternate (raw, bus, bus, raw, twice, a quarter of the
// records each) so that the shared machine's changing load weighs on both
// alike; the notes give this process's CPU time per record of each, which
// shows what the bus code itself costs whatever the server does.
//
// Backends: nats://127.0.0.1:4222, redis://127.0.0.1:6379,
// amqp://guest:guest@127.0.0.1:5672/ and kafka:// on the in-process cluster
// of scripts/kfake. A backend that is not reachable, or whose scheme no bus
// backend registers, gets a "not available" row and the run goes on; a step
// that fails gets a FAILED row, and bench bus exits 1 after the table. The
// floor column checks publish and consume against the raw client (>= 0.8x,
// not measured for a backend not available); bench bus exits 1 after the
// table when one is missed.
//
// Every run uses fresh names (a NATS namespace, a Redis key prefix, a
// RabbitMQ queue prefix, unique topics and groups) and removes what it
// created (RabbitMQ's queues are listed with rabbitmqctl).
//
// Usage:
//
//	bench bus [-bin bin] [-n 1000000] [-only nats,redis] [-cpuprofile dir] [-raw-time]
package bus

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "bus"
	Summary = "the nats, redis, amqp and kafka (kfake) bus backends next to their raw clients, and file-source/file-sink through each"
)

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 1_000_000

type config struct {
	bin, work, only, profile string
	n, batch                 int
	seed                     uint64
	stepTimeout              time.Duration
	// rawTime makes the raw clients store the record time as the bus does.
	rawTime bool
	stderr  io.Writer
}

// Main runs `bench bus` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	c := config{stderr: stderr}
	fl.StringVar(&c.bin, "bin", "bin", "directory with the built file-source and file-sink")
	fl.IntVar(&c.n, "n", defaultN, "orders per backend (a backend may use fewer, see backend.n); the floors are set for the default")
	fl.IntVar(&c.batch, "batch", 5000, "records per publish and most records per poll")
	fl.Uint64Var(&c.seed, "seed", 1, "seed of the generated orders")
	fl.StringVar(&c.work, "work", "", "scratch directory, kept (default: a temp dir, removed at the end)")
	fl.StringVar(&c.only, "only", "", "comma-separated backends to run (nats, redis, amqp, kafka); default all")
	fl.StringVar(&c.profile, "cpuprofile", "", "directory to write a CPU profile of each bus and raw step to")
	fl.BoolVar(&c.rawTime, "raw-time", true, "the raw NATS, Redis and RabbitMQ clients store each record's time as the bus does (a header, a field), so that both store the same data; -raw-time=false stores the value alone, to tell the cost of that encoding from the rest")
	fl.DurationVar(&c.stepTimeout, "step-timeout", 3*time.Minute, "longest one step may take")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if fl.NArg() > 0 || c.n <= 0 || c.batch <= 0 {
		fmt.Fprintln(stderr, "bench bus: -n and -batch must be > 0 and no arguments are accepted")
		return 2
	}
	return benchkit.MainFloors("bench bus", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error { return bench(ctx, c, f, stdout, stderr) })
}

// backend is one distributed bus and its raw client.
type backend struct {
	name string
	// setup makes the backend ready for one run: it returns the bus URL
	// (with this run's namespace), the raw client and a cleanup, or an error
	// when the backend is not available.
	setup func(ctx context.Context, c *config, id string) (url string, raw rawClient, cleanup func(), err error)
	// n caps the records for a backend too slow for the whole data set.
	n int
}

// rawClient does with the backend's own client what the bus does.
type rawClient interface {
	// publish stores values in topic in batches, each batch acknowledged
	// as stored before the next.
	publish(ctx context.Context, topic string, values [][]byte, batch int) error
	// consume reads n records of topic as a new consumer group from the
	// beginning, acknowledging (committing) every fetched batch.
	consume(ctx context.Context, topic, group string, n, batch int) error
	close()
}

// row is one line of the table.
type row struct {
	backend, step string
	records       int
	rate, raw     float64 // records/s; 0 when not measured
	note          string
}

func bench(ctx context.Context, c config, f *benchkit.Floors, stdout, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench bus")
	if c.bin, err = benchkit.Bins(c.bin, "file-source", "file-sink"); err != nil {
		return err
	}
	var done func(error)
	if c.work, done, err = benchkit.WorkDir(c.work, "culvert-bench-bus-", say); err != nil {
		return err
	}
	defer func() { done(err) }()
	if c.profile != "" {
		if err := os.MkdirAll(c.profile, 0o755); err != nil {
			return err
		}
	}

	say("generating %d orders (seed %d) in %s", c.n, c.seed, c.work)
	ordersPath := filepath.Join(c.work, "orders.jsonl")
	values, k, err := generate(ordersPath, c.n, c.seed)
	if err != nil {
		return err
	}

	backends := []backend{
		{name: "nats", setup: setupNATS, n: 300_000},
		{name: "redis", setup: setupRedis},
		{name: "amqp", setup: setupAMQP, n: 100_000},
		{name: "kafka", setup: setupKafka},
	}
	var rows []row
	for _, be := range backends {
		if c.only != "" && !slices.Contains(strings.Split(c.only, ","), be.name) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rows = append(rows, runBackend(ctx, &c, be, values, ordersPath, k, say)...)
	}
	fmt.Fprintf(stdout, "\n%s\norders: %d (passing the filter: %d); publish batches of %d records, consume polls of up to %d, commit after every poll\n\n",
		benchkit.Machine(), c.n, k, c.batch, c.batch)
	markdown(stdout, rows, f)
	f.SetFor(defaultN, c.n, "orders")
	failed := 0
	for _, r := range rows {
		if strings.HasPrefix(r.note, "FAILED") {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d steps failed (see the table; logs in %s)", failed, c.work)
	}
	return nil
}

func runBackend(ctx context.Context, c *config, be backend, values [][]byte, ordersPath string, k int, say func(string, ...any)) []row {
	id := newID()
	na := func(why string) []row {
		say("%s: not available: %s", be.name, why)
		return []row{{backend: be.name, step: "-", note: "not available: " + oneLine(why)}}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	url, raw, cleanup, err := be.setup(sctx, c, id)
	cancel()
	if err != nil {
		return na(err.Error())
	}
	defer raw.close()
	defer cleanup() // before raw.close: it uses the raw client
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	b, err := bus.Open(octx, url)
	cancel()
	if err != nil {
		return na("opening the bus: " + err.Error())
	}
	defer b.Close()

	n := len(values)
	if be.n > 0 && be.n < n {
		n = be.n
	}
	vals := values[:n]
	var rows []row
	fail := func(step string, err error) {
		say("%s: %s failed: %v", be.name, step, err)
		rows = append(rows, row{backend: be.name, step: step, note: "FAILED: " + oneLine(err.Error())})
	}
	cpu := map[string]time.Duration{} // this process's CPU time per step
	timed := func(step string, records int, f func(ctx context.Context) error) (float64, error) {
		ctx, cancel := context.WithTimeout(ctx, c.stepTimeout)
		defer cancel()
		if c.profile != "" {
			pf, err := os.Create(filepath.Join(c.profile, fmt.Sprintf("%s-%s-%d.pprof", be.name, strings.ReplaceAll(step, " ", "-"), time.Now().UnixNano())))
			if err == nil {
				pprof.StartCPUProfile(pf)
				defer func() { pprof.StopCPUProfile(); pf.Close() }()
			}
		}
		t0, cpu0 := time.Now(), benchkit.CPUTime()
		if err := f(ctx); err != nil {
			return 0, err
		}
		secs := time.Since(t0).Seconds()
		cpu[step] += benchkit.CPUTime() - cpu0
		say("%s: %s: %d records in %.2fs", be.name, step, records, secs)
		return secs, nil
	}

	// Raw and bus steps alternate as raw, bus, bus, raw, raw, bus, bus,
	// raw, each with a quarter of the records on a topic of its own, so that
	// a drift of the shared machine's load weighs on both alike.
	const pieces = 4
	piece := func(i int) [][]byte { return vals[i*n/pieces : (i+1)*n/pieces] }
	topic := func(kind string, i int) string { return fmt.Sprintf("bench-%s%d-%s", kind, i, id) }
	group := "g-" + id
	publishers := map[string]func(ctx context.Context, topic string, vals [][]byte) error{
		"raw": func(ctx context.Context, t string, v [][]byte) error { return raw.publish(ctx, t, v, c.batch) },
		"bus": func(ctx context.Context, t string, v [][]byte) error { return busPublish(ctx, b, t, v, c.batch) },
	}
	consumers := map[string]func(ctx context.Context, topic string, n int) error{
		"raw": func(ctx context.Context, t string, n int) error { return raw.consume(ctx, t, group, n, c.batch) },
		"bus": func(ctx context.Context, t string, n int) error {
			return busConsume(ctx, b, t, group, n, c.batch, c.debugf)
		},
	}
	type run struct {
		kind  string
		piece int
	}
	var order []run
	for i := 0; i < pieces; i += 2 {
		order = append(order, run{"raw", i}, run{"bus", i}, run{"bus", i + 1}, run{"raw", i + 1})
	}
	secs := map[string]float64{}
	failed := map[string]bool{}
	for _, step := range []string{"publish", "consume"} {
		for _, o := range order {
			name := o.kind + " " + step
			if failed[name] || failed[o.kind+" publish"] {
				continue
			}
			v := piece(o.piece)
			t := topic(o.kind, o.piece)
			d, err := timed(name, len(v), func(ctx context.Context) error {
				if step == "publish" {
					return publishers[o.kind](ctx, t, v)
				}
				return consumers[o.kind](ctx, t, len(v))
			})
			if err != nil {
				fail(name, err)
				failed[name] = true
			}
			secs[name] += d
		}
		rate := func(kind string) float64 {
			if failed[kind+" "+step] || failed[kind+" publish"] {
				return 0
			}
			return float64(n) / secs[kind+" "+step]
		}
		if r := rate("bus"); r > 0 {
			perRec := func(kind string) float64 { return float64(cpu[kind+" "+step].Microseconds()) / float64(n) }
			note := fmt.Sprintf("client CPU µs/record: bus %.1f, raw %.1f", perRec("bus"), perRec("raw"))
			rows = append(rows, row{backend: be.name, step: step, records: n, rate: r, raw: rate("raw"), note: note})
		}
	}

	// The orders pipeline with the real binaries.
	path := ordersPath
	if n < len(values) {
		path = filepath.Join(c.work, fmt.Sprintf("orders-%d.jsonl", n))
		if err := os.WriteFile(path, benchkit.Lines(vals), 0o644); err != nil {
			fail("file-source", err)
			return rows
		}
		k = countPassing(vals)
	}
	pipeTopic := "bench-pipe-" + id
	logf := filepath.Join(c.work, be.name+"-file-source.log")
	srcSecs, err := runBin(ctx, c, logf, "file-source", "--bus", url, "--topic", pipeTopic, "--path", path,
		"--filter", benchkit.Filter, "--map", benchkit.Map, "--log-level", "warn")
	if err != nil {
		fail("file-source", err)
		return rows
	}
	rows = append(rows, row{backend: be.name, step: "file-source → bus (filter+map)", records: n, rate: float64(n) / srcSecs})
	out := filepath.Join(c.work, be.name+"-sink.out")
	logf = filepath.Join(c.work, be.name+"-file-sink.log")
	sinkSecs, err := runBin(ctx, c, logf, "file-sink", "--bus", url, "--topic", pipeTopic, "--group", "g-"+id,
		"--path", out, "--from", "beginning", "--stop-at-end", "--log-level", "warn")
	if err != nil {
		fail("bus → file-sink", err)
		return rows
	}
	if got, err := benchkit.CountLines(out); err != nil || got != int64(k) {
		fail("bus → file-sink", fmt.Errorf("wrote %d lines, want %d (%v)", got, k, err))
		return rows
	}
	os.Remove(out)
	rows = append(rows, row{backend: be.name, step: "bus → file-sink --stop-at-end", records: k, rate: float64(k) / sinkSecs})
	rows = append(rows, row{backend: be.name, step: "pipeline, source then sink", records: n, rate: float64(n) / (srcSecs + sinkSecs)})
	return rows
}

// busPublish publishes values to topic in batches, as the source runner does.
func busPublish(ctx context.Context, b bus.Bus, topic string, values [][]byte, batch int) error {
	now := time.Now()
	recs := make([]record.Record, 0, batch)
	for i := 0; i < len(values); i += batch {
		recs = recs[:0]
		for _, v := range values[i:min(i+batch, len(values))] {
			recs = append(recs, record.Record{Value: v, Time: now})
		}
		if err := bus.Publish(ctx, b, topic, recs...); err != nil {
			return err
		}
	}
	return nil
}

// busConsume reads n records of topic as a new group, committing after every poll.
// debugf, if BENCH_BUS_DEBUG is set, gets where the time went.
func busConsume(ctx context.Context, b bus.Bus, topic, group string, n, batch int, debugf func(string, ...any)) error {
	t0 := time.Now()
	sub, err := b.Subscribe(ctx, topic, group, bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: batch})
	if err != nil {
		return err
	}
	inSubscribe := time.Since(t0)
	polls := 0
	var inPoll, inCommit time.Duration
	defer func() {
		t0 := time.Now()
		sub.Close()
		debugf("bus consume of %d records: %v in Subscribe, %d polls, %v in Poll, %v in Commit, %v in Close", n, inSubscribe.Round(time.Millisecond),
			polls, inPoll.Round(time.Millisecond), inCommit.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}()
	for got := 0; got < n; {
		polls++
		t0 := time.Now()
		msgs, err := sub.Poll(ctx)
		if err != nil {
			return fmt.Errorf("after %d records: %w", got, err)
		}
		t1 := time.Now()
		if err := sub.Commit(ctx, msgs); err != nil {
			return err
		}
		inPoll, inCommit = inPoll+t1.Sub(t0), inCommit+time.Since(t1)
		got += len(msgs)
	}
	return nil
}

// runBin runs a binary of c.bin to its end, at most c.stepTimeout, and
// returns its wall time in seconds.
func runBin(ctx context.Context, c *config, logPath, name string, args ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.stepTimeout)
	defer cancel()
	d, err := benchkit.Run(ctx, logPath, filepath.Join(c.bin, name), args...)
	return d.Seconds(), err
}

// generate writes n orders to path and returns them as values, with how
// many pass the filter.
func generate(path string, n int, seed uint64) ([][]byte, int, error) {
	k, err := benchkit.WriteOrders(path, n, seed)
	if err != nil {
		return nil, 0, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	values := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(values) != n {
		return nil, 0, fmt.Errorf("generated %d lines, want %d", len(values), n)
	}
	return values, int(k), nil
}

// countPassing counts the values whose amount passes the filter.
func countPassing(values [][]byte) int {
	k := 0
	for _, v := range values {
		var amount float64
		if i := bytes.Index(v, []byte(`"amount":`)); i >= 0 {
			fmt.Sscanf(string(v[i+len(`"amount":`):]), "%g", &amount)
		}
		if amount > 50 {
			k++
		}
	}
	return k
}

// debugf prints to stderr when BENCH_BUS_DEBUG is set.
func (c *config) debugf(format string, a ...any) {
	if os.Getenv("BENCH_BUS_DEBUG") != "" {
		fmt.Fprintf(c.stderr, "bench bus: debug: "+format+"\n", a...)
	}
}

func newID() string {
	return time.Now().UTC().Format("150405") + benchkit.ID()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
