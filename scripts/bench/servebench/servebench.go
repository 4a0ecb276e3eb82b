// Package servebench is `bench serve`: it starts `culvert serve` and
// creates -n instances through its REST API, one after the other (half
// file-source instances following a file of -records orders each, half
// file-sink instances writing their topics to files), and reports:
//
//   - the time from POST /connectors to the instance's status RUNNING
//     (p50, p99, max over the -n creations);
//   - the supervisor's resident memory with every instance running;
//   - its CPU while idle (every record written, nothing arriving) over
//     -idle (target: under 5% of one CPU), and the children's together;
//   - how long SIGTERM takes to stop them all gracefully.
//
// Every sink's file is checked to hold its source's records. The floor
// column checks the supervisor's idle CPU; bench serve exits 1 after the
// table when it is missed.
//
// Usage:
//
//	bench serve [-bin bin] [-n 50] [-records 100] [-idle 10s] [-md]
package servebench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// Name is the subcommand; Summary is its line in `bench help`.
const (
	Name    = "serve"
	Summary = "culvert serve with 50 instances: POST to RUNNING (p50/p99), supervisor RSS and idle CPU (target < 5%)"
)

// maxIdleCPU is the floor of the supervisor's idle CPU, in percent of one
// CPU. Issue 15: "A supervisor runs at least 50 instances on this 2-core
// machine with its own CPU under 5% when idle" (README: "target < 5%";
// checked as at most 5). Its other figures have none.
const (
	maxIdleCPU = 5
	defaultN   = 50
)

// Main runs `bench serve` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built culvert, file-source and file-sink")
	n := fl.Int("n", defaultN, "instances (half sources, half sinks; the floor is set for the default)")
	records := fl.Int("records", 100, "orders each source publishes")
	idle := fl.Duration("idle", 10*time.Second, "how long idle CPU is measured")
	md := fl.Bool("md", false, "print the table as Markdown")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *n < 2 || *n%2 != 0 || *records <= 0 || *idle <= 0 {
		fmt.Fprintln(stderr, "bench serve: -n must be even and 2 or more, -records and -idle positive")
		return 2
	}
	return benchkit.MainFloors("bench serve", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *records, *idle, *md, stdout, stderr)
	})
}

func run(ctx context.Context, f *benchkit.Floors, bin string, n, records int, idle time.Duration, md bool, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench serve")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "culvert", "file-source", "file-sink"); err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "bench-serve", say)
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
	logPath := filepath.Join(work, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	sup := exec.CommandContext(ctx, filepath.Join(bin, "culvert"), "serve", "--listen", addr,
		"--state", filepath.Join(work, "state"), "--bin-dir", bin, "--bus", filepath.Join(work, "bus"))
	sup.Stdout, sup.Stderr = logf, logf
	if err := sup.Start(); err != nil {
		return err
	}
	defer func() {
		if sup.ProcessState == nil {
			sup.Process.Kill()
			sup.Wait()
		}
	}()
	base := "http://" + addr
	if err := waitUp(ctx, base); err != nil {
		return fmt.Errorf("culvert serve: %w: %s", err, benchkit.Tail(logPath, 5))
	}

	values := benchkit.Lines(benchkit.Orders(records, 1))
	var lat []time.Duration
	say("creating %d instances, each once the one before runs", n)
	for i := range n / 2 {
		in := filepath.Join(work, fmt.Sprintf("in-%d.jsonl", i))
		if err := os.WriteFile(in, values, 0o644); err != nil {
			return err
		}
		topic := fmt.Sprintf("orders-%d", i)
		for _, c := range []map[string]string{
			{"connector.class": "file-source", "path": in, "topic": topic, "follow": "true", "progress.interval": "0"},
			{"connector.class": "file-sink", "path": filepath.Join(work, fmt.Sprintf("out-%d.jsonl", i)), "topic": topic, "from": "beginning", "progress.interval": "0"},
		} {
			name := fmt.Sprintf("%s-%d", c["connector.class"], i)
			d, err := create(ctx, base, name, c)
			if err != nil {
				return err
			}
			lat = append(lat, d)
		}
	}
	say("waiting for every sink to write its %d records", records)
	for i := range n / 2 {
		path := filepath.Join(work, fmt.Sprintf("out-%d.jsonl", i))
		for {
			got, _ := benchkit.CountLines(path)
			if got >= int64(records) {
				break
			}
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return fmt.Errorf("out-%d.jsonl has %d of %d records: %w", i, got, records, err)
			}
		}
	}
	// Settle: the sinks' commits, the clients' connections.
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	kids, err := children(sup.Process.Pid)
	if err != nil {
		return err
	}
	if len(kids) != n {
		return fmt.Errorf("culvert serve has %d children, want %d", len(kids), n)
	}
	say("measuring idle CPU for %s", idle)
	supCPU0, kidsCPU0 := cpuTicks(sup.Process.Pid), sumTicks(kids)
	t0 := time.Now()
	if err := sleep(ctx, idle); err != nil {
		return err
	}
	el := time.Since(t0).Seconds()
	supCPU := float64(cpuTicks(sup.Process.Pid)-supCPU0) / clockTicks / el * 100
	kidsCPU := float64(sumTicks(kids)-kidsCPU0) / clockTicks / el * 100
	supRSS := benchkit.StatusKiB(sup.Process.Pid, "VmRSS")
	var kidsRSS int64
	for _, k := range kids {
		kidsRSS += benchkit.StatusKiB(k, "VmRSS")
	}
	// A status of every instance, as a console refreshing its list asks it.
	t1 := time.Now()
	var all map[string]any
	if err := getJSON(ctx, base+"/connectors?expand=status", &all); err != nil || len(all) != n {
		return fmt.Errorf("GET /connectors?expand=status: %d instances, %v", len(all), err)
	}
	listTook := time.Since(t1)

	say("stopping culvert serve (SIGTERM)")
	t2 := time.Now()
	sup.Process.Signal(syscall.SIGTERM)
	if err := sup.Wait(); err != nil {
		return fmt.Errorf("culvert serve after SIGTERM: %w: %s", err, benchkit.Tail(logPath, 5))
	}
	stopTook := time.Since(t2)
	for _, k := range kids {
		if syscall.Kill(k, 0) == nil && !zombie(k) {
			return fmt.Errorf("child %d still runs after culvert serve stopped", k)
		}
	}

	slices.Sort(lat)
	t := benchkit.NewTable("lrl", "measure", "value", "floor")
	t.Row("POST /connectors to RUNNING, p50", ms(pct(lat, 50)))
	t.Row("POST /connectors to RUNNING, p99", ms(pct(lat, 99)))
	t.Row("POST /connectors to RUNNING, max", ms(lat[len(lat)-1]))
	t.Row(fmt.Sprintf("supervisor RSS, %d instances running", n), fmt.Sprintf("%.1f MiB", float64(supRSS)/1024))
	t.Row("supervisor CPU, idle", fmt.Sprintf("%.2f%%", supCPU), f.AtMost(fmt.Sprintf("supervisor idle CPU, %d instances", n), supCPU, maxIdleCPU, "%"))
	t.Row(fmt.Sprintf("the %d children: RSS together", n), fmt.Sprintf("%.0f MiB", float64(kidsRSS)/1024))
	t.Row(fmt.Sprintf("the %d children: CPU together, idle", n), fmt.Sprintf("%.1f%%", kidsCPU))
	t.Row(fmt.Sprintf("GET /connectors?expand=status (%d)", n), ms(listTook))
	t.Row(fmt.Sprintf("SIGTERM to every child stopped (%d)", n), ms(stopTook))
	fmt.Fprintf(out, "culvert serve, %d instances (%d file-source following %d orders each, %d file-sink), embedded bus (%s)\n\n",
		n, n/2, records, n/2, benchkit.Machine())
	if md {
		t.Markdown(out)
	} else {
		t.Text(out)
	}
	f.SetFor(defaultN, n, "instances")
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// pct returns the p-th percentile of sorted ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	i := (len(ds)*p + 99) / 100
	return ds[max(i-1, 0)]
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func waitUp(ctx context.Context, base string) error {
	for {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// create posts one instance and returns how long it took to be RUNNING.
func create(ctx context.Context, base, name string, config map[string]string) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "config": config})
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/connectors", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("POST /connectors %s: %s: %s", name, resp.Status, b)
	}
	for {
		var st struct {
			Connector struct{ State, Trace string }
		}
		if err := getJSON(ctx, base+"/connectors/"+name+"/status", &st); err != nil {
			return 0, err
		}
		switch st.Connector.State {
		case "RUNNING":
			return time.Since(t0), nil
		case "FAILED":
			return 0, fmt.Errorf("%s FAILED: %s", name, st.Connector.Trace)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat's CPU times.
const clockTicks = 100

// statFields returns the fields of /proc/PID/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.Fields(rest)
}

// cpuTicks is a process's user and system CPU time in clock ticks.
func cpuTicks(pid int) int64 {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	s, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	return u + s
}

func sumTicks(pids []int) int64 {
	var t int64
	for _, p := range pids {
		t += cpuTicks(p)
	}
	return t
}

func zombie(pid int) bool {
	f := statFields(pid)
	return len(f) > 0 && f[0] == "Z"
}

// children returns the pids whose parent is pid.
func children(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err == nil {
		var out []int
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				out = append(out, p)
			}
		}
		// children lists those of one thread: the supervisor starts every
		// child from one thread, but look at all of them.
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, e := range ents {
			if e.Name() == strconv.Itoa(pid) {
				continue
			}
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, e.Name()))
			for _, f := range strings.Fields(string(b)) {
				if p, err := strconv.Atoi(f); err == nil && !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
		return out, nil
	}
	return nil, err
}
