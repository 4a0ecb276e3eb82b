// Package httpsink is `bench http-sink`: it measures http-sink against a local HTTP endpoint,
// next to a raw Go net/http client doing the same requests, in one run:
//
//	http-sink, batched      --batch-size -batch (NDJSON), --max-in-flight -inflight-batch
//	raw client, batched     the same NDJSON bodies POSTed by as many goroutines
//	http-sink, per record   one POST per record, --max-in-flight -inflight
//	raw client, per record  one POST per record by as many goroutines
//
// The endpoint is an in-process net/http server on 127.0.0.1 that counts
// the records it received (the lines of an NDJSON body, else one per
// request) and answers 204. The orders (scripts/internal/orders) are
// published to a fresh embedded bus first; http-sink runs as the real
// binary with --from beginning --stop-at-end and is timed from start to
// exit, so its figures include starting, reading the bus and committing.
// Every step checks that the endpoint got every record. The raw client runs
// in a process of its own, as http-sink does: this program started again as
// `bench http-sink -raw-client URL`. The floor column checks http-sink's
// rates; bench http-sink exits 1 after the table when one is missed.
//
// Usage:
//
//	bench http-sink [-bin bin] [-n 500000] [-n-single 100000]
package httpsink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

type config struct {
	bin                     string
	n, nSingle, batch       int
	inflight, inflightBatch int
	rawURL                  string // child mode: run the raw client against this URL
	rawWorkers              int
}

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "http-sink"
	Summary = "http-sink, batched and one request per record, next to a raw net/http client, against a local endpoint"
)

// The floors. Issue 4: "http-sink to a local endpoint: ≥ 100,000 records/s
// with batching, ≥ 10,000 requests/s without." The ratios to the raw
// client have none.
const (
	minBatchedRecords = 100_000
	minSingleRequests = 10_000
	defaultN          = 500_000
	defaultNSingle    = 100_000
)

// Main runs `bench http-sink` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	var c config
	fl.StringVar(&c.bin, "bin", "bin", "directory with the built http-sink")
	fl.IntVar(&c.n, "n", defaultN, "orders for the batched steps (the floors are set for the defaults)")
	fl.IntVar(&c.nSingle, "n-single", defaultNSingle, "orders for the one-request-per-record steps")
	fl.IntVar(&c.batch, "batch", 1000, "records per request when batching")
	fl.IntVar(&c.inflight, "inflight", 16, "requests in flight, one per record")
	fl.IntVar(&c.inflightBatch, "inflight-batch", 4, "requests in flight when batching")
	fl.StringVar(&c.rawURL, "raw-client", "", "internal: run the raw client against this URL, -n records in batches of -batch (0: one per request), with -workers goroutines, and print the seconds taken")
	fl.IntVar(&c.rawWorkers, "workers", 1, "internal: raw client goroutines")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if c.rawURL != "" {
		secs, err := rawClient(c)
		if err != nil {
			fmt.Fprintf(stderr, "bench http-sink: raw client: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, secs)
		return 0
	}
	return benchkit.MainFloors("bench http-sink", stdout, stderr, func(_ context.Context, f *benchkit.Floors) error { return bench(c, f, stdout, stderr) })
}

// counter is the endpoint: it counts records and requests.
type counter struct {
	records, requests atomic.Int64
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := int64(1)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-ndjson") {
		n = int64(bytes.Count(buf.Bytes(), []byte{'\n'}))
	}
	c.records.Add(n)
	c.requests.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (c *counter) reset() {
	c.records.Store(0)
	c.requests.Store(0)
}

type row struct {
	what              string
	records, requests int64
	secs              float64
	raw               *row
	floor             string // the floor cell, "" for none
}

func (r row) recRate() float64 { return float64(r.records) / r.secs }
func (r row) reqRate() float64 { return float64(r.requests) / r.secs }

func bench(c config, f *benchkit.Floors, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench http-sink")
	binDir, err := benchkit.Bins(c.bin, "http-sink")
	if err != nil {
		return err
	}
	bin := filepath.Join(binDir, "http-sink")
	work, done, err := benchkit.WorkDir("", "culvert-bench-http-sink-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	busDir := filepath.Join(work, "bus")

	values := benchkit.Orders(max(c.n, c.nSingle), 1)
	say("publishing %d orders to a fresh embedded bus", len(values))
	if err := benchkit.LoadBus(context.Background(), busDir, "batched", values[:c.n], 10_000); err != nil {
		return err
	}
	if err := benchkit.LoadBus(context.Background(), busDir, "single", values[:c.nSingle], 10_000); err != nil {
		return err
	}

	cnt := &counter{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: cnt, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	defer srv.Close()
	url := "http://" + l.Addr().String() + "/ingest"

	runSink := func(topic string, want int, args ...string) (row, error) {
		cnt.reset()
		args = append([]string{"--topic", topic, "--bus", busDir, "--endpoint", url, "--from", "beginning", "--stop-at-end",
			"--log-level", "warn", "--progress-interval", "0"}, args...)
		d, err := benchkit.Run(context.Background(), filepath.Join(work, "http-sink-"+topic+".log"), bin, args...)
		if err != nil {
			return row{}, fmt.Errorf("%s (arguments: %s)", err, strings.Join(args, " "))
		}
		secs := d.Seconds()
		if got := cnt.records.Load(); got != int64(want) {
			return row{}, fmt.Errorf("http-sink %s: the endpoint got %d records, want %d", strings.Join(args, " "), got, want)
		}
		return row{records: cnt.records.Load(), requests: cnt.requests.Load(), secs: secs}, nil
	}
	// The raw client runs in its own process, as http-sink does, so that
	// it does not share this process's scheduler with the endpoint.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	runRaw := func(n, batch, workers int) (row, error) {
		cnt.reset()
		cmd := exec.Command(self, Name, "-raw-client", url, "-n", fmt.Sprint(n), "-batch", fmt.Sprint(batch), "-workers", fmt.Sprint(workers))
		cmd.Stderr = stderr
		outb, err := cmd.Output()
		if err != nil {
			return row{}, fmt.Errorf("raw client: %w", err)
		}
		var secs float64
		if _, err := fmt.Sscan(string(outb), &secs); err != nil {
			return row{}, fmt.Errorf("raw client printed %q", outb)
		}
		if got := cnt.records.Load(); got != int64(n) {
			return row{}, fmt.Errorf("raw client: the endpoint got %d records, want %d", got, n)
		}
		return row{records: cnt.records.Load(), requests: cnt.requests.Load(), secs: secs}, nil
	}

	var rows []row
	// Batched.
	say("raw client, batched: %d records", c.n)
	rawBatch, err := runRaw(c.n, c.batch, c.inflightBatch)
	if err != nil {
		return err
	}
	rawBatch.what = fmt.Sprintf("raw net/http client, NDJSON batches of %d, %d in flight", c.batch, c.inflightBatch)
	say("http-sink, batched")
	sinkBatch, err := runSink("batched", c.n, "--batch-size", fmt.Sprint(c.batch), "--batch-format", "ndjson", "--max-in-flight", fmt.Sprint(c.inflightBatch))
	if err != nil {
		return err
	}
	sinkBatch.what = fmt.Sprintf("http-sink --batch-size %d --max-in-flight %d", c.batch, c.inflightBatch)
	sinkBatch.raw = &rawBatch
	sinkBatch.floor = f.AtLeast("http-sink batched", sinkBatch.recRate(), minBatchedRecords, " records/s")

	// The ceiling: the same runner and bus read with nothing to send.
	var ceiling []row
	if fileSink := filepath.Join(filepath.Dir(bin), "file-sink"); fileExists(fileSink) {
		say("file-sink to /dev/null, for the ceiling of the sink runner")
		d, err := benchkit.Run(context.Background(), filepath.Join(work, "file-sink.log"), fileSink,
			"--topic", "batched", "--bus", busDir, "--path", os.DevNull, "--from", "beginning", "--stop-at-end", "--log-level", "warn", "--progress-interval", "0")
		if err != nil {
			return err
		}
		ceiling = append(ceiling, row{what: "file-sink --path /dev/null (same bus and runner, nothing sent)", records: int64(c.n), secs: d.Seconds()})
	}

	// One request per record.
	say("raw client, one request per record: %d", c.nSingle)
	rawSingle, err := runRaw(c.nSingle, 0, c.inflight)
	if err != nil {
		return err
	}
	rawSingle.what = fmt.Sprintf("raw net/http client, one POST per record, %d in flight", c.inflight)
	say("http-sink, one request per record")
	sinkSingle, err := runSink("single", c.nSingle, "--max-in-flight", fmt.Sprint(c.inflight))
	if err != nil {
		return err
	}
	sinkSingle.what = fmt.Sprintf("http-sink, one POST per record, --max-in-flight %d", c.inflight)
	sinkSingle.raw = &rawSingle
	sinkSingle.floor = f.AtLeast("http-sink one POST per record", sinkSingle.reqRate(), minSingleRequests, " requests/s")
	rows = append(append([]row{sinkBatch, rawBatch}, ceiling...), sinkSingle, rawSingle)

	fmt.Fprintf(out, "http-sink to a local endpoint (in-process net/http server on 127.0.0.1; %s, %s)\n\n", benchkit.CPUs(), time.Now().UTC().Format("2006-01-02"))
	t := benchkit.NewTable("lrrrrrrl", "what", "records", "requests", "seconds", "records/s", "requests/s", "vs raw client", "floor")
	for _, r := range rows {
		ratio, floor := "-", "-"
		if r.raw != nil {
			ratio = benchkit.Ratio(r.recRate(), r.raw.recRate())
		}
		if r.floor != "" {
			floor = r.floor
		}
		t.Row(r.what, benchkit.Int(float64(r.records)), benchkit.Int(float64(r.requests)), fmt.Sprintf("%.2f", r.secs),
			benchkit.Int(r.recRate()), benchkit.Int(r.reqRate()), ratio, floor)
	}
	t.Markdown(out)
	f.SetFor(defaultN, c.n, "orders batched")
	f.SetFor(defaultNSingle, c.nSingle, "orders one per request")
	fmt.Fprintln(out, "\nhttp-sink is timed from process start to exit (--from beginning --stop-at-end): reading the embedded bus and committing included; the raw client (its own process, same orders) is timed from its first request to its last, with the orders already in memory.")
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// rawClient is what an HTTP sink does, written directly with net/http: it
// POSTs c.n orders (NDJSON batches of c.batch, or one per request when
// c.batch is 0) from c.rawWorkers goroutines and returns the seconds taken.
func rawClient(c config) (float64, error) {
	g := orders.NewGenerator(1)
	var bodies [][]byte
	contentType := "application/json"
	if c.batch == 0 {
		for range c.n {
			bodies = append(bodies, g.Next().AppendJSON(nil))
		}
	} else {
		contentType = "application/x-ndjson"
		for i := 0; i < c.n; i += c.batch {
			var b []byte
			for range min(c.batch, c.n-i) {
				b = append(g.Next().AppendJSON(b), '\n')
			}
			bodies = append(bodies, b)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.rawWorkers}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range c.rawWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				resp, err := client.Post(c.rawURL, contentType, bytes.NewReader(bodies[i]))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}
