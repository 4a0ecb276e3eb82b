package format

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	sjs "github.com/santhosh-tekuri/jsonschema/v6"
	sjskind "github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/culvert-dev/culvert/common/jsontext"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// Schema is a --schema: what the values of a typed stream must be. A
// source checks each value it decoded against it before the transforms,
// a sink each value before it encodes it; a value that does not match is
// a Failure naming the failing path (/amount: expected number, got
// string), never coerced. CSV also reads its fields with the types the
// schema gives its columns (see ColumnTypes).
//
// This version reads JSON Schema (draft 2020-12 unless the file's
// $schema names another; "format" is asserted, so a date-time must be
// one). Other schema languages (Avro, Protobuf) fit as another kind of
// file that LoadSchema recognizes, compiled to the same two things: a
// check of a JSON value and the types of an object's top-level fields.
type Schema struct {
	path  string
	check *sjs.Schema
	cols  map[string]colType
}

// LoadSchema reads and compiles the --schema file at path. The error is
// a *schema.FieldError naming schema.
func LoadSchema(path string) (*Schema, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, schema.Invalid("schema", "cannot read the schema file: %v", err)
	}
	if strings.EqualFold(filepath.Ext(path), ".proto") {
		return nil, schema.Invalid("schema", "%s is a Protobuf file: --schema takes a JSON Schema in this version", path)
	}
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, schema.Invalid("schema", "%s is not JSON: %v (--schema takes a JSON Schema)", path, err)
	}
	if isAvroSchema(doc) {
		return nil, schema.Invalid("schema", "%s is an Avro schema: --schema takes a JSON Schema in this version", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, schema.Invalid("schema", "%v", err)
	}
	c := sjs.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(abs, doc); err != nil {
		return nil, schema.Invalid("schema", "%s: %v", path, err)
	}
	compiled, err := c.Compile(abs)
	if err != nil {
		msg := firstLine(err.Error())
		if sve := (*sjs.SchemaValidationError)(nil); errors.As(err, &sve) {
			// Where the file breaks the meta-schema, as a value's paths.
			msg = describe(sve.Err)
		}
		return nil, schema.Invalid("schema", "%s is not a valid JSON Schema: %s", path, msg)
	}
	return &Schema{path: path, check: compiled, cols: columnTypes(compiled)}, nil
}

// firstLine keeps an error's first line and its first cause: the
// compiler's errors list every keyword of the meta-schema that failed.
func firstLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[0]
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "- at") {
			return out + " " + l
		}
	}
	return out
}

// isAvroSchema reports whether doc looks like an Avro schema (a record,
// enum or fixed with a name), which is JSON too but not a JSON Schema.
func isAvroSchema(doc any) bool {
	m, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	t, _ := m["type"].(string)
	_, named := m["name"].(string)
	switch t {
	case "record", "error":
		_, ok := m["fields"].([]any)
		return ok
	case "enum", "fixed":
		return named
	}
	return false
}

// Validate checks one JSON value. The error names each failing path as a
// JSON pointer: "/amount: expected number, got string".
func (s *Schema) Validate(value []byte) error {
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return fmt.Errorf("does not match --schema: the value is not JSON: %v", err)
	}
	if err := s.check.Validate(doc); err != nil {
		return fmt.Errorf("does not match --schema: %s", describe(err))
	}
	return nil
}

var printer = message.NewPrinter(language.English)

// maxPaths caps the failing paths one error names.
const maxPaths = 3

// describe words a validation error as its failing paths, most precise
// first: the leaves of the error tree, each "path: problem".
func describe(err error) string {
	var ve *sjs.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var out []string
	seen := map[string]bool{}
	var walk func(e *sjs.ValidationError)
	walk = func(e *sjs.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		at := e.InstanceLocation
		var msg string
		switch k := e.ErrorKind.(type) {
		case *sjskind.Type:
			msg = fmt.Sprintf("expected %s, got %s", strings.Join(k.Want, " or "), k.Got)
		case *sjskind.Required:
			for _, m := range k.Missing {
				line := pointer(append(at[:len(at):len(at)], m)) + ": missing (required)"
				if !seen[line] {
					seen[line] = true
					out = append(out, line)
				}
			}
			return
		case *sjskind.FalseSchema:
			msg = "not allowed by the schema"
		default:
			msg = e.ErrorKind.LocalizedString(printer)
		}
		line := pointer(at) + ": " + msg
		if !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i] < out[j] })
	if len(out) > maxPaths {
		out = append(out[:maxPaths], fmt.Sprintf("and %d more", len(out)-maxPaths))
	}
	return strings.Join(out, "; ")
}

// pointer writes a value's location as a JSON pointer (RFC 6901); the
// value itself is "(root)".
func pointer(at []string) string {
	if len(at) == 0 {
		return "(root)"
	}
	var b strings.Builder
	for _, p := range at {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// colType is the set of JSON types the schema allows a CSV column: what
// its fields are read as.
type colType uint8

const (
	tNull colType = 1 << iota
	tBool
	tInt
	tNum
	tStr
)

// columnTypes returns the types of the top-level properties of an object
// schema (through $ref), for CSV: a property without "type" is left out,
// and its fields are inferred as without a schema.
func columnTypes(s *sjs.Schema) map[string]colType {
	s = resolve(s)
	cols := map[string]colType{}
	for name, p := range s.Properties {
		p = resolve(p)
		if p.Types == nil {
			continue
		}
		var t colType
		for _, n := range p.Types.ToStrings() {
			switch n {
			case "null":
				t |= tNull
			case "boolean":
				t |= tBool
			case "integer":
				t |= tInt
			case "number":
				t |= tNum
			case "string":
				t |= tStr
			}
		}
		if t != 0 {
			cols[name] = t
		}
	}
	return cols
}

// resolve follows a schema that is only a $ref.
func resolve(s *sjs.Schema) *sjs.Schema {
	for i := 0; i < 32 && s.Ref != nil && s.Types == nil && s.Properties == nil; i++ {
		s = s.Ref
	}
	return s
}

// String names the types, as errors say them: "an integer or null".
func (t colType) String() string {
	var names []string
	for _, n := range []struct {
		t    colType
		name string
	}{{tBool, "a boolean"}, {tInt, "an integer"}, {tNum, "a number"}, {tStr, "a string"}, {tNull, "null"}} {
		if t&n.t != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, " or ")
}

// appendTyped appends a CSV field as the JSON value of a type the schema
// allows: an empty field is null (or "" when only a string is allowed);
// otherwise a boolean (true/false in any case), an integer (digits, with
// a sign, leading zeros dropped: "007" is 7), a number, or else a string
// as written. The first of these the schema allows and the field reads
// as wins, so "007" is a string when the schema says string.
func appendTyped(b []byte, f string, t colType) ([]byte, error) {
	if f == "" {
		switch {
		case t&tNull != 0:
			return append(b, "null"...), nil
		case t&tStr != 0:
			return append(b, `""`...), nil
		}
		return b, fmt.Errorf("is empty, and --schema says %s", t)
	}
	if t&tBool != 0 {
		switch strings.ToLower(f) {
		case "true":
			return append(b, "true"...), nil
		case "false":
			return append(b, "false"...), nil
		}
	}
	if t&(tInt|tNum) != 0 {
		if n, ok := integer(f); ok {
			return append(b, n...), nil
		}
	}
	if t&tNum != 0 {
		if n, ok := number(f); ok {
			return append(b, n...), nil
		}
	}
	if t&tStr != 0 {
		return jsontext.AppendString(b, f), nil
	}
	return b, fmt.Errorf("%s is not %s (--schema)", strconv.Quote(f), t)
}

// integer reads digits with an optional sign, as a JSON integer.
func integer(f string) (string, bool) {
	s := f
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg, s = s[0] == '-', s[1:]
	}
	if s == "" {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	s = strings.TrimLeft(s, "0")
	switch {
	case s == "":
		return "0", true
	case neg:
		return "-" + s, true
	}
	return s, true
}

// number reads a decimal number (a sign, leading zeros, a missing digit
// before or after the point are allowed; hex, NaN and infinities are
// not) as a JSON number: as written when it is one, else as a float64
// writes it.
func number(f string) (string, bool) {
	if isNumber(f) {
		return f, true
	}
	for i := 0; i < len(f); i++ {
		if !strings.ContainsRune("0123456789+-.eE", rune(f[i])) {
			return "", false
		}
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return "", false
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	return s, isNumber(s)
}

// schemaDecoder checks what its decoder decoded against the schema. A
// value that does not match is a Failure as decoded (the JSON value the
// path points into), since that is what the schema refused.
type schemaDecoder struct {
	Decoder
	s *Schema
}

func (d schemaDecoder) Decode(ctx context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	ok, failed, err := d.Decoder.Decode(ctx, recs)
	if err != nil {
		return ok, failed, err
	}
	ok, failed = d.s.filter(ok, failed)
	return ok, failed, nil
}

// filter moves the records of ok whose values do not match to failed.
func (s *Schema) filter(ok []record.Record, failed []Failure) ([]record.Record, []Failure) {
	out := ok[:0]
	for _, r := range ok {
		if err := s.Validate(r.Value); err != nil {
			failed = append(failed, Failure{r, err})
			continue
		}
		out = append(out, r)
	}
	return out, failed
}

// schemaEncoder checks each value against the schema before its encoder
// encodes it.
type schemaEncoder struct {
	Encoder
	s *Schema
}

func (e schemaEncoder) Encode(ctx context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	// A new slice: on a batch error recs must be as they were.
	valid, failed := e.s.filter(append([]record.Record(nil), recs...), nil)
	ok, more, err := e.Encoder.Encode(ctx, valid)
	if err != nil {
		// recs are as they were: the checked ones moved, not changed.
		return nil, nil, err
	}
	return ok, append(failed, more...), nil
}

// headedSchemaEncoder is a schemaEncoder of a Headed encoder (CSV).
type headedSchemaEncoder struct {
	schemaEncoder
	Headed
}

type containerSchemaEncoder struct {
	schemaEncoder
	Container
}

// checkDecoded wraps dec with f's --schema, if any.
func (f *Format) checkDecoded(dec Decoder) Decoder {
	if f == nil || f.schema == nil {
		return dec
	}
	return schemaDecoder{dec, f.schema}
}

// checkEncoded wraps enc with f's --schema, if any; a Headed encoder
// stays Headed, a Container a Container.
func (f *Format) checkEncoded(enc Encoder) Encoder {
	if f == nil || f.schema == nil {
		return enc
	}
	e := schemaEncoder{enc, f.schema}
	if h, ok := enc.(Headed); ok {
		return headedSchemaEncoder{e, h}
	}
	if c, ok := enc.(Container); ok {
		return containerSchemaEncoder{e, c}
	}
	return e
}

// Schema returns --schema, or nil.
func (f *Format) Schema() *Schema {
	if f == nil {
		return nil
	}
	return f.schema
}
