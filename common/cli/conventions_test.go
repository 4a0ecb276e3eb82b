package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
)

func TestVersionFlag(t *testing.T) {
	code, out, e := run(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "test-source "+cli.Version+" (go") {
		t.Fatalf("--version: exit %d, %q %q", code, out, e)
	}
	_, sub, _ := run(t, nil, "version")
	if sub != out {
		t.Fatalf("--version says %q, version says %q", out, sub)
	}
}

func TestMistypedSubcommandSuggestsTheRightOne(t *testing.T) {
	for typo, want := range map[string]string{"metdata": "metadata", "valdate": "validate", "confg": "config"} {
		code, _, e := run(t, nil, typo)
		if code != 2 || !strings.Contains(e, "did you mean "+want+"?") {
			t.Errorf("%s: exit %d, stderr %q", typo, code, e)
		}
	}
	// A stray word that resembles no command is still an unexpected argument.
	if code, _, e := run(t, nil, "--topic", "t", "orders.jsonl"); code != 2 || !strings.Contains(e, `unexpected argument "orders.jsonl"`) {
		t.Errorf("exit %d, stderr %q", code, e)
	}
}

func TestValidateAndConfigHelpListTheirFlags(t *testing.T) {
	for _, sub := range []string{"validate", "config"} {
		code, out, _ := run(t, nil, sub, "--help")
		for _, want := range []string{"Usage:", sub, "--count", "CULVERT_TEST_SOURCE_COUNT", "--topic", "--config", "--filter-map", "Exit status"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q:\n%s", sub, want, out)
			}
		}
		if code != 0 {
			t.Errorf("%s --help: exit %d", sub, code)
		}
	}
}

func TestCompletionOffersEnumValues(t *testing.T) {
	for flag, want := range map[string][]string{"--on-error": {"dlq", "fail", "skip"}, "--log-format": {"auto", "console", "json"}, "--mode": {"a", "b"}} {
		for _, args := range [][]string{{"__complete", flag, ""}, {"__complete", "validate", flag, ""}} {
			code, out, e := run(t, nil, args...)
			if code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, e)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if strings.Join(lines[:len(lines)-1], ",") != strings.Join(want, ",") {
				t.Errorf("%v offers %q, want %v", args, out, want)
			}
		}
	}
	sink := cli.NewSink(cli.Info{Name: "null-sink", Description: "A sink."},
		func(o *struct{}, env connector.Env) (connector.Sink, error) { return nil, nil })
	if code, out, _ := runWith(t, sink, nil, "__complete", "--from", ""); code != 0 || !strings.HasPrefix(out, "beginning\nend\n") {
		t.Errorf("--from offers %q", out)
	}
}

// roundTrip checks that what config prints is a config file that validate
// accepts and that config reads back to the same output.
func roundTrip(t *testing.T, app func() *cli.App, env map[string]string, args ...string) string {
	t.Helper()
	code, out, e := runWith(t, app(), env, append([]string{"config"}, args...)...)
	if code != 0 {
		t.Fatalf("config %v: exit %d %s", args, code, e)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	for k := range env {
		os.Unsetenv(k) // restored by t.Setenv's cleanup
	}
	if code, _, e := runWith(t, app(), nil, "validate", "--config", path); code != 0 {
		t.Fatalf("validate --config of config's output: exit %d\n%s\n%s", code, e, out)
	}
	code, again, e := runWith(t, app(), nil, "config", "--config", path)
	if code != 0 || again != out {
		t.Fatalf("config --config of config's output: exit %d %s\n%s\nwant\n%s", code, e, again, out)
	}
	return out
}

func TestConfigOutputIsConfigInput(t *testing.T) {
	out := roundTrip(t, newApp, map[string]string{"CULVERT_TEST_SOURCE_COUNT": "4", "CULVERT_BATCH_SIZE": "9"},
		"--topic", "t", "--lines", "a", "--lines", "b", "--map", ".a = 1", "--bus", "kafka://u:pw-7a1c@k:9092")
	if strings.Contains(out, "pw-7a1c") {
		t.Errorf("config shows the bus password:\n%s", out)
	}
	sink := func() *cli.App {
		return cli.NewSink(cli.Info{Name: "null-sink", Description: "A sink."},
			func(o *vaultOptions, env connector.Env) (connector.Sink, error) { return nil, nil })
	}
	roundTrip(t, sink, nil, "--topic", "t", "--token", "tok-5e6f", "--from", "beginning", "--stop-at-end", "--filter", ".a")
	// Secret references of the file stay references.
	cfg := write(t, "v.yaml", vaultYAML+"transforms: [{map: '.t = \"${{ secrets.API_TOKEN }}\"'}]\n")
	t.Setenv("API_TOKEN", "tok-91aa")
	out = roundTrip(t, newVault, nil, "--config", cfg)
	if strings.Contains(out, "tok-91aa") || !strings.Contains(out, `"map": ".t = \"${{ secrets.API_TOKEN }}\""`) {
		t.Errorf("config output:\n%s", out)
	}
}

func TestConfigPrintsTransformsInTheOrderTheyRun(t *testing.T) {
	// A transform from the environment and one from a flag: the flags'
	// list is the one that runs, as a flag beats the environment.
	env := map[string]string{"CULVERT_MAP": ".x = 5"}
	m, out := configJSON(t, newApp(), "--topic", "t", "--filter", ".x > 2", "--map", ".y = 1")
	if got := strings.Join(strings.Fields(out), ""); !strings.Contains(got, `"transforms":[{"filter":".x>2"},{"map":".y=1"}]`) {
		t.Fatalf("transforms %v\n%s", m["transforms"], out)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	_, out = configJSON(t, newApp(), "--topic", "t", "--filter", ".x > 2")
	if got := strings.Join(strings.Fields(out), ""); !strings.Contains(got, `"transforms":[{"filter":".x>2"}]`) {
		t.Fatalf("config shows %s", out)
	}
	// What config shows is what runs: the record with x = 1 is filtered out,
	// the environment's map does not run first.
	dir := t.TempDir()
	if code, _, e := run(t, nil, "--topic", "o", "--bus", dir, "--lines", `{"x":1}`, "--filter", ".x > 2"); code != 0 {
		t.Fatal(e)
	}
	if got := countRecords(t, dir, "o"); got["o"] != 0 {
		t.Fatalf("records %v, want none", got)
	}
}

func TestEnvironmentDoesNotLeakBetweenConnectors(t *testing.T) {
	type pathOptions struct {
		Path string `json:"path" jsonschema:"required" jsonschema_description:"A path."`
	}
	var got string
	source := cli.NewSource(cli.Info{Name: "file-source", Description: "A source."},
		func(o *pathOptions, env connector.Env) (connector.Source, error) {
			got = o.Path
			return emptySource{}, nil
		})
	sink := cli.NewSink(cli.Info{Name: "file-sink", Description: "A sink."},
		func(o *pathOptions, env connector.Env) (connector.Sink, error) { return nil, nil })
	t.Setenv("CULVERT_FILE_SOURCE_PATH", "in.jsonl")
	if code, _, e := runWith(t, source, nil, "--topic", "t", "--bus", t.TempDir()); code != 0 || got != "in.jsonl" || strings.Contains(e, "warning") {
		t.Fatalf("file-source: exit %d, path %q, %s", code, got, e)
	}
	// file-sink neither reads file-source's variable nor warns about it.
	code, _, e := runWith(t, sink, nil, "validate", "--topic", "t")
	if code != 2 || !strings.Contains(e, "--path is required (or set CULVERT_FILE_SINK_PATH)") || strings.Contains(e, "CULVERT_FILE_SOURCE_PATH") {
		t.Fatalf("file-sink: exit %d, %s", code, e)
	}
	// --help and metadata name each option's variable.
	if _, out, _ := runWith(t, sink, nil, "--help"); !strings.Contains(out, "[env CULVERT_FILE_SINK_PATH]") || !strings.Contains(out, "[env CULVERT_TOPIC]") {
		t.Errorf("--help:\n%s", out)
	}
	if _, out, _ := runWith(t, sink, nil, "metadata"); !strings.Contains(out, `"x-env": "CULVERT_FILE_SINK_PATH"`) || !strings.Contains(out, `"x-env": "CULVERT_GROUP"`) {
		t.Errorf("metadata:\n%s", out)
	}
}

func TestUnknownEnvironmentVariablesAreReported(t *testing.T) {
	env := map[string]string{"CULVERT_COUNT": "4", "CULVERT_BATCH_SIZ": "9", "CULVERT_BIN": "/bin", "CULVERT_KAFKA_SINK_BROKERS": "k"}
	// validate: exit 2, naming each with the variable meant.
	code, _, e := run(t, env, "validate", "--topic", "t")
	if code != 2 || !strings.Contains(e, "CULVERT_COUNT is no option of test-source; did you mean CULVERT_TEST_SOURCE_COUNT?") ||
		!strings.Contains(e, "CULVERT_BATCH_SIZ is no option of test-source; did you mean CULVERT_BATCH_SIZE?") ||
		strings.Contains(e, "CULVERT_BIN") || strings.Contains(e, "CULVERT_KAFKA_SINK_BROKERS") {
		t.Fatalf("validate: exit %d, %s", code, e)
	}
	// A run warns and goes on.
	code, _, e = run(t, env, "--topic", "t", "--bus", t.TempDir())
	if code != 0 || !strings.Contains(e, "warning: environment variable CULVERT_COUNT is no option of test-source") {
		t.Fatalf("run: exit %d, %s", code, e)
	}
	// A typo in the connector's own prefix is reported too.
	code, _, e = run(t, map[string]string{"CULVERT_TEST_SOURCE_CONT": "4"}, "validate", "--topic", "t")
	if code != 2 || !strings.Contains(e, "did you mean CULVERT_TEST_SOURCE_COUNT?") {
		t.Fatalf("own typo: exit %d, %s", code, e)
	}
}

func TestValidateRejectsWhatARunRejects(t *testing.T) {
	for _, spec := range []string{"redis://:SUPER%zzX@127.0.0.1:6379", "nosuch://h:1"} {
		code, out, e := run(t, nil, "validate", "--topic", "t", "--bus", spec)
		if code != 2 || out != "" || !strings.Contains(e, "--bus") || strings.Contains(e, "SUPER") {
			t.Errorf("validate --bus %s: exit %d, out %q, stderr %q", spec, code, out, e)
		}
		code, _, e = run(t, nil, "--topic", "t", "--bus", spec)
		if code != 2 || strings.Contains(e, "SUPER") {
			t.Errorf("run --bus %s: exit %d, stderr %q", spec, code, e)
		}
	}
	// From the config file, the error names the file's path.
	cfg := write(t, "c.yaml", "meta: {type: test-source, topic: t, bus: 'redis://:SUPER%zzX@127.0.0.1:6379'}\n")
	if code, _, e := run(t, nil, "validate", "--config", cfg); code != 2 || !strings.Contains(e, "meta.bus: ") || strings.Contains(e, "SUPER") {
		t.Errorf("exit %d, stderr %q", code, e)
	}
}

func TestConfigFileTypeErrorsDoNotHideValueErrors(t *testing.T) {
	cfg := write(t, "c.yaml", "meta: {type: test-source, topic: t, batch_size: 0, linger: soon}\ntest: {count: many, mode: c}\n")
	code, _, e := run(t, nil, "validate", "--config", cfg)
	for _, want := range []string{"test.count: must be an integer", "meta.linger: must be a duration like 10s", "meta.batch_size: minimum: got 0, want 1", "test.mode: value must be one of 'a', 'b'"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q:\n%s", want, e)
		}
	}
	if code != 2 || strings.Contains(e, "--batch-size") || strings.Contains(e, "--mode") {
		t.Errorf("exit %d:\n%s", code, e)
	}
	// A value from the environment is named by its variable.
	code, _, e = run(t, map[string]string{"CULVERT_BATCH_SIZE": "0"}, "validate", "--topic", "t")
	if code != 2 || !strings.Contains(e, "--batch-size (from CULVERT_BATCH_SIZE): minimum") {
		t.Errorf("exit %d: %s", code, e)
	}
}

func TestFluvio020Layout(t *testing.T) {
	sink := func() *cli.App {
		return cli.NewSink(cli.Info{Name: "null-sink", Description: "A sink."},
			func(o *vaultOptions, env connector.Env) (connector.Sink, error) { return nil, nil })
	}
	cfg := write(t, "c.yaml", `apiVersion: 0.2.0
meta:
  version: 0.1.0
  name: my-archive
  type: null-sink
  topic:
    meta:
      name: orders
    partition:
      count: 3
  consumer:
    id: archivers
    offset:
      start: beginning
null:
  wait: 2s
transforms:
  - uses: filter
    with:
      expr: .amount > 50
  - uses: culvert/map@0.1.0
    with:
      expr: .priority = 1
`)
	m, out := configJSON(t, sink(), "--config", cfg, "--bus", "kafka://k:9092")
	if m["topic"] != "orders" || m["bus_partitions"] != 3.0 || m["group"] != "archivers" || m["from"] != "beginning" || m["wait"] != "2s" {
		t.Errorf("config %v", m)
	}
	if got := strings.Join(strings.Fields(out), ""); !strings.Contains(got, `"transforms":[{"filter":".amount>50"},{"map":".priority=1"}]`) {
		t.Errorf("transforms:\n%s", out)
	}
	// A SmartModule Culvert cannot run, and Fluvio settings it has no
	// option for, are exit-2 errors naming them.
	bad := write(t, "bad.yaml", `apiVersion: 0.2.0
meta:
  type: null-sink
  topic: {meta: {name: orders}, retention: {time: 2m}}
  consumer: {id: a, max_bytes: 1 MB}
transforms:
  - uses: infinyon/json-sql
    with: {mapping: {table: t}}
`)
	code, _, e := runWith(t, sink(), nil, "validate", "--config", bad)
	for _, want := range []string{"transforms[0].uses: infinyon/json-sql is not a transform Culvert can run", "meta.topic.retention: a Fluvio setting that Culvert does not support", "meta.consumer.max_bytes"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q:\n%s", want, e)
		}
	}
	if code != 2 {
		t.Errorf("exit %d", code)
	}
	// A topic given twice is a problem, and a source has no consumer.
	twice := write(t, "t.yaml", "apiVersion: 0.2.0\nmeta: {type: test-source, topic: {meta: {name: a}}, consumer: {id: x}}\n")
	if code, _, e := run(t, nil, "validate", "--config", twice); code != 2 || !strings.Contains(e, "meta.consumer: a source has no consumer settings") {
		t.Errorf("exit %d: %s", code, e)
	}
}
