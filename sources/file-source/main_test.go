package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "file-source", cli.DirectionSource)
	for _, p := range []string{"path", "delimiter", "follow", "poll_interval", "read_size"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if !slices.Contains(md.Schema.Required, "path") {
		t.Errorf("required = %v, want path among them", md.Schema.Required)
	}
	if d := md.Schema.Properties["batch_size"]["default"]; d != float64(5000) {
		t.Errorf("batch_size default %v", d)
	}
	if d := md.Schema.Properties["delimiter"]["default"]; d != `\n` {
		t.Errorf("delimiter default %q", d)
	}
}

// runApp runs the connector's command line in the test process.
func runApp(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return connectortest.Run(t, ctx, app(), args...)
}

// mustRun runs the connector and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return connectortest.MustRun(t, app(), args...)
}

// readTopic returns every record of topic on the embedded bus in dir.
func readTopic(t *testing.T, dir, topic string) []record.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err := b.Subscribe(ctx, topic, fmt.Sprintf("test-reader-%d", time.Now().UnixNano()), bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	end, err := sub.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []record.Record
	for int64(len(out)) < end {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			t.Fatalf("reading %q: %v after %d of %d records", topic, err, len(out), end)
		}
		for _, m := range msgs {
			if m.Offset != int64(len(out)) {
				t.Fatalf("topic %q: record at offset %d after %d records", topic, m.Offset, len(out))
			}
			out = append(out, m.Record)
		}
	}
	return out
}

func values(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func header(t *testing.T, r record.Record, key string) string {
	t.Helper()
	v, ok := r.Header(key)
	if !ok {
		t.Fatalf("record %q has no header %s (headers %v)", r.Value, key, r.Headers)
	}
	return string(v)
}

func TestRunPublishesAndResumes(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"n\":1}\n{\"n\":2}\n  {\"n\": 3}  \n")
	args := []string{"--topic", "orders", "--bus", busDir, "--path", path}
	mustRun(t, args...)
	equalStrings(t, "first run", values(readTopic(t, busDir, "orders")), []string{`{"n":1}`, `{"n":2}`, `  {"n": 3}  `})

	// A second run over the same file publishes nothing again.
	mustRun(t, args...)
	if n := len(readTopic(t, busDir, "orders")); n != 3 {
		t.Fatalf("rerun over an unchanged file: topic has %d records, want 3", n)
	}

	// Appended lines are published by the next run, and only they.
	appendFile(t, path, "{\"n\":4}\n{\"n\":5}\n")
	mustRun(t, args...)
	equalStrings(t, "after append", values(readTopic(t, busDir, "orders")),
		[]string{`{"n":1}`, `{"n":2}`, `  {"n": 3}  `, `{"n":4}`, `{"n":5}`})

	// The position is kept per topic: another topic reads the file from the start.
	mustRun(t, "--topic", "other", "--bus", busDir, "--path", path)
	if n := len(readTopic(t, busDir, "other")); n != 5 {
		t.Fatalf("another topic got %d records, want 5", n)
	}
}

func TestRunTransformsInCommandLineOrder(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":0}\n{\"a\":5}\n")
	mustRun(t, "--topic", "mapfirst", "--bus", busDir, "--path", path, "--map", ".a = 1", "--filter", ".a == 1")
	equalStrings(t, "--map then --filter", values(readTopic(t, busDir, "mapfirst")), []string{`{"a":1}`, `{"a":1}`})

	mustRun(t, "--topic", "filterfirst", "--bus", busDir, "--path", path, "--filter", ".a == 1", "--map", ".a = 1")
	if got := readTopic(t, busDir, "filterfirst"); len(got) != 0 {
		t.Fatalf("--filter then --map: got %q, want nothing", values(got))
	}

	mustRun(t, "--topic", "chain", "--bus", busDir, "--path", path,
		"--map", "{x: .a}", "--arraymap", "[.x, .x + 1][]", "--filter", ". > 0", "--filter-map", "{v: .}")
	equalStrings(t, "chain", values(readTopic(t, busDir, "chain")), []string{`{"v":1}`, `{"v":5}`, `{"v":6}`})
}

func TestRunDeadLetters(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\nnot json\n{\"a\":2}\n")
	stderr := mustRun(t, "--topic", "orders", "--bus", busDir, "--path", path, "--map", ".b = 2")
	equalStrings(t, "topic", values(readTopic(t, busDir, "orders")), []string{`{"a":1,"b":2}`, `{"a":2,"b":2}`})
	dead := readTopic(t, busDir, "orders.dlq")
	equalStrings(t, "dead letters", values(dead), []string{"not json"})
	d := dead[0]
	if e := header(t, d, "culvert.error"); !strings.Contains(e, "not JSON") {
		t.Errorf("culvert.error %q", e)
	}
	for k, want := range map[string]string{
		"culvert.stage":     "transform",
		"culvert.offset":    "8",
		"culvert.connector": "file-source",
		"culvert.topic":     "orders",
		"culvert.step":      "decode",
	} {
		if got := header(t, d, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(stderr, "dead-letter") {
		t.Errorf("no warning about the dead letter in the log:\n%s", stderr)
	}

	// A failing jq step is a dead letter too, on the topic --dlq-topic names.
	writeFile(t, filepath.Join(dir, "in2.jsonl"), "{\"a\":1}\n{\"a\":\"x\"}\n")
	mustRun(t, "--topic", "t2", "--bus", busDir, "--path", filepath.Join(dir, "in2.jsonl"), "--map", ".a = .a + 1", "--dlq-topic", "bad")
	equalStrings(t, "t2", values(readTopic(t, busDir, "t2")), []string{`{"a":2}`})
	dead = readTopic(t, busDir, "bad")
	equalStrings(t, "--dlq-topic", values(dead), []string{`{"a":"x"}`})
	if got := header(t, dead[0], "culvert.step"); got != "--map .a = .a + 1" {
		t.Errorf("culvert.step %q", got)
	}
	if got := header(t, dead[0], "culvert.offset"); got != "8" {
		t.Errorf("culvert.offset %q", got)
	}
}

func TestRunOnErrorFail(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\nnot json\n{\"a\":2}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, stderr := runApp(t, ctx, "--topic", "orders", "--bus", busDir, "--path", path, "--map", ".", "--on-error", "fail")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "offset 8") || !strings.Contains(stderr, "not JSON") {
		t.Errorf("the error does not say which record failed and why:\n%s", stderr)
	}
	for _, topic := range []string{"orders", "orders.dlq"} {
		if got := readTopic(t, busDir, topic); len(got) != 0 {
			t.Fatalf("--on-error fail published %q to %s", values(got), topic)
		}
	}
	// No position was saved: a run without the transform publishes every line.
	mustRun(t, "--topic", "orders", "--bus", busDir, "--path", path)
	equalStrings(t, "after the failure", values(readTopic(t, busDir, "orders")), []string{`{"a":1}`, "not json", `{"a":2}`})
}

func TestRunOnErrorSkip(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\nnot json\n{\"a\":2}\n")
	stderr := mustRun(t, "--topic", "orders", "--bus", busDir, "--path", path, "--filter", "true", "--on-error", "skip")
	equalStrings(t, "topic", values(readTopic(t, busDir, "orders")), []string{`{"a":1}`, `{"a":2}`})
	if got := readTopic(t, busDir, "orders.dlq"); len(got) != 0 {
		t.Fatalf("--on-error skip sent %q to the dead-letter topic", values(got))
	}
	if !strings.Contains(stderr, "skipped") {
		t.Errorf("the skipped record is not counted in the log:\n%s", stderr)
	}
}

func TestRunWithoutTransformPassesAnything(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.txt")
	writeFile(t, path, "plain text\n{not json\n\t tabs and spaces \nünïcödé\n")
	mustRun(t, "--topic", "logs", "--bus", busDir, "--path", path)
	equalStrings(t, "values", values(readTopic(t, busDir, "logs")), []string{"plain text", "{not json", "\t tabs and spaces ", "ünïcödé"})
	if got := readTopic(t, busDir, "logs.dlq"); len(got) != 0 {
		t.Fatalf("dead letters without a transform: %q", values(got))
	}
}

func TestRunCustomDelimiter(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in")
	writeFile(t, path, "a b\x00c\nd\x00\x00e")
	mustRun(t, "--topic", "nul", "--bus", busDir, "--path", path, "--delimiter", `\0`)
	equalStrings(t, "values", values(readTopic(t, busDir, "nul")), []string{"a b", "c\nd", "e"})
}

func TestRunStdin(t *testing.T) {
	w := withStdin(t)
	go func() {
		w.WriteString("{\"a\":1}\n{\"a\":2}\n{\"a\":3}")
		w.Close()
	}()
	busDir := filepath.Join(t.TempDir(), "bus")
	mustRun(t, "--topic", "in", "--bus", busDir, "--path", "-", "--filter", ".a != 2")
	equalStrings(t, "values", values(readTopic(t, busDir, "in")), []string{`{"a":1}`, `{"a":3}`})
}

func TestRunEnvironment(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n")
	t.Setenv("CULVERT_TOPIC", "fromenv")
	t.Setenv("CULVERT_BUS", busDir)
	t.Setenv("CULVERT_PATH", path)
	t.Setenv("CULVERT_FILTER", ".a >= 2")
	mustRun(t)
	equalStrings(t, "from the environment", values(readTopic(t, busDir, "fromenv")), []string{`{"a":2}`, `{"a":3}`})

	// A flag beats the environment.
	mustRun(t, "--topic", "fromflag", "--filter", ".a == 1")
	equalStrings(t, "flags over the environment", values(readTopic(t, busDir, "fromflag")), []string{`{"a":1}`})

	t.Setenv("CULVERT_BATCH_SIZE", "zero")
	code, _, stderr := runApp(t, context.Background(), "--topic", "x")
	if code != 2 || !strings.Contains(stderr, "CULVERT_BATCH_SIZE") {
		t.Fatalf("bad environment value: exit %d, stderr %q; want 2 naming CULVERT_BATCH_SIZE", code, stderr)
	}
}

func TestRunBadUsage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in")
	writeFile(t, path, "x\n")
	base := []string{"--topic", "t", "--bus", filepath.Join(dir, "bus")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--path", path, "--batch-size", "0"}, "--batch-size"},
		{[]string{"--path", path, "--batch-size", "many"}, "--batch-size"},
		{[]string{"--path", path, "--from", "middle"}, "--from"},
		{[]string{"--path", path, "--filter", ".a >"}, "--filter"},
		{[]string{"--path", path, "--map", "}"}, "--map"},
		{[]string{}, "--path"},
		{[]string{"--path", "-", "--follow"}, "--follow"},
		{[]string{"--path", path, "--delimiter", `\q`}, "--delimiter"},
		{[]string{"--path", path, "--delimiter", ""}, "--delimiter"},
		{[]string{"--path", path, "--read-size", "10"}, "--read-size"},
		{[]string{"--path", path, "--poll-interval", "soon"}, "--poll-interval"},
		{[]string{"--path", path, "--follow", "--poll-interval", "0s"}, "--poll-interval"},
		{[]string{"--path", path, "--linger", "-"}, "--linger"},
		{[]string{"--path", path, "--on-error", "ignore"}, "--on-error"},
		{[]string{"--path", path, "--log-level", "loud"}, "--log-level"},
		{[]string{"--path", dir}, "--path"},
		{[]string{"--path", path, "extra"}, "extra"},
	} {
		args := append(append([]string(nil), base...), tc.args...)
		code, stdout, stderr := runApp(t, context.Background(), args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, stderr, tc.want)
		}
		if stdout != "" {
			t.Errorf("%q: wrote %q to stdout", tc.args, stdout)
		}
	}
	code, _, stderr := runApp(t, context.Background(), "--path", path)
	if code != 2 || !strings.Contains(stderr, "--topic") {
		t.Errorf("missing --topic: exit %d, stderr %q", code, stderr)
	}
}

func TestRunMissingFileFails(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runApp(t, context.Background(), "--topic", "t", "--bus", filepath.Join(dir, "bus"), "--path", filepath.Join(dir, "missing"))
	if code != 1 || !strings.Contains(stderr, "missing") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the file", code, stderr)
	}
}

func TestRunHelpAndVersion(t *testing.T) {
	code, stdout, _ := runApp(t, context.Background(), "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"Examples:", "--path", "--delimiter", "--follow", "--poll-interval", "--read-size", "--batch-size", "--topic", "CULVERT_PATH"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	code, stdout, _ = runApp(t, context.Background(), "version")
	if code != 0 || !strings.HasPrefix(stdout, "file-source "+cli.Version+" ") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
}

// TestRunFollowStopsOnCancel: a stop signal ends a following run with
// status 0 once what it read is on the topic.
func TestRunFollowStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "app.log")
	writeFile(t, path, "one\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr string
	go func() {
		var code int
		code, _, stderr = runApp(t, ctx, "--topic", "logs", "--bus", busDir, "--path", path, "--follow", "--poll-interval", "10ms")
		done <- code
	}()
	waitForRecords(t, busDir, "logs", 1, done)
	appendFile(t, path, "two\nthree\n")
	waitForRecords(t, busDir, "logs", 3, done)
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel, want 0\n%s", code, stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the following source did not stop after its context was cancelled")
	}
	equalStrings(t, "values", values(readTopic(t, busDir, "logs")), []string{"one", "two", "three"})

	// A restart resumes after what was published.
	appendFile(t, path, "four\n")
	mustRun(t, "--topic", "logs", "--bus", busDir, "--path", path)
	equalStrings(t, "after restart", values(readTopic(t, busDir, "logs")), []string{"one", "two", "three", "four"})
}

// waitForRecords waits until topic has at least n records.
func waitForRecords(t *testing.T, busDir, topic string, n int, done <-chan int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case code := <-done:
			t.Fatalf("file-source exited with %d while waiting for records", code)
		default:
		}
		if _, err := os.Stat(filepath.Join(busDir, "bus.db")); err == nil {
			if got := len(readTopic(t, busDir, topic)); got >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %q never got %d records", topic, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
