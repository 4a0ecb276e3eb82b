package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
)

// write writes content to a new file in a test directory and returns its path.
func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// configJSON runs the config subcommand and decodes its output.
func configJSON(t *testing.T, app *cli.App, args ...string) (map[string]any, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := app.Main(context.Background(), append([]string{"config"}, args...), &out, &errOut)
	if code != 0 {
		t.Fatalf("config %v: exit %d, %s", args, code, errOut.String())
	}
	return flatten(t, out.String()), out.String()
}

// flatten returns the options of a config output as one object: meta's
// and the section's, with the transforms as a list of one-key objects.
func flatten(t *testing.T, out string) map[string]any {
	t.Helper()
	doc := map[string]any{}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("config output %q: %v", out, err)
	}
	m := map[string]any{}
	for k, v := range doc {
		if sub, ok := v.(map[string]any); ok {
			for k2, v2 := range sub {
				m[k2] = v2
			}
		} else {
			m[k] = v
		}
	}
	return m
}

const baseYAML = `apiVersion: 0.1.0
meta:
  name: lines-1
  type: test-source
  topic: from-file
test:
  count: 7
  interval: 20s
  lines: ["one", "two"]
`

func TestConfigPrecedenceFlagEnvFileDefault(t *testing.T) {
	cfg := write(t, "c.yaml", baseYAML)
	busDir := "--bus=" + t.TempDir()
	m, _ := configJSON(t, newApp(), "--config", cfg, "--topic", "from-flag")
	if m["topic"] != "from-flag" || m["count"] != 7.0 || m["interval"] != "20s" || m["batch_size"] != 5000.0 {
		t.Fatalf("config output %v", m)
	}
	if code, _, e := run(t, nil, "--config", cfg, busDir); code != 0 || seen.Count != 7 || seen.Interval.D() != 20*time.Second || seen.Mode != "a" || len(seen.Lines) != 2 {
		t.Fatalf("file beats default: exit %d %s, %+v", code, e, seen)
	}
	if code, _, e := run(t, map[string]string{"CULVERT_TEST_SOURCE_COUNT": "4"}, "--config", cfg, busDir); code != 0 || seen.Count != 4 || seen.Interval.D() != 20*time.Second {
		t.Fatalf("env beats file: exit %d %s, %+v", code, e, seen)
	}
	if code, _, e := run(t, map[string]string{"CULVERT_TEST_SOURCE_COUNT": "4"}, "--config", cfg, busDir, "--count", "5"); code != 0 || seen.Count != 5 {
		t.Fatalf("flag beats env: exit %d %s, %+v", code, e, seen)
	}
	// The config file may also be named by CULVERT_CONFIG.
	t.Setenv("CULVERT_CONFIG", cfg)
	if m, _ := configJSON(t, newApp()); m["topic"] != "from-file" || m["count"] != 4.0 || m["interval"] != "20s" {
		t.Fatalf("CULVERT_CONFIG: %v", m)
	}
}

func TestConfigYAMLAndJSONAreTheSame(t *testing.T) {
	y := write(t, "c.yaml", baseYAML+"transforms:\n  - filter: '.x > 1'\n  - map: '.y = 2'\n")
	j := write(t, "c.json", `{
	"apiVersion": "0.1.0",
	"meta": {"name": "lines-1", "type": "test-source", "topic": "from-file"},
	"test": {"count": 7, "interval": "20s", "lines": ["one", "two"]},
	"transforms": [{"filter": ".x > 1"}, {"map": ".y = 2"}]
}`)
	_, a := configJSON(t, newApp(), "--config", y)
	_, b := configJSON(t, newApp(), "--config", j)
	if a != b {
		t.Fatalf("YAML gives\n%s\nJSON gives\n%s", a, b)
	}
	compact := strings.Join(strings.Fields(a), "")
	for _, want := range []string{`"count":7`, `"transforms":[{"filter":".x>1"},{"map":".y=2"}]`, `"lines":["one","two"]`} {
		if !strings.Contains(compact, want) {
			t.Errorf("config output lacks %s:\n%s", want, a)
		}
	}
	// Every option is shown, in declaration order, even when empty.
	keys := []string{}
	for _, l := range strings.Split(a, "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			keys = append(keys, strings.Trim(k, `"`))
		}
	}
	if !strings.Contains(strings.Join(keys, ","), "apiVersion,meta,name,type,topic,bus,") ||
		!strings.Contains(strings.Join(keys, ","), ",test,lines,interval,mode,count,transforms") || !strings.Contains(a, `"dlq_topic": ""`) {
		t.Errorf("keys %v", keys)
	}
}

// countRecords returns how many records each topic has on the bus in dir.
func countRecords(t *testing.T, dir string, topics ...string) map[string]int {
	t.Helper()
	b, err := bus.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := map[string]int{}
	for _, topic := range topics {
		sub, err := b.Subscribe(context.Background(), topic, "check", bus.SubscribeOptions{Start: bus.StartBeginning})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		msgs, _ := sub.Poll(ctx)
		cancel()
		out[topic] = len(msgs)
	}
	return out
}

func TestConfigTransformsKeepTheFileOrder(t *testing.T) {
	dir := t.TempDir()
	head := "meta: {type: test-source}\ntest: {lines: ['{\"x\":1}']}\n"
	mapThenFilter := write(t, "a.yaml", head+"transforms:\n  - map: '.x = 5'\n  - filter: '.x > 2'\n")
	filterThenMap := write(t, "b.yaml", head+"transforms:\n  - filter: '.x > 2'\n  - map: '.x = 5'\n")
	for topic, cfg := range map[string]string{"a": mapThenFilter, "b": filterThenMap} {
		if code, _, e := run(t, nil, "--config", cfg, "--bus", dir, "--topic", topic); code != 0 {
			t.Fatal(e)
		}
	}
	// A transform flag replaces the file's transforms: the file's filter is gone.
	if code, _, e := run(t, nil, "--config", filterThenMap, "--bus", dir, "--topic", "c", "--map", ".x = 0"); code != 0 {
		t.Fatal(e)
	}
	// So does a transform from the environment.
	if code, _, e := run(t, map[string]string{"CULVERT_MAP": ".x = 0"}, "--config", filterThenMap, "--bus", dir, "--topic", "d"); code != 0 {
		t.Fatal(e)
	}
	got := countRecords(t, dir, "a", "b", "c", "d")
	if got["a"] != 1 || got["b"] != 0 || got["c"] != 1 || got["d"] != 1 {
		t.Fatalf("records per topic %v, want a:1 b:0 c:1 d:1", got)
	}
}

func TestConfigFileErrorsNameTheirPathAllAtOnce(t *testing.T) {
	cases := []struct {
		name, file string
		want       []string
	}{
		{"meta.type", "meta: {type: file-sink, topic: t}\n", []string{"meta.type: is file-sink, this is test-source"}},
		{"missing type", "meta: {topic: t}\n", []string{"meta.type: missing"}},
		{"unknown keys", "meta: {type: test-source, topic: t, colour: red}\ntest: {nope: 1}\nextra: 1\n",
			[]string{"meta.colour: unknown key", "test.nope: unknown option", "extra: unknown key"}},
		{"shared under section", "meta: {type: test-source}\ntest: {topic: t}\n", []string{"test.topic: unknown option (shared options go under meta)"}},
		{"wrong types", "meta: {type: test-source, topic: [t], batch_size: many}\ntest: {count: three, interval: soon, lines: {a: 1}}\n",
			[]string{"meta.topic: must be a string", "meta.batch_size: must be an integer", "test.count: must be an integer",
				"test.interval: must be a duration like 10s", "test.lines: must be a list of strings"}},
		{"bad transform", "meta: {type: test-source, topic: t}\ntransforms: [{mapp: .a}, {map: .a, filter: .b}]\n",
			[]string{"transforms[0].mapp: unknown transform", "transforms[1]: must be one of"}},
		{"bad jq", "meta: {type: test-source, topic: t}\ntransforms: [{map: '.a >'}, {filter: .b}, {arraymap: 'nosuch(1)'}]\n",
			[]string{"transforms[0].map: unexpected EOF", "transforms[2].arraymap: function not defined: nosuch/1"}},
		{"transform under meta", "meta: {type: test-source, topic: t, map: .a}\n", []string{"meta.map: transforms go in the transforms list"}},
		{"bad api version", "apiVersion: 9\nmeta: {type: test-source, topic: t}\n", []string{"apiVersion: must be 0.1.0 (Culvert's layout) or 0.2.0 (Fluvio's)"}},
		{"not yaml", "meta: [\n", []string{"--config"}},
		{"schema", "meta: {type: test-source, topic: t, on_error: ignore}\ntest: {count: 0}\n", []string{"test.count: minimum", "meta.on_error: value must be one of"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := write(t, "c.yaml", c.file)
			code, _, errOut := run(t, nil, "--config", cfg, "--bus", t.TempDir())
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// vaultOptions has a secret option.
type vaultOptions struct {
	Token string   `json:"token,omitempty" culvert:"secret" jsonschema_description:"An API token."`
	Lines []string `json:"lines,omitempty" jsonschema_description:"Lines."`
	Wait  string   `json:"wait" jsonschema:"default=1s,format=duration" jsonschema_description:"A wait."`
}

type emptySource struct{}

func (emptySource) Open(context.Context, []byte) error { return nil }
func (emptySource) Close() error                       { return nil }
func (emptySource) Read(context.Context) (connector.Batch, error) {
	return connector.Batch{}, io.EOF
}

var seenVault *vaultOptions

func newVault() *cli.App {
	return cli.NewSource(cli.Info{Name: "vault-source", Description: "A source with a secret."},
		func(o *vaultOptions, env connector.Env) (connector.Source, error) {
			seenVault = o
			env.Log.Debug().Strs("lines", o.Lines).Str("token", o.Token).Msg("options")
			return emptySource{}, nil
		})
}

func runVault(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, newVault(), env, args...)
}

const vaultYAML = `meta:
  type: vault-source
  topic: v
  secrets:
    - name: API_TOKEN
vault:
  lines: ["Authorization: Bearer ${{ secrets.API_TOKEN }}", "plain"]
`

func TestSecretsAreSubstitutedFromFileOrEnvironment(t *testing.T) {
	cfg := write(t, "c.yaml", vaultYAML)
	secrets := write(t, "secrets.env", "# the API's token\n\nAPI_TOKEN=from-file-7f3a\nOTHER=x=y\n")
	busDir := "--bus=" + t.TempDir()
	if code, _, e := runVault(t, nil, "--config", cfg, "--secrets", secrets, busDir); code != 0 || seenVault.Lines[0] != "Authorization: Bearer from-file-7f3a" || seenVault.Lines[1] != "plain" {
		t.Fatalf("exit %d %s, %+v", code, e, seenVault)
	}
	// The environment beats the secrets file.
	if code, _, e := runVault(t, map[string]string{"API_TOKEN": "from-env-91c2"}, "--config", cfg, "--secrets", secrets, busDir); code != 0 || seenVault.Lines[0] != "Authorization: Bearer from-env-91c2" {
		t.Fatalf("exit %d %s, %+v", code, e, seenVault)
	}
}

func TestSecretUndeclaredOrMissingIsNamed(t *testing.T) {
	undeclared := write(t, "u.yaml", "meta: {type: vault-source, topic: v}\nvault: {lines: ['${{ secrets.NOPE }}']}\n")
	code, _, e := runVault(t, map[string]string{"NOPE": "value-of-nope-55"}, "--config", undeclared)
	if code != 2 || !strings.Contains(e, "vault.lines[0]: secret NOPE is not declared in meta.secrets") || strings.Contains(e, "value-of-nope-55") {
		t.Fatalf("undeclared: exit %d, %s", code, e)
	}
	missing := write(t, "m.yaml", vaultYAML)
	code, _, e = runVault(t, nil, "--config", missing, "--secrets", write(t, "s.env", "OTHER=1\n"))
	if code != 2 || !strings.Contains(e, "meta.secrets: API_TOKEN is declared but set neither in the secrets file nor in the environment") {
		t.Fatalf("missing: exit %d, %s", code, e)
	}
	code, _, e = runVault(t, nil, "--config", missing, "--secrets", write(t, "s.env", "API_TOKEN=ok\nthis line has no equals sign secret-ish\n"))
	if code != 2 || !strings.Contains(e, "s.env:2: want NAME=value") || strings.Contains(e, "secret-ish") {
		t.Fatalf("bad secrets file: exit %d, %s", code, e)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	cfg := write(t, "c.yaml", vaultYAML)
	env := map[string]string{"API_TOKEN": `tok"<en>-3b9d`}
	// config: the secret option and the secret values are redacted.
	code, out, e := runVault(t, env, "config", "--config", cfg, "--token", "flag-token-8e1f")
	if code != 0 {
		t.Fatal(e)
	}
	m := flatten(t, out)
	if m["token"] != cli.Redacted || m["lines"].([]any)[0] != "Authorization: Bearer ${{ secrets.API_TOKEN }}" {
		t.Errorf("config output not redacted:\n%s", out)
	}
	for _, s := range []string{"flag-token-8e1f", "3b9d", "<en>"} {
		if strings.Contains(out, s) {
			t.Errorf("config output shows %q:\n%s", s, out)
		}
	}
	// metadata marks the option writeOnly and shows no value.
	code, out, _ = runVault(t, env, "metadata")
	if code != 0 || !strings.Contains(out, `"writeOnly": true`) || strings.Contains(out, "3b9d") {
		t.Errorf("metadata: exit %d\n%s", code, out)
	}
	// Debug logs show neither the substituted secret nor the secret option.
	code, _, e = runVault(t, env, "--config", cfg, "--bus", t.TempDir(), "--token", "flag-token-8e1f", "--log-level", "debug", "--log-format", "json")
	if code != 0 || !strings.Contains(e, `"options"`) || !strings.Contains(e, cli.Redacted) {
		t.Fatalf("exit %d, %s", code, e)
	}
	for _, s := range []string{"flag-token-8e1f", "3b9d"} {
		if strings.Contains(e, s) {
			t.Errorf("logs show %q:\n%s", s, e)
		}
	}
}

func TestSecretNeverInStderrOfAFailingRun(t *testing.T) {
	// The secret is a value that fails validation: the error names the key, not the value.
	cfg := write(t, "c.yaml", "meta: {type: test-source, topic: t, secrets: [{name: TOK}]}\ntest: {interval: '${{ secrets.TOK }}', mode: '${{ secrets.TOK }}'}\n")
	code, _, e := run(t, map[string]string{"TOK": "hunter2-c4d1"}, "--config", cfg, "--bus", t.TempDir())
	if code != 2 || !strings.Contains(e, "test.interval: must be a duration like 10s") || strings.Contains(e, "hunter2") {
		t.Fatalf("exit %d, stderr %q", code, e)
	}
	// A secret option with a bad value given by flag is not shown either.
	code, _, e = runVault(t, nil, "--topic", "t", "--token", "tok-5e6f", "--wait", "tok-5e6f")
	if code != 2 || !strings.Contains(e, "--wait") || strings.Contains(e, "tok-5e6f") {
		t.Fatalf("exit %d, stderr %q", code, e)
	}
}

func TestValidateExitCodes(t *testing.T) {
	cfg := write(t, "c.yaml", baseYAML)
	seen = nil
	code, out, e := run(t, nil, "validate", "--config", cfg)
	if code != 0 || strings.TrimSpace(out) != "valid" || seen != nil {
		t.Fatalf("valid: exit %d, out %q, stderr %q, ran %v", code, out, e, seen != nil)
	}
	// validate takes the same flags and environment as a run.
	code, out, e = run(t, map[string]string{"CULVERT_TEST_SOURCE_MODE": "b"}, "validate", "--config", cfg, "--count", "6", "--filter", ".a >")
	if code != 2 || strings.Contains(out, "valid") || !strings.Contains(e, "--count: must be at most 5 in mode b") || !strings.Contains(e, "--filter") {
		t.Fatalf("invalid: exit %d, out %q, stderr %q", code, out, e)
	}
	code, _, e = run(t, nil, "validate", "--topic", "t", "--count", "0", "--nope")
	if code != 2 || !strings.Contains(e, "--nope") {
		t.Fatalf("unknown flag: exit %d, %q", code, e)
	}
	// Each problem on its own line.
	bad := write(t, "bad.yaml", "meta: {type: test-source, topic: t}\ntest: {count: x, mode: [a]}\n")
	code, _, e = run(t, nil, "validate", "--config", bad)
	if code != 2 || !strings.Contains(e, "test.count: must be an integer\n") || !strings.Contains(e, "test.mode: must be a string\n") {
		t.Fatalf("exit %d, %q", code, e)
	}
	if code, _, _ := run(t, nil, "validate"); code != 2 {
		t.Fatalf("no topic: exit %d", code)
	}
}

func TestSinkGroupDefaultsToTheInstanceName(t *testing.T) {
	app := cli.NewSink(cli.Info{Name: "null-sink", Description: "A sink."},
		func(o *struct{}, env connector.Env) (connector.Sink, error) { return nil, nil })
	cfg := write(t, "c.yaml", "meta: {name: orders-archive, type: null-sink, topic: orders}\n")
	if m, _ := configJSON(t, app, "--config", cfg); m["group"] != "orders-archive" {
		t.Fatalf("group %v", m["group"])
	}
	if m, _ := configJSON(t, app, "--config", cfg, "--group", "g"); m["group"] != "g" {
		t.Fatalf("group %v", m["group"])
	}
	cfg = write(t, "c.yaml", "meta: {name: orders-archive, type: null-sink, topic: orders, group: shared}\n")
	if m, _ := configJSON(t, app, "--config", cfg); m["group"] != "shared" {
		t.Fatalf("group %v", m["group"])
	}
}

func TestConfigYAMLAnchorsAndValueErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("meta:\n  type: test-source\n  topic: &t orders\ntest:\n  lines: [*t]\n  count: many\n"), 0o644)
	code, _, errOut := run(t, nil, "validate", "--config", path)
	if code != 2 || strings.Contains(errOut, "lines") || !strings.Contains(errOut, "test.count") || strings.Contains(errOut, `"--v"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestConfigAliasesCostOnlyTheDocumentsSize: anchors that name each other
// many times over (billion laughs), or their own parent, are read in time
// proportional to the file, and the file is refused with exit 2.
func TestConfigAliasesCostOnlyTheDocumentsSize(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0: &l0 [x, x]\n")
	for i := 1; i <= 60; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [*l%d, *l%d]\n", i, i, i-1, i-1)
	}
	b.WriteString("meta: &m {type: test-source, topic: t, dlq_topic: *m}\n")
	code, _, e := run(t, nil, "validate", "--config", write(t, "laughs.yaml", b.String()))
	if code != 2 || !strings.Contains(e, "l60: unknown key") || !strings.Contains(e, "meta.dlq_topic: must be a string") {
		t.Fatalf("exit %d: %s", code, e)
	}
}
