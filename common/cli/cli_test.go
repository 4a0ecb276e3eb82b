package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/testserver"
)

type testOptions struct {
	Lines    []string        `json:"lines,omitempty" jsonschema_description:"Lines to publish."`
	Interval schema.Duration `json:"interval" jsonschema:"default=10s" jsonschema_description:"An interval."`
	Mode     string          `json:"mode" jsonschema:"enum=a,enum=b,default=a" jsonschema_description:"A mode."`
	Count    int             `json:"count" jsonschema:"minimum=1,default=3" jsonschema_description:"A count."`
}

func (o *testOptions) Validate() error {
	if o.Mode == "b" && o.Count > 5 {
		return schema.Invalid("count", "must be at most 5 in mode b")
	}
	return nil
}

type linesSource struct {
	opts *testOptions
	done bool
}

func (s *linesSource) Open(context.Context, []byte) error { return nil }
func (s *linesSource) Close() error                       { return nil }
func (s *linesSource) Read(context.Context) (connector.Batch, error) {
	if s.done {
		return connector.Batch{}, io.EOF
	}
	s.done = true
	var recs []record.Record
	for _, l := range s.opts.Lines {
		recs = append(recs, record.Record{Value: []byte(l)})
	}
	return connector.Batch{Records: recs}, nil
}

var seen *testOptions

func newApp() *cli.App {
	return cli.NewSource(cli.Info{Name: "test-source", Description: "A test source.", Examples: "# run it\ntest-source --topic t"},
		func(o *testOptions, env connector.Env) (connector.Source, error) {
			seen = o
			return &linesSource{opts: o}, nil
		})
}

// runWith runs app with the environment variables env set for the test.
func runWith(t *testing.T, app *cli.App, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	return connectortest.Run(t, context.Background(), app, args...)
}

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, newApp(), env, args...)
}

func TestMetadataIsPureAndComplete(t *testing.T) {
	code, out, errOut := run(t, map[string]string{"CULVERT_TOPIC": "from-env", "CULVERT_TEST_SOURCE_COUNT": "9"}, "metadata")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var m struct {
		Name, Direction, Version, Description string
		Schema                                struct {
			Required   []string
			Properties map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "test-source" || m.Direction != "source" || m.Version != cli.Version || m.Description != "A test source." {
		t.Fatalf("metadata %+v", m)
	}
	for _, p := range []string{"lines", "interval", "mode", "count", "topic", "bus", "map", "filter", "arraymap", "filter_map", "dlq_topic", "on_error", "batch_size", "linger"} {
		if _, ok := m.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if m.Schema.Properties["count"]["default"] != 3.0 || m.Schema.Properties["interval"]["default"] != "10s" {
		t.Errorf("defaults: count %v interval %v", m.Schema.Properties["count"]["default"], m.Schema.Properties["interval"]["default"])
	}
	if strings.Contains(out, "from-env") {
		t.Error("metadata shows the environment")
	}
	if len(m.Schema.Required) != 1 || m.Schema.Required[0] != "topic" {
		t.Errorf("required %v", m.Schema.Required)
	}
}

func TestPrecedenceFlagEnvDefault(t *testing.T) {
	bus := "--bus=" + t.TempDir()
	if code, _, e := run(t, nil, "--topic", "t", bus); code != 0 || seen.Count != 3 || seen.Interval.D().String() != "10s" {
		t.Fatalf("defaults: exit %d %s, %+v", code, e, seen)
	}
	if code, _, e := run(t, map[string]string{"CULVERT_TEST_SOURCE_COUNT": "4", "CULVERT_TEST_SOURCE_LINES": "x\ny"}, "--topic", "t", bus); code != 0 || seen.Count != 4 || len(seen.Lines) != 2 {
		t.Fatalf("env: exit %d %s, %+v", code, e, seen)
	}
	if code, _, e := run(t, map[string]string{"CULVERT_TEST_SOURCE_COUNT": "4"}, "--topic", "t", bus, "--count", "5"); code != 0 || seen.Count != 5 {
		t.Fatalf("flag beats env: exit %d %s, %+v", code, e, seen)
	}
}

func TestUsageErrorsExit2NamingTheOption(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{}, "--topic is required"},
		{nil, []string{"--topic", "t", "--count", "0"}, "--count"},
		{nil, []string{"--topic", "t", "--mode", "c"}, "--mode"},
		{nil, []string{"--topic", "t", "--interval", "soon"}, "--interval"},
		{nil, []string{"--topic", "t", "--mode", "b", "--count", "6"}, "--count: must be at most 5"},
		{nil, []string{"--topic", "t", "--filter", ".a >"}, "--filter"},
		{nil, []string{"--topic", "t", "--map", "nosuch(1)"}, "--map"},
		{nil, []string{"--topic", "t", "--nope"}, "--nope"},
		{nil, []string{"--topic", "t", "stray"}, "stray"},
		{map[string]string{"CULVERT_TEST_SOURCE_COUNT": "many"}, []string{"--topic", "t"}, "CULVERT_TEST_SOURCE_COUNT"},
		{nil, []string{"--topic", "t", "--on-error", "ignore"}, "--on-error"},
		{nil, []string{"--topic", "t", "--log-level", "loud"}, "--log-level"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			code, _, errOut := run(t, c.env, c.args...)
			if code != 2 || !strings.Contains(errOut, c.want) {
				t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
			}
		})
	}
}

func TestTransformsApplyInCommandLineOrder(t *testing.T) {
	dir := t.TempDir()
	// map then filter keeps the record; filter then map drops it.
	code, _, e := run(t, nil, "--bus", dir, "--topic", "a", "--lines", `{"x":1}`, "--map", ".x = 5", "--filter", ".x > 2")
	if code != 0 {
		t.Fatal(e)
	}
	code, _, e = run(t, nil, "--bus", dir, "--topic", "b", "--lines", `{"x":1}`, "--filter", ".x > 2", "--map", ".x = 5")
	if code != 0 {
		t.Fatal(e)
	}
	b, err := bus.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for topic, want := range map[string]int{"a": 1, "b": 0} {
		sub, err := b.Subscribe(context.Background(), topic, "check", bus.SubscribeOptions{Start: bus.StartBeginning})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		msgs, _ := sub.Poll(ctx)
		cancel()
		if len(msgs) != want {
			t.Errorf("topic %s has %d records, want %d", topic, len(msgs), want)
		}
	}
}

func TestHelpTeaches(t *testing.T) {
	code, out, _ := run(t, nil, "--help")
	for _, want := range []string{"A test source.", "Examples:", "test-source --topic t", "--count", "CULVERT_TEST_SOURCE_COUNT", "CULVERT_TOPIC", "Shared options:", "--filter-map", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	if code, out, _ := run(t, nil, "version"); code != 0 || !strings.Contains(out, "test-source "+cli.Version) {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestStopWhileConnectingIsAStop: the stop signal while the bus is still
// being connected to (a server that accepts and never answers) ends the
// run with exit 0 and no error, as a stop later on does.
func TestStopWhileConnectingIsAStop(t *testing.T) {
	addr := testserver.Silent(t)
	ctx, cancel := context.WithCancel(context.Background()) // as SIGTERM does
	defer time.AfterFunc(500*time.Millisecond, cancel).Stop()
	code, _, errOut := connectortest.Run(t, ctx, newApp(), "--topic", "t", "--lines", "a",
		"--bus", "amqp://guest:guest@"+addr+"/")
	if code != 0 || strings.Contains(errOut, "error") || strings.Contains(errOut, "canceled") {
		t.Fatalf("exit %d after a stop while connecting, stderr:\n%s", code, errOut)
	}
}
