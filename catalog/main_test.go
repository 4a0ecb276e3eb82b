package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// sourceMeta is the metadata of a fake source. Its properties are not in
// alphabetical order, so the tests see whether that order is kept.
const sourceMeta = `{
  "name": "zeta-source",
  "direction": "source",
  "version": "1.2.3",
  "description": "Reads <things> & more | pipes.",
  "schema": {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
      "topic": {"type": "string", "description": "Topic to publish to."},
      "poll_interval": {"type": "string", "default": "5s", "description": "How often to poll."},
      "format": {"type": "string", "enum": ["json", "raw"], "default": "json", "description": "Record format: a | b."},
      "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags to add."},
      "batch_size": {"type": "integer", "minimum": 1, "default": 100, "description": "Records per batch."}
    },
    "required": ["topic"],
    "additionalProperties": false
  }
}`

// sinkMeta is the metadata of a fake sink.
const sinkMeta = `{"name":"alpha-sink","direction":"sink","version":"0.1.0","description":"Writes records to a file.","schema":{"type":"object","required":["path","topic"],"properties":{"path":{"type":"string","description":"File to write."},"topic":{"type":"string","description":"Topic to consume."}}}}`

// writeConnector writes a shell script named name into dir that prints meta
// for `metadata` and fails for anything else.
func writeConnector(t *testing.T, dir, name, meta string) {
	t.Helper()
	script := "#!/bin/sh\n" +
		"[ \"$1\" = metadata ] || { echo \"usage: $0 metadata\" >&2; exit 2; }\n" +
		"cat <<'EOF'\n" + meta + "\nEOF\n"
	writeScript(t, dir, name, script)
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fixture returns a bin directory holding the fake source and sink.
func fixture(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("fake connectors are shell scripts")
	}
	bin := t.TempDir()
	writeConnector(t, bin, "zeta-source", sourceMeta)
	writeConnector(t, bin, "alpha-sink", sinkMeta)
	return bin
}

// runCatalog runs the command and returns its exit code, stdout and stderr.
func runCatalog(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// generate runs the command on bin into a new directory and returns it.
func generate(t *testing.T, bin string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "catalog")
	if code, _, stderr := runCatalog(t, "-bin", bin, "-out", out); code != 0 {
		t.Fatalf("generate: exit %d, stderr:\n%s", code, stderr)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCatalogJSON(t *testing.T) {
	bin := fixture(t)
	out := generate(t, bin)
	got := readFile(t, filepath.Join(out, "catalog.json"))

	var cat struct {
		Connectors []Metadata `json:"connectors"`
	}
	if err := json.Unmarshal([]byte(got), &cat); err != nil {
		t.Fatalf("catalog.json is not JSON: %v\n%s", err, got)
	}
	var names []string
	for _, c := range cat.Connectors {
		names = append(names, c.Name)
	}
	if want := []string{"alpha-sink", "zeta-source"}; !slices.Equal(names, want) {
		t.Errorf("connectors = %v, want %v", names, want)
	}
	if v := cat.Connectors[1].Version; v != "1.2.3" {
		t.Errorf("zeta-source version = %q, want 1.2.3", v)
	}

	wantStart := "{\n  \"connectors\": [\n    {\n      \"name\": \"alpha-sink\",\n      \"direction\": \"sink\",\n      \"version\": \"0.1.0\",\n"
	if !strings.HasPrefix(got, wantStart) {
		t.Errorf("catalog.json does not start with\n%s\ngot:\n%s", wantStart, got)
	}
	if !strings.HasSuffix(got, "]\n}\n") || strings.HasSuffix(got, "\n\n") {
		t.Errorf("catalog.json should end with exactly one newline:\n%q", got[max(0, len(got)-20):])
	}
	// The sink's schema was printed on one line; it must come out indented.
	if !strings.Contains(got, "\n      \"schema\": {\n        \"type\": \"object\",\n        \"required\": [\n") {
		t.Errorf("sink schema not re-indented in its own key order:\n%s", got)
	}
	// Key order of the schema is the connector's, not alphabetical.
	if i, j := strings.Index(got, `"topic": {`), strings.Index(got, `"batch_size": {`); i < 0 || j < 0 || i > j {
		t.Errorf("schema properties reordered: topic at %d, batch_size at %d", i, j)
	}
	// No HTML escaping of the description.
	if !strings.Contains(got, `"description": "Reads <things> & more | pipes."`) {
		t.Errorf("description escaped or missing:\n%s", got)
	}

	again := readFile(t, filepath.Join(generate(t, bin), "catalog.json"))
	if again != got {
		t.Errorf("two runs differ:\n%s\n---\n%s", got, again)
	}
	againREADME := readFile(t, filepath.Join(generate(t, bin), "README.md"))
	if againREADME != readFile(t, filepath.Join(out, "README.md")) {
		t.Error("two runs give different README.md")
	}
}

func TestREADME(t *testing.T) {
	out := generate(t, fixture(t))
	got := readFile(t, filepath.Join(out, "README.md"))

	for _, want := range []string{
		"# Connector catalog\n",
		"generated by `make catalog`",
		"Do not edit it by hand.",
		"| connector | direction | description |\n|---|---|---|\n" +
			"| [alpha-sink](#alpha-sink) | sink | Writes records to a file. |\n" +
			"| [zeta-source](#zeta-source) | source | Reads <things> & more \\| pipes. |\n",
		"| [zeta-source](#zeta-source) | source | Reads <things> & more \\| pipes. |\n\n| tool | what it does |\n|---|---|\n| [culvert](../README.md#operating-topics) | Operates the bus",
		"\n## alpha-sink\n\nWrites records to a file.\n",
		"\n## zeta-source\n\nReads <things> & more | pipes.\n",
		"| option | flag | type | default | required | description |\n|---|---|---|---|---|---|\n",
		"| `path` | `--path` | string |  | yes | File to write. |\n",
		"| `topic` | `--topic` | string |  | yes | Topic to publish to. |\n",
		"| `poll_interval` | `--poll-interval` | string | `\"5s\"` |  | How often to poll. |\n",
		"| `format` | `--format` | string (one of `\"json\"`, `\"raw\"`) | `\"json\"` |  | Record format: a \\| b. |\n",
		"| `tags` | `--tags` | array of string |  |  | Tags to add. |\n",
		"| `batch_size` | `--batch-size` | integer | `100` |  | Records per batch. |\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("README.md lacks\n%s\ngot:\n%s", want, got)
		}
	}

	// Options keep the schema's order.
	var order []int
	for _, opt := range []string{"`topic`", "`poll_interval`", "`format`", "`tags`", "`batch_size`"} {
		order = append(order, strings.Index(got, "| "+opt+" |"))
	}
	if !slices.IsSorted(order) {
		t.Errorf("options out of schema order: positions %v", order)
	}
	if strings.Index(got, "## alpha-sink") > strings.Index(got, "## zeta-source") {
		t.Error("connector sections not sorted by name")
	}
	if !strings.HasSuffix(got, "|\n") {
		t.Errorf("README.md should end with a table row and one newline: %q", got[len(got)-10:])
	}
}

func TestCheck(t *testing.T) {
	bin := fixture(t)
	out := generate(t, bin)

	code, stdout, stderr := runCatalog(t, "-bin", bin, "-out", out, "-check")
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("check after generate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	readme := filepath.Join(out, "README.md")
	orig := readFile(t, readme)
	if err := os.WriteFile(readme, []byte(orig+"edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCatalog(t, "-bin", bin, "-out", out, "-check")
	if code != 1 {
		t.Errorf("check after editing README.md: exit %d, want 1", code)
	}
	for _, want := range []string{readme + " is stale", "run `make catalog` and commit the result"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "catalog.json") {
		t.Errorf("check blames catalog.json, which is fine:\n%s", stderr)
	}
	if readFile(t, readme) != orig+"edited by hand\n" {
		t.Error("-check wrote README.md")
	}

	// A changed connector makes the committed catalog stale too.
	if err := os.WriteFile(readme, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	writeConnector(t, bin, "alpha-sink", strings.Replace(sinkMeta, "0.1.0", "0.2.0", 1))
	code, _, stderr = runCatalog(t, "-bin", bin, "-out", out, "-check")
	if code != 1 || !strings.Contains(stderr, filepath.Join(out, "catalog.json")+" is stale") {
		t.Errorf("check after connector change: exit %d, stderr:\n%s", code, stderr)
	}

	// A missing file is reported as missing.
	if err := os.Remove(filepath.Join(out, "catalog.json")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCatalog(t, "-bin", bin, "-out", out, "-check")
	if code != 1 || !strings.Contains(stderr, filepath.Join(out, "catalog.json")+" is missing") {
		t.Errorf("check with catalog.json removed: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestInvalidMetadata(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("fake connectors are shell scripts")
	}
	tests := []struct {
		name   string // test and binary name
		meta   string // what the binary prints
		script string // if set, the whole script instead of one printing meta
		want   string // in the error, after "catalog: <name>: "
	}{
		{
			name: "badtype-source",
			meta: `{"name":"badtype-source","direction":"source","version":"1","description":"d","schema":{"type":12,"properties":{"a":{"type":"string"}}}}`,
			want: "schema is not a valid JSON Schema (draft 2020-12): at '/type'",
		},
		{
			name: "badprop-source",
			meta: `{"name":"badprop-source","direction":"source","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"type":"text"}}}}`,
			want: "schema is not a valid JSON Schema (draft 2020-12): at '/properties/a/type'",
		},
		{
			name: "direction-source",
			meta: `{"name":"direction-source","direction":"both","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"type":"string"}}}}`,
			want: "metadata: at '/direction': value must be one of 'source', 'sink'",
		},
		{
			name: "mismatch-sink",
			meta: `{"name":"other-sink","direction":"sink","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"type":"string"}}}}`,
			want: `metadata name "other-sink" does not match the binary name "mismatch-sink"`,
		},
		{
			name: "wrongway-sink",
			meta: `{"name":"wrongway-sink","direction":"source","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"type":"string"}}}}`,
			want: `direction "source" does not match the name "wrongway-sink"`,
		},
		{
			name: "noversion-sink",
			meta: `{"name":"noversion-sink","direction":"sink","description":"d","schema":{"type":"object","properties":{"a":{"type":"string"}}}}`,
			want: "metadata: missing property 'version'",
		},
		{
			name: "extra-sink",
			meta: `{"name":"extra-sink","direction":"sink","version":"1","description":"d","options":{},"schema":{"type":"object","properties":{"a":{"type":"string"}}}}`,
			want: "metadata: additional properties 'options' not allowed",
		},
		{
			name: "Upper-sink",
			meta: `{"name":"Upper-sink","direction":"sink","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"type":"string"}}}}`,
			want: "metadata: at '/name': '",
		},
		{
			name: "notobject-sink",
			meta: `{"name":"notobject-sink","direction":"sink","version":"1","description":"d","schema":{"type":"string"}}`,
			want: `schema: type must be "object"`,
		},
		{
			name: "noprops-sink",
			meta: `{"name":"noprops-sink","direction":"sink","version":"1","description":"d","schema":{"type":"object","properties":{}}}`,
			want: "schema: properties must list at least one option",
		},
		{
			name: "required-sink",
			meta: `{"name":"required-sink","direction":"sink","version":"1","description":"d","schema":{"type":"object","required":["b"],"properties":{"a":{"type":"string"}}}}`,
			want: `schema: required option "b" is not in properties`,
		},
		{
			name: "draft7-sink",
			meta: `{"name":"draft7-sink","direction":"sink","version":"1","description":"d","schema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"a":{"type":"string"}}}}`,
			want: `schema: $schema is "http://json-schema.org/draft-07/schema#"`,
		},
		{
			name: "remoteref-sink",
			meta: `{"name":"remoteref-sink","direction":"sink","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"$ref":"https://example.com/a.json"}}}}`,
			want: `compiling schema: failing loading "https://example.com/a.json": schema references outside documents are not allowed`,
		},
		{
			name: "fileref-sink",
			meta: `{"name":"fileref-sink","direction":"sink","version":"1","description":"d","schema":{"type":"object","properties":{"a":{"$ref":"file:///etc/hostname"}}}}`,
			want: `compiling schema: failing loading "file:///etc/hostname": schema references outside documents are not allowed`,
		},
		{
			name: "notjson-sink",
			meta: `this is not json`,
			want: "metadata is not JSON",
		},
		{
			name:   "crash-sink",
			script: "#!/bin/sh\necho 'error: cannot start' >&2\nexit 3\n",
			want:   "running metadata: exit status 3: error: cannot start",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			writeConnector(t, bin, "alpha-sink", sinkMeta)
			if tt.script != "" {
				writeScript(t, bin, tt.name, tt.script)
			} else {
				writeConnector(t, bin, tt.name, tt.meta)
			}
			out := filepath.Join(t.TempDir(), "catalog")

			code, _, stderr := runCatalog(t, "-bin", bin, "-out", out)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if want := "catalog: " + tt.name + ": " + tt.want; !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks\n%s\ngot:\n%s", want, stderr)
			}
			if strings.Contains(stderr, "alpha-sink") {
				t.Errorf("the valid connector is blamed:\n%s", stderr)
			}
			if lines := strings.Count(stderr, "\n"); lines != 1 {
				t.Errorf("want one line of error, got %d:\n%s", lines, stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output written despite the error (stat: %v)", err)
			}
		})
	}
}

func TestAllFailuresReported(t *testing.T) {
	bin := fixture(t)
	writeConnector(t, bin, "one-source", strings.ReplaceAll(sourceMeta, "zeta-source", "one-source")+"junk")
	writeConnector(t, bin, "two-sink", strings.ReplaceAll(sinkMeta, `"direction":"sink"`, `"direction":"up"`))
	code, _, stderr := runCatalog(t, "-bin", bin, "-out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "catalog: one-source: ") || !strings.Contains(stderr, "catalog: two-sink: ") {
		t.Errorf("exit %d, want 1 and both connectors named:\n%s", code, stderr)
	}
}

func TestDiscovery(t *testing.T) {
	bin := fixture(t)
	// Not executable, not a connector name, a directory: all ignored.
	if err := os.WriteFile(filepath.Join(bin, "notes-source"), []byte("#!/bin/sh\nexit 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeScript(t, bin, "helper", "#!/bin/sh\nexit 1\n")
	writeScript(t, bin, "zeta-source.sh", "#!/bin/sh\nexit 1\n")
	if err := os.Mkdir(filepath.Join(bin, "dir-sink"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A link to a connector counts.
	if err := os.Symlink(filepath.Join(bin, "alpha-sink"), filepath.Join(bin, "link-sink")); err != nil {
		t.Fatal(err)
	}
	names, err := findConnectors(bin)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alpha-sink", "link-sink", "zeta-source"}; !slices.Equal(names, want) {
		t.Errorf("findConnectors = %v, want %v", names, want)
	}
}

func TestNoConnectors(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, bin, "helper", "#!/bin/sh\n")
	code, _, stderr := runCatalog(t, "-bin", bin, "-out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "catalog: no connectors in "+bin) {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}

	code, _, stderr = runCatalog(t, "-bin", filepath.Join(bin, "missing"), "-out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "reading connector directory") {
		t.Errorf("missing -bin: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestEnvironmentIsEmpty(t *testing.T) {
	bin := fixture(t)
	t.Setenv("CATALOG_TEST_SECRET", "leaked")
	meta := strings.ReplaceAll(sinkMeta, "alpha-sink", "env-sink")
	writeScript(t, bin, "env-sink", "#!/bin/sh\n"+
		"[ -z \"$CATALOG_TEST_SECRET\" ] || { echo 'environment leaked' >&2; exit 1; }\n"+
		"[ -n \"$PATH\" ] || { echo 'no PATH' >&2; exit 1; }\n"+
		"cat <<'EOF'\n"+meta+"\nEOF\n")
	if code, _, stderr := runCatalog(t, "-bin", bin, "-out", t.TempDir()); code != 0 {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestTimeout(t *testing.T) {
	bin := fixture(t)
	writeScript(t, bin, "slow-sink", "#!/bin/sh\nexec sleep 30\n")
	start := time.Now()
	_, err := collect(context.Background(), bin, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "slow-sink: running metadata: timed out after 300ms") {
		t.Errorf("err = %v, want a timeout naming slow-sink", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s, the timeout did not stop the connector", d)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}} {
		if code, _, _ := runCatalog(t, args...); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
	if code, _, _ := runCatalog(t, "-h"); code != 0 {
		t.Errorf("run(-h) = %d, want 0", code)
	}
}

func TestTypeName(t *testing.T) {
	root := json.RawMessage(`{"$defs":{"Level":{"type":"string","enum":["debug","info"]}}}`)
	tests := []struct {
		schema string
		want   string
	}{
		{`{"type":"string"}`, "string"},
		{`{"type":["integer","null"]}`, "integer or null"},
		{`{"type":"array","items":{"type":"integer"}}`, "array of integer"},
		{`{"type":"array","items":{"type":"string","enum":["a","b"]}}`, "array of string (one of `\"a\"`, `\"b\"`)"},
		{`{"type":"array"}`, "array"},
		{`{"enum":[1,2]}`, "one of `1`, `2`"},
		{`{"const":"x"}`, "one of `\"x\"`"},
		{`{"$ref":"#/$defs/Level"}`, "string (one of `\"debug\"`, `\"info\"`)"},
		{`{"oneOf":[{"type":"string"},{"type":"integer"}]}`, "string or integer"},
		{`{}`, "any"},
		{`true`, "any"},
	}
	for _, tt := range tests {
		opts, err := options(root, []member{{key: "x", value: json.RawMessage(tt.schema)}}, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.schema, err)
			continue
		}
		if got := opts[0].typ; got != tt.want {
			t.Errorf("type of %s = %q, want %q", tt.schema, got, tt.want)
		}
	}
}

func TestCode(t *testing.T) {
	for in, want := range map[string]string{
		`"a"`:   "`\"a\"`",
		"a`b":   "``a`b``",
		"`a":    "`` `a ``",
		"a``b`": "``` a``b` ```",
	} {
		if got := code(in); got != want {
			t.Errorf("code(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestObjectMembersRejectsDuplicates(t *testing.T) {
	if _, err := objectMembers(json.RawMessage(`{"a":1,"b":2,"a":3}`)); err == nil || !strings.Contains(err.Error(), `duplicate key "a"`) {
		t.Errorf("err = %v, want duplicate key", err)
	}
	ms, err := objectMembers(json.RawMessage(`{"b":{"x":[1]},"a":2}`))
	if err != nil || len(ms) != 2 || ms[0].key != "b" || string(ms[0].value) != `{"x":[1]}` || ms[1].key != "a" {
		t.Errorf("objectMembers = %v, %v", ms, err)
	}
}
