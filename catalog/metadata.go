package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// envelopeSchemaJSON is the JSON Schema of what `<connector> metadata` prints.
//
//go:embed envelope.schema.json
var envelopeSchemaJSON []byte

// envelopeSchemaURL is the $id of envelopeSchemaJSON.
const envelopeSchemaURL = "https://github.com/culvert-dev/culvert/catalog/envelope.schema.json"

// draft2020 is the meta-schema URL a connector's option schema may name in $schema.
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// Metadata is what `<connector> metadata` prints, and one entry of catalog.json.
// Schema is kept as the connector printed it, so its key order survives.
type Metadata struct {
	Name        string          `json:"name"`
	Direction   string          `json:"direction"`
	Version     string          `json:"version"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
}

// connector is a checked connector: its metadata and its options in the order
// its schema lists them.
type connector struct {
	meta    Metadata
	options []option
}

// connectorError is a problem with one connector.
type connectorError struct {
	name string
	err  error
}

// Error returns "<connector>: <problem>".
func (e *connectorError) Error() string { return e.name + ": " + e.err.Error() }

// Unwrap returns the problem.
func (e *connectorError) Unwrap() error { return e.err }

// connectorErrors lists every connector that failed, in name order.
type connectorErrors []*connectorError

// Error joins the errors with "; ".
func (es connectorErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// collect runs `metadata` on every connector binary in binDir and checks the
// answers. It returns the connectors sorted by name, or a connectorErrors
// naming every connector that failed.
func collect(ctx context.Context, binDir string, timeout time.Duration) ([]connector, error) {
	names, err := findConnectors(binDir)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no connectors in %s: expected executables named *-source or *-sink; build the connectors first", binDir)
	}
	envelope, err := compileEnvelopeSchema()
	if err != nil {
		return nil, err
	}
	absBin, err := filepath.Abs(binDir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", binDir, err)
	}

	var conns []connector
	var errs connectorErrors
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading metadata: %w", err)
		}
		c, err := loadConnector(ctx, filepath.Join(absBin, name), envelope, timeout)
		if err != nil {
			errs = append(errs, &connectorError{name: name, err: err})
			continue
		}
		conns = append(conns, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	slices.SortFunc(conns, func(a, b connector) int { return strings.Compare(a.meta.Name, b.meta.Name) })
	return conns, nil
}

// loadConnector runs `<path> metadata` and checks the answer.
func loadConnector(ctx context.Context, path string, envelope *jsonschema.Schema, timeout time.Duration) (connector, error) {
	out, err := fetchMetadata(ctx, path, timeout)
	if err != nil {
		return connector{}, err
	}
	return parseMetadata(filepath.Base(path), out, envelope)
}

// findConnectors returns the names of the executable regular files (or links
// to them) in dir whose names end in -source or -sink, sorted.
func findConnectors(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading connector directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, "-source") && !strings.HasSuffix(name, "-sink") {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("inspecting connector binary: %w", err)
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		names = append(names, name)
	}
	return names, nil // os.ReadDir sorts by name
}

// fetchMetadata runs `<path> metadata` with an environment holding only PATH
// and returns what it printed on stdout.
func fetchMetadata(ctx context.Context, path string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, path, "metadata")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second // do not wait forever on pipes held by grandchildren

	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("running metadata: timed out after %s", timeout)
		}
		if msg := firstLine(stderr.String()); msg != "" {
			return nil, fmt.Errorf("running metadata: %w: %s", err, msg)
		}
		return nil, fmt.Errorf("running metadata: %w", err)
	}
	return stdout.Bytes(), nil
}

// firstLine returns the first non-blank line of s, trimmed.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// compileEnvelopeSchema compiles the embedded envelope schema.
func compileEnvelopeSchema() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(envelopeSchemaJSON))
	if err != nil {
		return nil, fmt.Errorf("decoding embedded envelope schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(envelopeSchemaURL, doc); err != nil {
		return nil, fmt.Errorf("loading embedded envelope schema: %w", err)
	}
	sch, err := c.Compile(envelopeSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("compiling embedded envelope schema: %w", err)
	}
	return sch, nil
}

// parseMetadata checks what binary printed for `metadata`: the envelope
// against the envelope schema and the binary's name, then the option schema.
func parseMetadata(binary string, out []byte, envelope *jsonschema.Schema) (connector, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		return connector{}, fmt.Errorf("metadata is not JSON: %w", err)
	}
	if err := envelope.Validate(doc); err != nil {
		return connector{}, fmt.Errorf("metadata: %s", describe(err))
	}
	var meta Metadata
	if err := json.Unmarshal(out, &meta); err != nil {
		return connector{}, fmt.Errorf("decoding metadata: %w", err)
	}
	if meta.Name != binary {
		return connector{}, fmt.Errorf("metadata name %q does not match the binary name %q", meta.Name, binary)
	}
	if !strings.HasSuffix(meta.Name, "-"+meta.Direction) {
		return connector{}, fmt.Errorf("direction %q does not match the name %q", meta.Direction, meta.Name)
	}
	opts, err := checkOptionSchema(meta.Name, meta.Schema)
	if err != nil {
		return connector{}, err
	}
	return connector{meta: meta, options: opts}, nil
}

// checkOptionSchema checks that raw is a valid draft 2020-12 JSON Schema of an
// object with at least one property, and returns its options in order.
func checkOptionSchema(name string, raw json.RawMessage) ([]option, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decoding schema: %w", err)
	}
	if obj, ok := doc.(map[string]any); ok {
		if s, ok := obj["$schema"].(string); ok && strings.TrimSuffix(s, "#") != draft2020 {
			return nil, fmt.Errorf("schema: $schema is %q, want %q", s, draft2020)
		}
	}

	// The resource URL only names the document in errors and resolves
	// relative $refs; refuseLoader keeps the schema self-contained.
	url := "https://github.com/culvert-dev/culvert/catalog/connectors/" + name + ".schema.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("loading schema: %w", err)
	}
	if _, err := c.Compile(url); err != nil {
		var serr *jsonschema.SchemaValidationError
		if errors.As(err, &serr) {
			return nil, fmt.Errorf("schema is not a valid JSON Schema (draft 2020-12): %s", describe(serr.Err))
		}
		return nil, fmt.Errorf("compiling schema: %w", err)
	}

	var top struct {
		Type       any             `json:"type"`
		Properties json.RawMessage `json:"properties"`
		Required   []string        `json:"required"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("decoding schema: %w", err)
	}
	if top.Type != "object" {
		return nil, fmt.Errorf(`schema: type must be "object"`)
	}
	props, err := objectMembers(top.Properties)
	if err != nil {
		return nil, fmt.Errorf("schema: properties: %w", err)
	}
	if len(props) == 0 {
		return nil, fmt.Errorf("schema: properties must list at least one option")
	}
	for _, r := range top.Required {
		if !slices.ContainsFunc(props, func(m member) bool { return m.key == r }) {
			return nil, fmt.Errorf("schema: required option %q is not in properties", r)
		}
	}
	return options(raw, props, top.Required)
}

// refuseLoader loads no schema: a connector's schema must not reference
// files or URLs, so that the catalog is built without disk or network access.
type refuseLoader struct{}

// Load implements jsonschema.URLLoader.
func (refuseLoader) Load(url string) (any, error) {
	return nil, errors.New("schema references outside documents are not allowed")
}

// member is one key and value of a JSON object.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object raw in the order they
// appear. A missing value (nil raw) has no members; a duplicate key is an error.
func objectMembers(raw json.RawMessage) ([]member, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("reading object: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object")
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading key: %w", err)
		}
		key := tok.(string) // inside an object, the decoder only yields string keys
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("reading %q: %w", key, err)
		}
		if slices.ContainsFunc(members, func(m member) bool { return m.key == key }) {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		members = append(members, member{key: key, value: value})
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading object end: %w", err)
	}
	return members, nil
}

// describe turns a validation error into one line: the message of every leaf
// cause, with the JSON pointer it is about.
func describe(err error) string {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return err.Error()
	}
	var msgs []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			msg := strings.TrimPrefix(e.Error(), "at '': ") // the root needs no pointer
			if !slices.Contains(msgs, msg) {
				msgs = append(msgs, msg)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(verr)
	return strings.Join(msgs, "; ")
}
