// Package httpsource is `bench http-source`: it measures http-source's webhook ingest with wrk
// on loopback, next to a raw Go net/http server in the same run:
//
//	raw net/http server           reads each body and answers 200: no bus (the ceiling)
//	http-source webhook           the real binary on a fresh embedded bus, default options
//	http-source webhook, linger 0 the same with --linger 0
//
// wrk POSTs one 1 KB JSON order (scripts/internal/orders, padded) over
// keep-alive connections for -duration, and reports requests/s and latency
// percentiles (--latency); the three steps run once for each number of
// connections of -connections (32, then 128). http-source answers 200
// only once a request's record is durable on the bus, so every 200 is a
// record on the topic: after each http-source step the source is stopped
// with SIGTERM and the topic is counted, and the step fails if it holds
// fewer records than wrk got 200s. The floor column checks the webhook with
// default options against the raw server of the same run and connections,
// and its requests/s; bench http-source exits 1 after the table when one
// is missed.
//
// Usage:
//
//	bench http-source [-bin bin] [-duration 10s] [-connections 32,128] [-threads 2]
package httpsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

type config struct {
	bin         string
	duration    time.Duration
	connections []int
	threads     int
}

// The floors of the webhook with default options, at every number of
// connections. Issue 16, 3: "at `wrk -t2 -c32` and at `-c128` (1 KB JSON,
// every 200 durable), http-source answers ≥ 0.8× the requests per second of
// a plain Go net/http handler that answers 200 without storing anything,
// measured in the same run". Issue 4: "Webhook ingest: ... 2xx only after
// durable on the embedded bus: ≥ 30,000 requests/s on this 2-core machine".
const (
	minVsRaw       = 0.8
	minRequestRate = 30_000
)

// result is what wrk measured.
type result struct {
	step          string
	connections   int
	floors        bool  // the webhook with default options: its figures have floors
	requests      int64 // completed
	non2xx        int64
	errors        string
	rps           float64
	p50, p99      string
	onTopic       int64 // -1: not applicable
	topicExpected int64
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "http-source"
	Summary = "http-source's webhook under wrk at 32 and 128 connections, next to a raw net/http server (needs wrk)"
)

// Main runs `bench http-source` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	var c config
	fl.StringVar(&c.bin, "bin", "bin", "directory with the built http-source")
	fl.DurationVar(&c.duration, "duration", 10*time.Second, "how long wrk runs per step")
	conns := fl.String("connections", "32,128", "wrk connections (requests in flight), comma-separated: every step runs at each")
	fl.IntVar(&c.threads, "threads", 2, "wrk threads")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	for _, f := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "bench http-source: -connections: %q is not a positive number\n", f)
			return 2
		}
		c.connections = append(c.connections, n)
	}
	if c.threads <= 0 || c.duration <= 0 || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "bench http-source: -threads and -duration must be > 0 and no arguments are accepted")
		return 2
	}
	return benchkit.MainFloors("bench http-source", stdout, stderr, func(_ context.Context, f *benchkit.Floors) error { return run(c, f, stdout, stderr) })
}

func run(c config, f *benchkit.Floors, stdout, stderr io.Writer) (err error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (apt-get install wrk)")
	}
	binDir, err := benchkit.Bins(c.bin, "http-source")
	if err != nil {
		return err
	}
	bin := filepath.Join(binDir, "http-source")
	work, done, err := benchkit.WorkDir("", "bench-http-source-", benchkit.Sayer(stderr, "bench http-source"))
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	script := filepath.Join(work, "post.lua")
	body := orderBody(1024)
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = %q\n", body)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		return err
	}
	var results []result
	for _, conns := range c.connections {
		fmt.Fprintf(stderr, "bench http-source: wrk -t%d -c%d -d%s, %d-byte JSON bodies\n", c.threads, conns, c.duration, len(body))
		raw, err := rawStep(c, conns, script)
		if err != nil {
			return err
		}
		results = append(results, raw)
		for _, step := range []struct {
			name   string
			args   []string
			floors bool
		}{
			{"http-source webhook", nil, true},
			{"http-source webhook, --linger 0", []string{"--linger", "0"}, false},
		} {
			r, err := sourceStep(c, conns, bin, work, script, step.name, step.args)
			if err != nil {
				return fmt.Errorf("%s, %d connections: %w", step.name, conns, err)
			}
			r.floors = step.floors
			results = append(results, r)
		}
	}
	fmt.Fprintf(stdout, "http-source webhook, wrk -t%d -d%s, %d-byte JSON bodies (%s, %s)\n\n", c.threads, c.duration, len(body), benchkit.CPUs(), benchkit.Date())
	printTable(stdout, stderr, results, f)
	return nil
}

// orderBody returns an order as JSON, padded with a note to size bytes.
func orderBody(size int) string {
	b := orders.NewGenerator(1).Next().AppendJSON(nil)
	b = b[:len(b)-1] // the closing brace
	b = append(b, `,"note":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return string(append(b, `"}`...))
}

// rawStep measures a plain net/http server that reads the body and answers 200.
func rawStep(c config, conns int, script string) (result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{\"records\":1}\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	r, err := runWrk(c, conns, script, "http://"+ln.Addr().String()+"/")
	r.step, r.connections, r.onTopic = "raw net/http server (no bus)", conns, -1
	return r, err
}

// sourceStep runs http-source's webhook on a fresh embedded bus, wrk
// against it, then stops it and counts the topic.
func sourceStep(c config, conns int, bin, work, script, name string, extra []string) (result, error) {
	busDir := filepath.Join(work, fmt.Sprintf("bus-%d", time.Now().UnixNano()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(work, "http-source.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	args := append([]string{"--topic", "bench", "--bus", busDir, "--listen", addr, "--log-format", "json", "--progress-interval", "0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) (result, error) {
		cmd.Process.Kill()
		<-exited
		return result{}, fmt.Errorf("%w\n%s", err, benchkit.Tail(logPath, 20))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			return fail(errors.New("http-source did not listen within 20s"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, err := runWrk(c, conns, script, "http://"+addr+"/")
	if err != nil {
		return fail(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return result{}, fmt.Errorf("http-source exited with %v\n%s", err, benchkit.Tail(logPath, 20))
		}
	case <-time.After(60 * time.Second):
		return fail(errors.New("http-source did not stop within 60s of SIGTERM"))
	}
	r.step, r.connections = name, conns
	r.topicExpected = r.requests - r.non2xx
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if r.onTopic, err = benchkit.CountTopic(ctx, busDir, "bench"); err != nil {
		return result{}, err
	}
	if r.onTopic < r.topicExpected {
		return result{}, fmt.Errorf("LOST RECORDS: wrk got %d responses 200 but the topic holds %d records", r.topicExpected, r.onTopic)
	}
	return r, nil
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSocket   = regexp.MustCompile(`Socket errors:.*`)
	reP50      = regexp.MustCompile(`(?m)^\s+50%\s+(\S+)`)
	reP99      = regexp.MustCompile(`(?m)^\s+99%\s+(\S+)`)
)

func runWrk(c config, conns int, script, url string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.duration+60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(c.threads), "-c"+strconv.Itoa(conns),
		"-d"+c.duration.String(), "--latency", "-s", script, url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	var r result
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return result{}, fmt.Errorf("wrk printed no Requests/sec:\n%s", s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reRequests.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	r.errors = reSocket.FindString(s)
	if m := reP50.FindStringSubmatch(s); m != nil {
		r.p50 = m[1]
	}
	if m := reP99.FindStringSubmatch(s); m != nil {
		r.p99 = m[1]
	}
	return r, nil
}

// printTable prints the table to w, each webhook with default options
// checked against its floors in f, and wrk's socket errors to stderr. A
// ratio is to the raw server at the same number of connections.
func printTable(w, stderr io.Writer, results []result, f *benchkit.Floors) {
	raw := map[int]float64{}
	for _, r := range results {
		if r.onTopic < 0 {
			raw[r.connections] = r.rps
		}
	}
	t := benchkit.NewTable("lrrrrrrrl", "step", "connections", "requests/s", "p50", "p99", "non-2xx", "records on topic", "vs raw", "floor")
	for _, r := range results {
		topic := "–"
		if r.onTopic >= 0 {
			topic = fmt.Sprintf("%d (of %d answered 200)", r.onTopic, r.topicExpected)
		}
		ratio, floor := "–", "–"
		vsRaw := math.NaN()
		if r.onTopic >= 0 && raw[r.connections] > 0 {
			vsRaw = r.rps / raw[r.connections]
			ratio = fmt.Sprintf("%.2fx", vsRaw)
		}
		if r.floors {
			what := fmt.Sprintf("%s, %d connections", r.step, r.connections)
			floor = f.AtLeast(what+", vs raw", vsRaw, minVsRaw, "×") + "; " + f.AtLeast(what, r.rps, minRequestRate, " requests/s")
		}
		// Whole requests/s, truncated.
		t.Row(r.step, fmt.Sprint(r.connections), benchkit.Int(float64(int64(r.rps))), r.p50, r.p99, fmt.Sprint(r.non2xx), topic, ratio, floor)
		if r.errors != "" {
			fmt.Fprintf(stderr, "%s, %d connections: %s\n", r.step, r.connections, r.errors)
		}
	}
	t.Markdown(w)
}
