package all

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/scripts/bench/busbench"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// TestMain makes this test binary `bench busbench` when asBench is set in
// its environment: all starts its own executable again with that
// subcommand, and under go test its own executable is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(asBench) != "" {
		if len(os.Args) < 2 || os.Args[1] != busbench.Name {
			fmt.Fprintf(os.Stderr, "started again with %q, want the subcommand %s first\n", os.Args[1:], busbench.Name)
			os.Exit(2)
		}
		os.Exit(busbench.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const asBench = "CULVERT_BENCH_TEST_AS_BENCH"

func TestLineCounterFollowsAGrowingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	c := &lineCounter{path: path}
	defer c.close()
	if n, err := c.update(); n != 0 || err != nil {
		t.Fatalf("missing file: %d, %v", n, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, step := range []struct {
		write string
		want  int64
	}{{"a\nb\n", 2}, {"partial", 2}, {" line\n\n", 4}, {"", 4}} {
		f.WriteString(step.write)
		if n, err := c.update(); n != step.want || err != nil {
			t.Fatalf("step %d: %d, %v; want %d", i, n, err, step.want)
		}
	}
	if n, err := benchkit.CountLines(path); n != 4 || err != nil {
		t.Fatalf("CountLines: %d, %v", n, err)
	}
	if _, err := benchkit.CountLines(path + ".missing"); err == nil {
		t.Fatal("CountLines of a missing file: no error")
	}
}

func TestParsePhases(t *testing.T) {
	out := "starting\n{\"phase\":\"publish\",\"records\":1000,\"seconds\":0.5}\n\n{\"other\":1}\n" +
		"{\"phase\":\"consume\",\"records\":1000,\"seconds\":0.25}\n"
	phases, err := parsePhases([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []phase{{"publish", 1000, 0.5}, {"consume", 1000, 0.25}}
	if fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", phases, want)
	}
	for _, bad := range []string{"", "no json\n", `{"phase":"publish","records":0,"seconds":1}`} {
		if _, err := parsePhases([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func testResults() []result {
	return []result{
		{step: "jq (filter+map)", records: 1000, seconds: 2, rssKiB: 2048, kind: kindJQ},
		{step: "bus publish (busbench)", records: 1000, seconds: 0.5, rssKiB: 10240, kind: kindBus},
		{step: "file-source -> bus (filter+map)", records: 1000, seconds: 0.1, rssKiB: 51200, vsJQ: true, kind: kindSource},
		{step: "end to end (source || sink)", records: 1000, seconds: 4, rssKiB: 1024, vsJQ: true, note: "RSS source 1.0 MB, sink 0.5 MB",
			kind: kindE2E, srcRSSKiB: 1024, sinkRSSKiB: 512},
	}
}

func TestTableText(t *testing.T) {
	var b bytes.Buffer
	var f benchkit.Floors
	buildTable(testResults(), 500, &f).Text(&b)
	want := `step                             records/s  seconds  peak RSS MB   vs jq  floor                                                                        notes
-------------------------------  ---------  -------  -----------  ------  ---------------------------------------------------------------------------  ------------------------------
jq (filter+map)                        500    2.000          2.0       -  -
bus publish (busbench)               2,000    0.500         10.0       -  ≥ 1,000,000 records/s MISSED; ≤ 150 MB ok
file-source -> bus (filter+map)     10,000    0.100         50.0  20.00x  ≥ 8× ok; ≤ 64 MB ok
end to end (source || sink)            250    4.000          1.0   0.50x  ≥ 400,000 records/s MISSED; ≥ 5× MISSED; source ≤ 64 MB ok; sink ≤ 48 MB ok  RSS source 1.0 MB, sink 0.5 MB
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	var missed []string
	for _, c := range f.Missed() {
		missed = append(missed, c.What)
	}
	if got := strings.Join(missed, "; "); got != "bus publish (busbench); end to end (source || sink); end to end (source || sink) vs jq" {
		t.Errorf("missed: %s", got)
	}
}

// Each floor of the memory and speed targets, at the bound and
// just beyond it.
func TestFloorsOfEachStep(t *testing.T) {
	for _, c := range []struct {
		r      result
		jqRate float64
		want   string
	}{
		{result{step: "s", records: 8000, seconds: 1, rssKiB: 64 << 10, kind: kindSource}, 1000, "≥ 8× ok; ≤ 64 MB ok"},
		{result{step: "s", records: 7999, seconds: 1, rssKiB: 64<<10 + 1, kind: kindSource}, 1000, "≥ 8× MISSED; ≤ 64 MB MISSED"},
		{result{step: "s", records: 8000, seconds: 1, rssKiB: 10 << 10, kind: kindSource}, 0, "≥ 8× not measured; ≤ 64 MB ok"},
		{result{step: "k", records: 10, seconds: 1, rssKiB: 48 << 10, kind: kindSink}, 1000, "≤ 48 MB ok"},
		{result{step: "k", records: 10, seconds: 1, rssKiB: 49 << 10, kind: kindSink}, 1000, "≤ 48 MB MISSED"},
		{result{step: "b", records: 1_000_000, seconds: 1, rssKiB: 151 << 10, kind: kindBus}, 1000, "≥ 1,000,000 records/s ok; ≤ 150 MB MISSED"},
		{result{step: "e", records: 400_000, seconds: 0.5, kind: kindE2E, srcRSSKiB: 65 << 10, sinkRSSKiB: 40 << 10}, 160_000, "≥ 400,000 records/s ok; ≥ 5× ok; source ≤ 64 MB MISSED; sink ≤ 48 MB ok"},
		{result{step: "jq", records: 10, seconds: 1, kind: kindJQ}, 10, "-"},
	} {
		var f benchkit.Floors
		if got := floors(&f, c.r, c.jqRate); got != c.want {
			t.Errorf("%+v at jq %v: %q, want %q", c.r, c.jqRate, got, c.want)
		}
	}
}

func TestTableMarkdownAndSkippedJQ(t *testing.T) {
	rs := testResults()
	rs[0] = result{step: "jq (filter+map)", records: 1000, note: "skipped: jq not in PATH"}
	var b bytes.Buffer
	var f benchkit.Floors
	buildTable(rs, rs[0].rate(), &f).Markdown(&b)
	want := `| step | records/s | seconds | peak RSS MB | vs jq | floor | notes |
|---|---:|---:|---:|---:|---|---|
| jq (filter+map) | - | - | - | - | - | skipped: jq not in PATH |
| bus publish (busbench) | 2,000 | 0.500 | 10.0 | - | ≥ 1,000,000 records/s MISSED; ≤ 150 MB ok |  |
| file-source -> bus (filter+map) | 10,000 | 0.100 | 50.0 | - | ≥ 8× not measured; ≤ 64 MB ok |  |
| end to end (source \|\| sink) | 250 | 4.000 | 1.0 | - | ≥ 400,000 records/s MISSED; ≥ 5× not measured; source ≤ 64 MB ok; sink ≤ 48 MB ok | RSS source 1.0 MB, sink 0.5 MB |
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"-n", "0"}, &stdout, &stderr); code != 2 {
		t.Fatalf("-n 0: exit %d", code)
	}
	if code := Main([]string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: bench all [flags]") {
		t.Fatalf("-h: exit %d, stderr %s", code, stderr.String())
	}
	code := Main([]string{"-bin", t.TempDir(), "-n", "10"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "file-source not found") {
		t.Fatalf("missing file-source: exit %d, stderr %s", code, stderr.String())
	}
}

// Fake binaries: busbench stands for this program started again as `bench
// busbench` (it ignores its arguments); file-source keeps amount > 50 into <bus>/orders (atomically),
// file-sink copies it to --path once it exists, then waits for SIGTERM unless
// --stop-at-end.
const (
	fakeBusbench = `#!/bin/sh
echo "some log line"
echo '{"phase":"publish","records":100,"seconds":0.01}'
echo '{"phase":"consume","records":100,"seconds":0.02}'
`
	fakeSource = `#!/bin/sh
while [ $# -gt 0 ]; do case $1 in --bus) bus=$2;; --path) path=$2;; esac; shift; done
mkdir -p "$bus"
awk -F'"amount":' '{ split($2, a, ","); if (a[1] + 0 > 50) print }' "$path" > "$bus/tmp" && mv "$bus/tmp" "$bus/orders"
echo "source done" >&2
`
	fakeSink = `#!/bin/sh
stop=no
while [ $# -gt 0 ]; do case $1 in --bus) bus=$2;; --path) path=$2;; --stop-at-end) stop=yes;; esac; shift; done
trap 'exit 0' TERM
while [ ! -f "$bus/orders" ]; do sleep 0.02; done
cat "$bus/orders" > "$path"
[ $stop = yes ] && exit 0
while :; do sleep 0.02; done
`
)

func writeFakes(t *testing.T, sink string) string {
	t.Helper()
	for _, tool := range []string{"sh", "awk", "sleep", "mv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not available", tool)
		}
	}
	bin := t.TempDir()
	self = func() (string, error) { return filepath.Join(bin, "busbench"), nil }
	t.Cleanup(func() { self = os.Executable })
	for name, script := range map[string]string{"busbench": fakeBusbench, "file-source": fakeSource, "file-sink": sink} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func TestBenchWithFakeBinaries(t *testing.T) {
	bin, work := writeFakes(t, fakeSink), t.TempDir()
	var stdout, stderr bytes.Buffer
	// The fake busbench's 10,000 records/s miss the bus's floor: the table
	// and the report are printed, then bench all exits 1.
	if code := Main([]string{"-bin", bin, "-n", "3000", "-work", work, "-md"}, &stdout, &stderr); code != 1 || strings.Contains(stderr.String(), "FAILED") {
		t.Fatalf("exit %d, want 1 (a missed floor)\nstderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	for _, want := range []string{"machine:", "bus publish (busbench)", "bus consume (busbench)",
		"file-source -> bus", "bus -> file-sink", "end to end", "RSS source", "| step |", "| floor |",
		"≥ 1,000,000 records/s MISSED",
		"\nbench all: floors: ", "  MISSED  bus publish (busbench): 10,000 records/s, floor ≥ 1,000,000 records/s\n",
		"(the floors are set for 1,000,000 orders; this run had 3,000)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, log := range []string{"file-source.log", "e2e-source.log", "e2e-sink.log"} {
		if _, err := os.Stat(filepath.Join(work, log)); err != nil {
			t.Error(err)
		}
	}
}

// The bus rows come from the real busbench, in a process of its own: this
// program started again as `bench busbench`.
func TestBenchRunsBusbenchInItsOwnProcess(t *testing.T) {
	bin, work := writeFakes(t, fakeSink), t.TempDir()
	self = os.Executable
	t.Setenv(asBench, "1")
	var stdout, stderr bytes.Buffer
	// 2,000 records may or may not reach the bus's floor of 1,000,000
	// records/s: the exit code says whether a floor was missed.
	code := Main([]string{"-bin", bin, "-n", "2000", "-work", work}, &stdout, &stderr)
	if missed := strings.Contains(stdout.String(), "  MISSED  "); code != map[bool]int{false: 0, true: 1}[missed] || strings.Contains(stderr.String(), "FAILED") {
		t.Fatalf("exit %d (missed a floor: %v)\nstdout:\n%s\nstderr:\n%s", code, missed, stdout.String(), stderr.String())
	}
	for _, want := range []string{"bus publish (busbench)", "bus consume (busbench)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if _, err := os.Stat(filepath.Join(work, "busbench", "bus.db")); err != nil {
		t.Errorf("busbench made no embedded bus: %v", err)
	}
}

func TestBenchFailsWhenSinkLosesRecords(t *testing.T) {
	lossy := strings.Replace(fakeSink, `cat "$bus/orders"`, `echo "dropping one" >&2; tail -n +2 "$bus/orders"`, 1)
	bin := writeFakes(t, lossy)
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"-bin", bin, "-n", "500", "-work", t.TempDir()}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "file-sink wrote") {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

func TestProcFailureShowsLogTail(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("sh not available")
	}
	_, _, err := runProc(context.Background(), t.TempDir(), "boom", nil, "/bin/sh", "-c", "echo first >&2; echo last words >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "last words") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v", err)
	}
}
