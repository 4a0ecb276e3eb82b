// Package commitbench is `bench commit`: what the embedded bus's commits
// cost a streaming source at a moderate rate (issue 16, item 4: at most
// 25% of its CPU).
//
// http-source serves its webhook on a fresh embedded bus with a CPU
// profile (CULVERT_CPUPROFILE). This process POSTs one order per request,
// paced at -rate requests/s for -duration over -conns connections, each
// waiting for its 200 (so records arrive one by one, as from devices). Then
// http-source is stopped and the topic counted (every 200 must be a
// record). The figures:
//
//	CPU per 1,000 records   the source process's user+system time over the records it stored
//	bus commits             the share of the profile's CPU samples under embedded.(*Bus).Publish
//	                        (statement, commit and fsync; floor: at most 25%)
//
// Usage:
//
//	bench commit [-bin bin] [-rate 20000] [-duration 10s] [-conns 256]
package commitbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/pprof/profile"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "commit"
	Summary = "embedded bus commits' share of a streaming source's CPU: http-source at 20,000 requests/s arriving one by one, profiled (target <= 25%)"
)

// publishFunc is the function whose samples count as bus commits.
const publishFunc = "common/bus/embedded.(*Bus).Publish"

type config struct {
	bin      string
	rate     int
	duration time.Duration
	conns    int
}

// Main runs `bench commit` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	var c config
	fl.StringVar(&c.bin, "bin", "bin", "directory with the built http-source")
	fl.IntVar(&c.rate, "rate", 20000, "requests per second to send (one record each)")
	fl.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send")
	fl.IntVar(&c.conns, "conns", 256, "connections sending at once (each waits for its answer: enough to keep -rate up while a group of records is fsynced)")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if c.rate <= 0 || c.duration <= 0 || c.conns <= 0 || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "bench commit: -rate, -duration and -conns must be > 0 and no arguments are accepted")
		return 2
	}
	return benchkit.MainFloors("bench commit", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, c, f, stdout, stderr)
	})
}

func run(ctx context.Context, c config, f *benchkit.Floors, stdout, stderr io.Writer) (err error) {
	binDir, err := benchkit.Bins(c.bin, "http-source")
	if err != nil {
		return err
	}
	say := benchkit.Sayer(stderr, "bench commit")
	work, done, err := benchkit.WorkDir("", "bench-commit-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	busDir, prof, logPath := filepath.Join(work, "bus"), filepath.Join(work, "cpu.prof"), filepath.Join(work, "http-source.log")
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		prof = filepath.Join(dir, "http-source-commit.prof") // kept for go tool pprof
	}
	cmd := benchkit.Command(ctx, logPath, filepath.Join(binDir, "http-source"),
		"--topic", "bench", "--bus", busDir, "--listen", addr, "--log-level", "warn", "--progress-interval", "0")
	cmd.Env = append(os.Environ(), "CULVERT_CPUPROFILE="+prof)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) error {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w\n%s", err, benchkit.Tail(logPath, 20))
	}
	if err := waitListening(addr, 20*time.Second); err != nil {
		return fail(err)
	}
	say("POSTing %d requests/s for %s over %d connections", c.rate, c.duration, c.conns)
	sent, ok, elapsed, err := send(ctx, "http://"+addr+"/", c)
	if err != nil {
		return fail(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("http-source exited with %v\n%s", err, benchkit.Tail(logPath, 20))
		}
	case <-time.After(60 * time.Second):
		return fail(errors.New("http-source did not stop within 60s of SIGTERM"))
	}
	stored, err := benchkit.CountTopic(ctx, busDir, "bench")
	if err != nil {
		return err
	}
	if stored < ok {
		return fmt.Errorf("LOST RECORDS: %d requests answered 200 but the topic holds %d records", ok, stored)
	}
	cpu := benchkit.ProcessCPU(cmd.ProcessState)
	share, samples, err := publishShare(prof)
	if err != nil {
		return err
	}
	rate := float64(ok) / elapsed.Seconds()
	fmt.Fprintf(stdout, "embedded bus commits in a streaming source: http-source, %d requests/s asked for %s over %d connections, one order each (%s, %s)\n\n",
		c.rate, c.duration, c.conns, benchkit.CPUs(), benchkit.Date())
	t := benchkit.NewTable("lrl", "figure", "value", "floor")
	t.Row("requests sent / answered 200", fmt.Sprintf("%d / %d", sent, ok), "")
	t.Row("records/s stored", benchkit.Int(rate), f.AtLeast("rate kept up with (of -rate)", rate/float64(c.rate), 0.95, "×"))
	t.Row("source CPU per 1,000 records", benchkit.PerK(cpu, int(stored)), "")
	t.Row("source CPU, share of one core", fmt.Sprintf("%.1f%%", 100*cpu.Seconds()/elapsed.Seconds()), "")
	t.Row(fmt.Sprintf("bus commits (%d profile samples)", samples), fmt.Sprintf("%.1f%%", 100*share),
		f.AtMost("bus commits' share of the source's CPU", 100*share, 25, "%"))
	t.Text(stdout)
	fmt.Fprintln(stdout)
	return nil
}

func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("http-source did not listen on %s within %s", addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send POSTs orders at c.rate requests/s for c.duration over c.conns
// connections; it returns the requests sent, those answered 200, and the
// time it took.
func send(ctx context.Context, url string, c config) (sent, ok int64, elapsed time.Duration, err error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.conns, MaxConnsPerHost: c.conns}, Timeout: 30 * time.Second}
	total := int64(c.rate) * int64(c.duration) / int64(time.Second)
	bodies := benchkit.Orders(1000, 1)
	var next atomic.Int64
	var okN atomic.Int64
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	interval := time.Second / time.Duration(c.rate)
	var wg sync.WaitGroup
	for w := 0; w < c.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				// Request i leaves at its time in the schedule, not before.
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i%int64(len(bodies))]))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						okN.Add(1)
						continue
					}
					err = fmt.Errorf("answered %s", resp.Status)
				}
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed = time.Since(start)
	if firstErr != nil {
		return total, okN.Load(), elapsed, fmt.Errorf("a request failed: %w", firstErr)
	}
	return total, okN.Load(), elapsed, ctx.Err()
}

// publishShare reads a CPU profile and returns the share of its CPU time
// in samples with publishFunc on their stack, and the sample count.
func publishShare(path string) (float64, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("the CPU profile: %w", err)
	}
	p, err := profile.Parse(bytes.NewReader(b))
	if err != nil {
		return 0, 0, fmt.Errorf("the CPU profile: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, 0, errors.New("the CPU profile has no cpu samples")
	}
	var all, in int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		all += v
		if onStack(s, publishFunc) {
			in += v
		}
	}
	if all == 0 {
		return 0, 0, errors.New("the CPU profile is empty")
	}
	return float64(in) / float64(all), len(p.Sample), nil
}

func onStack(s *profile.Sample, fn string) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && strings.HasSuffix(l.Function.Name, fn) {
				return true
			}
		}
	}
	return false
}
