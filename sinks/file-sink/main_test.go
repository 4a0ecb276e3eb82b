package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "file-sink", cli.DirectionSink)
	md.HasProperties(t, "path", "output", "fsync")
	if !slices.Contains(md.Schema.Required, "path") {
		t.Errorf("required = %v, want path among them", md.Schema.Required)
	}
	if d := md.Schema.Properties["from"]["default"]; d != "end" {
		t.Errorf("from default %v", d)
	}
	if d := md.Schema.Properties["output"]["default"]; d != "value" {
		t.Errorf("output default %v", d)
	}
}

// lines returns the lines of the file at path, nil when it does not exist.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: %q", path, b)
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

type env struct {
	busDir, dir string
}

func newEnv(t *testing.T) env {
	dir := t.TempDir()
	return env{busDir: filepath.Join(dir, "bus"), dir: dir}
}

func (e env) out(name string) string { return filepath.Join(e.dir, name) }

func TestRunTransformsInCommandLineOrder(t *testing.T) {
	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "t", `{"a":0}`, `{"a":5}`)
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("mapfirst"), "--from", "beginning", "--stop-at-end",
		"--group", "g1", "--map", ".a = 1", "--filter", ".a == 1")
	connectortest.Equal(t, "--map then --filter", lines(t, e.out("mapfirst")), []string{`{"a":1}`, `{"a":1}`})

	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("filterfirst"), "--from", "beginning", "--stop-at-end",
		"--group", "g2", "--filter", ".a == 1", "--map", ".a = 1")
	if got := lines(t, e.out("filterfirst")); len(got) != 0 {
		t.Fatalf("--filter then --map wrote %q, want nothing", got)
	}
}

func TestRunOnErrorFail(t *testing.T) {
	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "orders", `{"a":1}`, "not json", `{"a":2}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"--topic", "orders", "--bus", e.busDir, "--path", e.out("out"), "--from", "beginning", "--stop-at-end", "--group", "g"}
	code, _, stderr := connectortest.Run(t, ctx, app(), append(args, "--map", ".", "--on-error", "fail")...)
	if code != 1 || !strings.Contains(stderr, "offset 1") {
		t.Fatalf("exit %d, stderr %q; want 1 naming offset 1", code, stderr)
	}
	// Nothing was committed: the group reads the same records again.
	os.Remove(e.out("out"))
	connectortest.MustRun(t, app(), append(args, "--map", ".", "--on-error", "skip")...)
	connectortest.Equal(t, "after the failure", lines(t, e.out("out")), []string{`{"a":1}`, `{"a":2}`})
}

func TestRunOnErrorSkip(t *testing.T) {
	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "orders", `{"a":1}`, "not json", `{"a":2}`)
	stderr := connectortest.MustRun(t, app(), "--topic", "orders", "--bus", e.busDir, "--path", e.out("out"), "--from", "beginning", "--stop-at-end",
		"--filter", "true", "--on-error", "skip")
	connectortest.Equal(t, "written", lines(t, e.out("out")), []string{`{"a":1}`, `{"a":2}`})
	if !strings.Contains(stderr, "skipped") {
		t.Errorf("no warning about the skipped record:\n%s", stderr)
	}
	connectortest.MustRun(t, app(), "--topic", "orders.dlq", "--bus", e.busDir, "--path", e.out("dlq"), "--from", "beginning", "--stop-at-end")
	if got := lines(t, e.out("dlq")); len(got) != 0 {
		t.Fatalf("--on-error skip sent %q to the dead-letter topic", got)
	}
}

func TestRunWithoutTransformWritesValuesUntouched(t *testing.T) {
	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "logs", "plain text", "  {\"a\": 1}  ", "{broken")
	connectortest.MustRun(t, app(), "--topic", "logs", "--bus", e.busDir, "--path", e.out("out"), "--from", "beginning", "--stop-at-end")
	connectortest.Equal(t, "written", lines(t, e.out("out")), []string{"plain text", "  {\"a\": 1}  ", "{broken"})
}

func TestRunOutputFull(t *testing.T) {
	e := newEnv(t)
	tm := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	connectortest.Publish(t, e.busDir, "t",
		record.Record{Key: []byte("k"), Value: []byte(`{"a":1}`), Time: tm, Headers: []record.Header{{Key: "h", Value: []byte("v")}}},
		record.Record{Value: []byte("text")},
	)
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("out"), "--from", "beginning", "--stop-at-end", "--output", "full")
	connectortest.Equal(t, "full", lines(t, e.out("out")), []string{
		`{"key":"k","value":{"a":1},"headers":[{"key":"h","value":"v"}],"time":"2025-01-02T03:04:05.000006Z","offset":0}`,
		`{"key":null,"value":"text","offset":1}`,
	})
}

func TestRunGroupResumes(t *testing.T) {
	e := newEnv(t)
	args := []string{"--topic", "t", "--bus", e.busDir, "--path", e.out("out"), "--from", "beginning", "--stop-at-end", "--group", "g"}
	connectortest.PublishValues(t, e.busDir, "t", "1", "2")
	connectortest.MustRun(t, app(), args...)
	connectortest.PublishValues(t, e.busDir, "t", "3")
	os.Remove(e.out("out"))
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "second run of the group", lines(t, e.out("out")), []string{"3"})

	os.Remove(e.out("out"))
	connectortest.MustRun(t, app(), args...)
	if got := lines(t, e.out("out")); len(got) != 0 {
		t.Fatalf("third run with nothing new wrote %q", got)
	}

	// Another group starts over; the default group is the connector's name.
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("other"), "--from", "beginning", "--stop-at-end")
	connectortest.Equal(t, "default group", lines(t, e.out("other")), []string{"1", "2", "3"})
	os.Remove(e.out("other"))
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("other"), "--from", "beginning", "--stop-at-end", "--group", "file-sink")
	if got := lines(t, e.out("other")); len(got) != 0 {
		t.Fatalf("--group file-sink is not the default group: it wrote %q", got)
	}
}

func TestRunFromEndForNewGroup(t *testing.T) {
	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "t", "old1", "old2")
	// --from end is the default: a new group skips what is already there.
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("out"), "--stop-at-end", "--group", "g")
	if got := lines(t, e.out("out")); len(got) != 0 {
		t.Fatalf("a new group from the end wrote %q", got)
	}
	connectortest.PublishValues(t, e.busDir, "t", "new")
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("out"), "--stop-at-end", "--group", "g", "--from", "end")
	connectortest.Equal(t, "after the group joined", lines(t, e.out("out")), []string{"new"})

	// --from applies to new groups only.
	os.Remove(e.out("out"))
	connectortest.PublishValues(t, e.busDir, "t", "newer")
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", e.busDir, "--path", e.out("out"), "--stop-at-end", "--group", "g", "--from", "beginning")
	connectortest.Equal(t, "existing group with --from beginning", lines(t, e.out("out")), []string{"newer"})
}

func TestRunStopAtEndOnEmptyTopic(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	connectortest.MustRun(t, app(), "--topic", "empty", "--bus", e.busDir, "--path", e.out("out"), "--from", "beginning", "--stop-at-end")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("--stop-at-end on an empty topic took %v", d)
	}
	if got := lines(t, e.out("out")); len(got) != 0 {
		t.Fatalf("wrote %q", got)
	}
}

func TestRunEnvironment(t *testing.T) {
	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "fromenv", `{"a":1}`, `{"a":2}`)
	connectortest.PublishValues(t, e.busDir, "fromflag", `{"a":3}`, `{"a":4}`)
	t.Setenv("CULVERT_TOPIC", "fromenv")
	t.Setenv("CULVERT_BUS", e.busDir)
	t.Setenv("CULVERT_FROM", "beginning")
	t.Setenv("CULVERT_STOP_AT_END", "true")
	t.Setenv("CULVERT_FILTER", ".a > 1")
	connectortest.MustRun(t, app(), "--path", e.out("env"))
	connectortest.Equal(t, "from the environment", lines(t, e.out("env")), []string{`{"a":2}`})

	connectortest.MustRun(t, app(), "--path", e.out("flag"), "--topic", "fromflag", "--filter", ".a == 3")
	connectortest.Equal(t, "flags over the environment", lines(t, e.out("flag")), []string{`{"a":3}`})
}

func TestRunUnwritablePathFails(t *testing.T) {
	e := newEnv(t)
	code, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", e.busDir, "--path", filepath.Join(e.dir, "missing", "out"), "--stop-at-end")
	if code != 1 || !strings.Contains(stderr, "missing") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the path", code, stderr)
	}
}

func TestRunHelpAndVersion(t *testing.T) {
	connectortest.Help(t, app(), "Examples:", "--path", "--output", "--fsync", "--group", "--from", "--stop-at-end", "CULVERT_FILE_SINK_OUTPUT")
	code, stdout, _ := connectortest.Run(t, context.Background(), app(), "version")
	if code != 0 || !strings.HasPrefix(stdout, "file-sink "+cli.Version+" ") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
}
