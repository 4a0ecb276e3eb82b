// Package httpsource is `bench http-source`: it measures http-source's webhook ingest with wrk
// on loopback, next to a raw Go net/http server in the same run:
//
//	raw net/http server           reads each body and answers 200: no bus (the ceiling)
//	http-source webhook           the real binary on a fresh embedded bus, default options
//	http-source webhook, linger 0 the same with --linger 0
//
// wrk POSTs one 1 KB JSON order (scripts/internal/orders, padded) over
// -connections keep-alive connections for -duration, and reports
// requests/s and latency percentiles (--latency). http-source answers 200
// only once a request's record is durable on the bus, so every 200 is a
// record on the topic: after each http-source step the source is stopped
// with SIGTERM and the topic is counted, and the step fails if it holds
// fewer records than wrk got 200s.
//
// Usage:
//
//	bench http-source [-bin bin] [-duration 10s] [-connections 128] [-threads 2]
package httpsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

type config struct {
	bin         string
	duration    time.Duration
	connections int
	threads     int
}

// result is what wrk measured.
type result struct {
	step          string
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
	Summary = "http-source's webhook under wrk, next to a raw net/http server (needs wrk)"
)

// Main runs `bench http-source` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	var c config
	fl.StringVar(&c.bin, "bin", "bin", "directory with the built http-source")
	fl.DurationVar(&c.duration, "duration", 10*time.Second, "how long wrk runs per step")
	fl.IntVar(&c.connections, "connections", 128, "wrk connections (requests in flight)")
	fl.IntVar(&c.threads, "threads", 2, "wrk threads")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	return benchkit.Main("bench http-source", stderr, func(context.Context) error { return run(c, stdout, stderr) })
}

func run(c config, stdout, stderr io.Writer) (err error) {
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
	fmt.Fprintf(stderr, "bench http-source: wrk -t%d -c%d -d%s, %d-byte JSON bodies\n", c.threads, c.connections, c.duration, len(body))

	var results []result
	raw, err := rawStep(c, script)
	if err != nil {
		return err
	}
	results = append(results, raw)
	for _, step := range []struct {
		name string
		args []string
	}{
		{"http-source webhook", nil},
		{"http-source webhook, --linger 0", []string{"--linger", "0"}},
	} {
		r, err := sourceStep(c, bin, work, script, step.name, step.args)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		results = append(results, r)
	}
	printTable(stdout, stderr, results)
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
func rawStep(c config, script string) (result, error) {
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
	r, err := runWrk(c, script, "http://"+ln.Addr().String()+"/")
	r.step, r.onTopic = "raw net/http server (no bus)", -1
	return r, err
}

// sourceStep runs http-source's webhook on a fresh embedded bus, wrk
// against it, then stops it and counts the topic.
func sourceStep(c config, bin, work, script, name string, extra []string) (result, error) {
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
	r, err := runWrk(c, script, "http://"+addr+"/")
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
	r.step = name
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

func runWrk(c config, script, url string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.duration+60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(c.threads), "-c"+strconv.Itoa(c.connections),
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

// printTable prints the table to w and wrk's socket errors to stderr.
func printTable(w, stderr io.Writer, results []result) {
	raw := results[0].rps
	t := benchkit.NewTable("lrrrrrr", "step", "requests/s", "p50", "p99", "non-2xx", "records on topic", "vs raw")
	for _, r := range results {
		topic := "–"
		if r.onTopic >= 0 {
			topic = fmt.Sprintf("%d (of %d answered 200)", r.onTopic, r.topicExpected)
		}
		ratio := "–"
		if r.onTopic >= 0 && raw > 0 {
			ratio = fmt.Sprintf("%.2fx", r.rps/raw)
		}
		// Whole requests/s, truncated.
		t.Row(r.step, benchkit.Int(float64(int64(r.rps))), r.p50, r.p99, fmt.Sprint(r.non2xx), topic, ratio)
		if r.errors != "" {
			fmt.Fprintf(stderr, "%s: %s\n", r.step, r.errors)
		}
	}
	t.Markdown(w)
}
