// Package redis is `bench redis`: it measures redis-sink (--command xadd)
// and redis-source (--stream, a consumer group) next to raw go-redis doing
// the same commands, in one run, with the orders data set, on the local
// Redis:
//
//	raw xadd      go-redis, XADD of each order (field value) pipelined 5,000
//	              at a time, every reply waited for before the next pipeline
//	redis-sink    the real binary: the records from the embedded bus to the
//	              stream, --stop-at-end, each batch pipelined and committed
//	              after its replies
//	raw consume   go-redis, XREADGROUP of 1,000 entries at a time in a group,
//	              then XACK of them, until every entry is acknowledged
//	redis-source  the real binary, --value-field value: the stream into the
//	              embedded bus (durable writes), each batch acknowledged
//	              (XACK) once durable
//
// The raw clients run in a process of their own, as the connectors do: this
// program starts itself again as `bench redis -raw xadd|consume`. Every step
// is timed from outside, the same way for both: a writer from the first
// entry seen in the stream (XLEN) to the last, a reader from the first entry
// its group read (XINFO GROUPS entries-read) until every entry is read and
// acknowledged; so neither process start nor connection counts.
//
// The machine is shared and noisy: each step runs three times, interleaved
// (raw, connector, connector, raw, raw, connector), and the best rate of
// each is kept. The CPU
// columns are the user and system time of the connector's process and of
// the raw client's, per 1,000 records, in the run with the best rate.
//
// Every run uses fresh keys and deletes them.
//
// Usage:
//
//	bench redis [-bin bin] [-n 200000] [-url redis://127.0.0.1:6379]
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "redis"
	Summary = "redis-sink (XADD) and redis-source (XREADGROUP) next to raw go-redis doing the same, on the local Redis"
)

// minVsRaw is the floor of each connector's ratio to raw go-redis. Issue
// 13: redis connectors at least 0.8 times raw go-redis doing the same
// commands.
const minVsRaw = 0.8

// defaultN is the orders of a run, the size the floors are set for.
const defaultN = 200_000

// pipeline is the raw writer's XADDs per round trip; readCount the
// entries per XREADGROUP of the raw reader and of redis-source (--count).
const (
	pipeline  = 5000
	readCount = 1000
)

// Main runs `bench redis` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built redis-source and redis-sink")
	n := fl.Int("n", defaultN, "orders (the floors are set for the default)")
	url := fl.String("url", "redis://127.0.0.1:6379", "Redis server")
	raw := fl.String("raw", "", "internal: be the raw client process, xadd or consume")
	key := fl.String("key", "", "internal: the raw client's stream")
	group := fl.String("group", "", "internal: the raw consumer's group")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *raw != "" {
		return benchkit.Main("bench redis -raw "+*raw, stderr, func(ctx context.Context) error { return rawClient(ctx, *raw, *url, *key, *group, *n) })
	}
	return benchkit.MainFloors("bench redis", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *url, stdout, stderr)
	})
}

// result is one timed step.
type result struct {
	rate float64
	cpu  time.Duration // of the process doing the step
}

func connect(ctx context.Context, url string) (*goredis.Client, error) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	c := goredis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to %s: %w", url, err)
	}
	return c, nil
}

func run(ctx context.Context, f *benchkit.Floors, bin string, n int, url string, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench redis")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "redis-source", "redis-sink"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "bench-redis", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	c, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	ns := "culvert-bench:" + benchkit.ID()
	defer func() {
		keys, _ := c.Keys(context.Background(), ns+":*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	}()
	values := benchkit.Orders(n, 1)
	busDir := filepath.Join(work, "bus")
	if err := benchkit.LoadBus(ctx, busDir, "orders", values, 5000); err != nil {
		return err
	}
	// The stream the readers read, each in a group of its own.
	src := ns + ":src"
	if err := xadd(ctx, c, src, values); err != nil {
		return fmt.Errorf("filling %s: %w", src, err)
	}

	rawXadd := func(i int) (result, error) {
		key := fmt.Sprintf("%s:raw:%d", ns, i)
		cmd := exec.CommandContext(ctx, self, Name, "-raw", "xadd", "-url", url, "-key", key, "-n", strconv.Itoa(n))
		cmd.Stderr = stderr
		return timedWriter(ctx, c, key, n, cmd)
	}
	sink := func(i int) (result, error) {
		key := fmt.Sprintf("%s:sink:%d", ns, i)
		cmd := benchkit.Command(ctx, filepath.Join(work, fmt.Sprintf("sink-%d.log", i)), filepath.Join(bin, "redis-sink"), "--topic", "orders", "--bus", busDir,
			"--url", url, "--key", key, "--from", "beginning", "--stop-at-end", "--group", fmt.Sprintf("g%d", i))
		return timedWriter(ctx, c, key, n, cmd)
	}
	rawCons := func(i int) (result, error) {
		group := fmt.Sprintf("raw%d", i)
		cmd := exec.CommandContext(ctx, self, Name, "-raw", "consume", "-url", url, "-key", src, "-group", group, "-n", strconv.Itoa(n))
		cmd.Stderr = stderr
		return timedReader(ctx, c, src, group, n, cmd, false)
	}
	source := func(i int) (result, error) {
		group := fmt.Sprintf("src%d", i)
		cmd := benchkit.Command(ctx, filepath.Join(work, fmt.Sprintf("source-%d.log", i)), filepath.Join(bin, "redis-source"), "--topic", "orders",
			"--bus", filepath.Join(work, fmt.Sprintf("srcbus-%d", i)), "--url", url, "--stream", src, "--group", group, "--value-field", "value",
			"--count", strconv.Itoa(readCount))
		return timedReader(ctx, c, src, group, n, cmd, true)
	}
	var xaddRuns, sinkRuns, consRuns, srcRuns []result
	for i, s := range []struct {
		list *[]result
		what string
		f    func(i int) (result, error)
	}{
		{&xaddRuns, "raw xadd", rawXadd}, {&sinkRuns, "redis-sink", sink}, {&sinkRuns, "redis-sink", sink}, {&xaddRuns, "raw xadd", rawXadd},
		{&xaddRuns, "raw xadd", rawXadd}, {&sinkRuns, "redis-sink", sink},
		{&consRuns, "raw consume", rawCons}, {&srcRuns, "redis-source", source}, {&srcRuns, "redis-source", source}, {&consRuns, "raw consume", rawCons},
		{&consRuns, "raw consume", rawCons}, {&srcRuns, "redis-source", source},
	} {
		say("%s", s.what)
		r, err := s.f(i)
		if err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", s.what, err, work)
		}
		*s.list = append(*s.list, r)
	}

	version := "?"
	if info, err := c.InfoMap(ctx, "server").Result(); err == nil {
		version = info["Server"]["redis_version"]
	}
	fmt.Fprintf(out, "bench redis: %s orders, best of 3 runs each, %s, Redis %s at %s; machine: %s\n\n", benchkit.Int(float64(n)), benchkit.Date(), version, url, benchkit.CPUs())
	t := benchkit.NewTable("lrrrlrrl", "step", "records/s", "raw go-redis records/s", "ratio", "floor", "CPU per 1,000 records", "raw CPU per 1,000", "raw client does")
	for _, r := range []struct {
		step      string
		got, raw  result
		rawClient string
	}{
		{"redis-sink --command xadd (bus → stream)", best(sinkRuns), best(xaddRuns),
			fmt.Sprintf("XADD of each order, pipelined %s at a time, every reply awaited", benchkit.Int(pipeline))},
		{"redis-source --stream (stream → bus)", best(srcRuns), best(consRuns),
			fmt.Sprintf("XREADGROUP of %s entries, then XACK of them (the source also writes every record durably to the embedded bus before its XACK)", benchkit.Int(readCount))},
	} {
		t.Row(r.step, benchkit.Int(r.got.rate), benchkit.Int(r.raw.rate), benchkit.Ratio(r.got.rate, r.raw.rate),
			f.AtLeast(r.step+" vs raw go-redis", r.got.rate/r.raw.rate, minVsRaw, "×"),
			benchkit.PerK(r.got.cpu, n), benchkit.PerK(r.raw.cpu, n), r.rawClient)
	}
	t.Markdown(out)
	f.SetFor(defaultN, n, "orders")
	return nil
}

// best is the run with the best rate.
func best(rs []result) result { return benchkit.Best(rs, func(r result) float64 { return r.rate }) }

// xadd adds values to stream (field value), pipelined.
func xadd(ctx context.Context, c *goredis.Client, stream string, values [][]byte) error {
	for len(values) > 0 {
		k := min(len(values), pipeline)
		pipe := c.Pipeline()
		for _, v := range values[:k] {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"value", v}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		values = values[k:]
	}
	return nil
}

// timed polls count until it reaches n and returns the rate from the
// first time it was above 0 to the last; it fails when count has not moved
// for 20s or done says the process ended first.
func timed(ctx context.Context, count func() (int64, error), n int64, exited func() bool) (float64, error) {
	var first time.Time
	var base int64
	last, lastChange := int64(-1), time.Now()
	for {
		c, err := count()
		if err != nil {
			return 0, err
		}
		now := time.Now()
		if c > 0 && first.IsZero() {
			first, base = now, c
		}
		if c >= n {
			if c == base {
				return 0, fmt.Errorf("all %d counted at the first look: too few to time", n)
			}
			return float64(n-base) / now.Sub(first).Seconds(), nil
		}
		if c != last {
			last, lastChange = c, now
		} else if now.Sub(lastChange) > 20*time.Second {
			return 0, fmt.Errorf("stalled at %d of %d", c, n)
		}
		if exited() && c == last && now.Sub(lastChange) > time.Second {
			return 0, fmt.Errorf("the process ended at %d of %d", c, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// timedWriter runs cmd, a process that adds n entries to stream, timed by
// XLEN.
func timedWriter(ctx context.Context, c *goredis.Client, stream string, n int, cmd *exec.Cmd) (result, error) {
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	exited := func() bool {
		select {
		case werr = <-waited:
			waited <- werr
			return true
		default:
			return false
		}
	}
	rate, err := timed(ctx, func() (int64, error) { return c.XLen(ctx, stream).Result() }, int64(n), exited)
	if err != nil {
		cmd.Process.Kill()
		<-waited
		return result{}, err
	}
	if werr = <-waited; werr != nil {
		return result{}, werr
	}
	return result{rate, benchkit.ProcessCPU(cmd.ProcessState)}, nil
}

// timedReader runs cmd, a process that reads stream in group, timed by
// the group's entries-read until every entry is read and acknowledged; a
// connector (stop) runs until SIGTERM.
func timedReader(ctx context.Context, c *goredis.Client, stream, group string, n int, cmd *exec.Cmd, stop bool) (result, error) {
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	exited := func() bool {
		select {
		case err := <-waited:
			waited <- err
			return true
		default:
			return false
		}
	}
	done := func() (int64, error) {
		gs, err := c.XInfoGroups(ctx, stream).Result()
		if err != nil {
			return 0, err
		}
		for _, g := range gs {
			if g.Name == group {
				if g.EntriesRead >= int64(n) && g.Pending > 0 {
					return int64(n) - 1, nil // read, not all acknowledged yet
				}
				return g.EntriesRead, nil
			}
		}
		return 0, nil // the group is not made yet
	}
	rate, err := timed(ctx, done, int64(n), exited)
	if stop {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	werr := <-waited
	if err != nil {
		return result{}, err
	}
	if werr != nil {
		return result{}, werr
	}
	return result{rate, benchkit.ProcessCPU(cmd.ProcessState)}, nil
}

// rawClient is the raw client process: xadd adds n orders to key,
// pipelined; consume reads key in group until n entries are read and
// acknowledged.
func rawClient(ctx context.Context, mode, url, key, group string, n int) error {
	c, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	switch mode {
	case "xadd":
		return xadd(ctx, c, key, benchkit.Orders(n, 1))
	case "consume":
		if err := c.XGroupCreate(ctx, key, group, "0").Err(); err != nil {
			return err
		}
		for got := 0; got < n; {
			res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "raw", Streams: []string{key, ">"}, Count: readCount, Block: time.Second}).Result()
			if errors.Is(err, goredis.Nil) {
				continue
			}
			if err != nil {
				return err
			}
			ids := make([]string, len(res[0].Messages))
			for i, m := range res[0].Messages {
				ids[i] = m.ID
			}
			if err := c.XAck(ctx, key, group, ids...).Err(); err != nil {
				return err
			}
			got += len(ids)
		}
		return nil
	}
	return fmt.Errorf("unknown -raw %q", mode)
}
