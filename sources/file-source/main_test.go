package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "file-source", cli.DirectionSource)
	md.HasProperties(t, "path", "delimiter", "follow", "poll_interval", "read_size")
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

func TestRunPublishesAndResumes(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"n\":1}\n{\"n\":2}\n  {\"n\": 3}  \n")
	args := []string{"--topic", "orders", "--bus", busDir, "--path", path}
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "first run", connectortest.TopicValues(t, busDir, "orders"), []string{`{"n":1}`, `{"n":2}`, `  {"n": 3}  `})

	// A second run over the same file publishes nothing again.
	connectortest.MustRun(t, app(), args...)
	if n := len(connectortest.ReadTopic(t, busDir, "orders")); n != 3 {
		t.Fatalf("rerun over an unchanged file: topic has %d records, want 3", n)
	}

	// Appended lines are published by the next run, and only they.
	appendFile(t, path, "{\"n\":4}\n{\"n\":5}\n")
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "after append", connectortest.TopicValues(t, busDir, "orders"),
		[]string{`{"n":1}`, `{"n":2}`, `  {"n": 3}  `, `{"n":4}`, `{"n":5}`})

	// The position is kept per topic: another topic reads the file from the start.
	connectortest.MustRun(t, app(), "--topic", "other", "--bus", busDir, "--path", path)
	if n := len(connectortest.ReadTopic(t, busDir, "other")); n != 5 {
		t.Fatalf("another topic got %d records, want 5", n)
	}
}

func TestRunTransformsInCommandLineOrder(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":0}\n{\"a\":5}\n")
	connectortest.MustRun(t, app(), "--topic", "mapfirst", "--bus", busDir, "--path", path, "--map", ".a = 1", "--filter", ".a == 1")
	connectortest.Equal(t, "--map then --filter", connectortest.TopicValues(t, busDir, "mapfirst"), []string{`{"a":1}`, `{"a":1}`})

	connectortest.MustRun(t, app(), "--topic", "filterfirst", "--bus", busDir, "--path", path, "--filter", ".a == 1", "--map", ".a = 1")
	if got := connectortest.ReadTopic(t, busDir, "filterfirst"); len(got) != 0 {
		t.Fatalf("--filter then --map: got %q, want nothing", connectortest.Values(got))
	}

	connectortest.MustRun(t, app(), "--topic", "chain", "--bus", busDir, "--path", path,
		"--map", "{x: .a}", "--arraymap", "[.x, .x + 1][]", "--filter", ". > 0", "--filter-map", "{v: .}")
	connectortest.Equal(t, "chain", connectortest.TopicValues(t, busDir, "chain"), []string{`{"v":1}`, `{"v":5}`, `{"v":6}`})
}

// TestRunDeadLetters: a failing jq step is a dead letter, on the topic
// --dlq-topic names (the acceptance suite checks a value that is not JSON).
func TestRunDeadLetters(t *testing.T) {
	dir := t.TempDir()
	busDir := filepath.Join(dir, "bus")
	writeFile(t, filepath.Join(dir, "in2.jsonl"), "{\"a\":1}\n{\"a\":\"x\"}\n")
	connectortest.MustRun(t, app(), "--topic", "t2", "--bus", busDir, "--path", filepath.Join(dir, "in2.jsonl"), "--map", ".a = .a + 1", "--dlq-topic", "bad")
	connectortest.Equal(t, "t2", connectortest.TopicValues(t, busDir, "t2"), []string{`{"a":2}`})
	dead := connectortest.ReadTopic(t, busDir, "bad")
	connectortest.Equal(t, "--dlq-topic", connectortest.Values(dead), []string{`{"a":"x"}`})
	if got := connectortest.Header(t, dead[0], "culvert.step"); got != "--map .a = .a + 1" {
		t.Errorf("culvert.step %q", got)
	}
	if got := connectortest.Header(t, dead[0], "culvert.offset"); got != "8" {
		t.Errorf("culvert.offset %q", got)
	}
}

func TestRunOnErrorFail(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\nnot json\n{\"a\":2}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, stderr := connectortest.Run(t, ctx, app(), "--topic", "orders", "--bus", busDir, "--path", path, "--map", ".", "--on-error", "fail")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "offset 8") || !strings.Contains(stderr, "not JSON") {
		t.Errorf("the error does not say which record failed and why:\n%s", stderr)
	}
	for _, topic := range []string{"orders", "orders.dlq"} {
		if got := connectortest.ReadTopic(t, busDir, topic); len(got) != 0 {
			t.Fatalf("--on-error fail published %q to %s", connectortest.Values(got), topic)
		}
	}
	// No position was saved: a run without the transform publishes every line.
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--path", path)
	connectortest.Equal(t, "after the failure", connectortest.TopicValues(t, busDir, "orders"), []string{`{"a":1}`, "not json", `{"a":2}`})
}

func TestRunOnErrorSkip(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\nnot json\n{\"a\":2}\n")
	stderr := connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--path", path, "--filter", "true", "--on-error", "skip")
	connectortest.Equal(t, "topic", connectortest.TopicValues(t, busDir, "orders"), []string{`{"a":1}`, `{"a":2}`})
	if got := connectortest.ReadTopic(t, busDir, "orders.dlq"); len(got) != 0 {
		t.Fatalf("--on-error skip sent %q to the dead-letter topic", connectortest.Values(got))
	}
	if !strings.Contains(stderr, "skipped") {
		t.Errorf("the skipped record is not counted in the log:\n%s", stderr)
	}
}

func TestRunWithoutTransformPassesAnything(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.txt")
	writeFile(t, path, "plain text\n{not json\n\t tabs and spaces \nünïcödé\n")
	connectortest.MustRun(t, app(), "--topic", "logs", "--bus", busDir, "--path", path)
	connectortest.Equal(t, "values", connectortest.TopicValues(t, busDir, "logs"), []string{"plain text", "{not json", "\t tabs and spaces ", "ünïcödé"})
	if got := connectortest.ReadTopic(t, busDir, "logs.dlq"); len(got) != 0 {
		t.Fatalf("dead letters without a transform: %q", connectortest.Values(got))
	}
}

func TestRunCustomDelimiter(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in")
	writeFile(t, path, "a b\x00c\nd\x00\x00e")
	connectortest.MustRun(t, app(), "--topic", "nul", "--bus", busDir, "--path", path, "--delimiter", `\0`)
	connectortest.Equal(t, "values", connectortest.TopicValues(t, busDir, "nul"), []string{"a b", "c\nd", "e"})
}

func TestRunStdin(t *testing.T) {
	w := withStdin(t)
	go func() {
		w.WriteString("{\"a\":1}\n{\"a\":2}\n{\"a\":3}")
		w.Close()
	}()
	busDir := filepath.Join(t.TempDir(), "bus")
	connectortest.MustRun(t, app(), "--topic", "in", "--bus", busDir, "--path", "-", "--filter", ".a != 2")
	connectortest.Equal(t, "values", connectortest.TopicValues(t, busDir, "in"), []string{`{"a":1}`, `{"a":3}`})
}

func TestRunEnvironment(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n")
	t.Setenv("CULVERT_TOPIC", "fromenv")
	t.Setenv("CULVERT_BUS", busDir)
	t.Setenv("CULVERT_FILE_SOURCE_PATH", path)
	t.Setenv("CULVERT_FILTER", ".a >= 2")
	connectortest.MustRun(t, app())
	connectortest.Equal(t, "from the environment", connectortest.TopicValues(t, busDir, "fromenv"), []string{`{"a":2}`, `{"a":3}`})

	// A flag beats the environment.
	connectortest.MustRun(t, app(), "--topic", "fromflag", "--filter", ".a == 1")
	connectortest.Equal(t, "flags over the environment", connectortest.TopicValues(t, busDir, "fromflag"), []string{`{"a":1}`})

	t.Setenv("CULVERT_BATCH_SIZE", "zero")
	code, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "x")
	if code != 2 || !strings.Contains(stderr, "CULVERT_BATCH_SIZE") {
		t.Fatalf("bad environment value: exit %d, stderr %q; want 2 naming CULVERT_BATCH_SIZE", code, stderr)
	}
}

// TestRunMissingTopic: --topic is required (the acceptance suite checks
// the other bad options).
func TestRunMissingTopic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "x\n")
	code, _, stderr := connectortest.Run(t, context.Background(), app(), "--path", path)
	if code != 2 || !strings.Contains(stderr, "--topic") {
		t.Errorf("missing --topic: exit %d, stderr %q", code, stderr)
	}
}

func TestRunMissingFileFails(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", filepath.Join(dir, "bus"), "--path", filepath.Join(dir, "missing"))
	if code != 1 || !strings.Contains(stderr, "missing") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the file", code, stderr)
	}
}

func TestRunHelpAndVersion(t *testing.T) {
	connectortest.Help(t, app(), "Examples:", "--path", "--delimiter", "--follow", "--poll-interval", "--read-size", "--batch-size", "--topic", "CULVERT_FILE_SOURCE_PATH")
	code, stdout, _ := connectortest.Run(t, context.Background(), app(), "version")
	if code != 0 || !strings.HasPrefix(stdout, "file-source "+cli.Version+" ") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
}
