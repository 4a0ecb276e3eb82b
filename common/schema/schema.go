package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
	sjs "github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Duration is a time.Duration option written like "10s" or "1m30s" in
// flags, config files and the schema.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses s; it makes Duration a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration like 10s, not %q", s)
	}
	*d = Duration(v)
	return nil
}

// Type names the flag's value type in --help.
func (d *Duration) Type() string { return "duration" }

// MarshalJSON writes d as a string like "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string like "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a duration like 10s")
	}
	return d.Set(s)
}

// durationPattern matches what time.ParseDuration accepts.
const durationPattern = `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^0$`

// JSONSchema describes Duration as a string.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: durationPattern, Format: "duration"}
}

// Reflect returns the schema of an options struct: an object whose
// properties are the struct's json-tagged fields, in declaration order.
func Reflect(v any) *jsonschema.Schema {
	r := &jsonschema.Reflector{
		ExpandedStruct:             true,
		DoNotReference:             true,
		RequiredFromJSONSchemaTags: true,
		Anonymous:                  true,
	}
	s := r.Reflect(v)
	s.ID = ""
	s.Version = ""
	markSecrets(reflect.TypeOf(v), s)
	return s
}

// IsSecret reports whether a field is tagged culvert:"secret": its value is
// never printed, and its schema property says "writeOnly": true.
func IsSecret(f reflect.StructField) bool {
	for _, t := range strings.Split(f.Tag.Get("culvert"), ",") {
		if strings.TrimSpace(t) == "secret" {
			return true
		}
	}
	return false
}

// markSecrets sets writeOnly on the properties of secret fields of t,
// including those of embedded structs.
func markSecrets(t reflect.Type, s *jsonschema.Schema) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || s.Properties == nil {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			markSecrets(f.Type, s)
			continue
		}
		if !IsSecret(f) {
			continue
		}
		if prop, ok := s.Properties.Get(JSONName(f)); ok {
			prop.WriteOnly = true
		}
	}
}

// Merge returns one schema with the properties of all, in order; the first
// schema's title and description are kept.
func Merge(schemas ...*jsonschema.Schema) *jsonschema.Schema {
	out := &jsonschema.Schema{
		Version:              "https://json-schema.org/draft/2020-12/schema",
		Type:                 "object",
		Properties:           jsonschema.NewProperties(),
		AdditionalProperties: jsonschema.FalseSchema,
	}
	for _, s := range schemas {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			out.Properties.Set(p.Key, p.Value)
		}
		out.Required = append(out.Required, s.Required...)
	}
	return out
}

// Validator validates option values against a schema.
type Validator struct {
	s *sjs.Schema
}

// Compile prepares s for validation.
func Compile(s *jsonschema.Schema) (*Validator, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := sjs.NewCompiler()
	c.AssertFormat()
	c.RegisterFormat(&sjs.Format{Name: "duration", Validate: func(v any) error {
		if s, ok := v.(string); ok {
			if _, err := time.ParseDuration(s); err != nil {
				return errors.New("must be a duration like 10s")
			}
		}
		return nil
	}})
	if err := c.AddResource("options.json", doc); err != nil {
		return nil, err
	}
	cs, err := c.Compile("options.json")
	if err != nil {
		return nil, err
	}
	return &Validator{s: cs}, nil
}

// FieldError is a problem with one option; Field is its path in the config
// (snake_case, dotted for nested options).
type FieldError struct {
	Field string
	Msg   string
}

// Error returns "field: message".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Invalid returns a FieldError for field.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var printer = message.NewPrinter(language.English)

// Validate checks v (a struct or a decoded JSON document) against the
// schema and returns every problem, sorted by field.
func (v *Validator) Validate(opts any) []*FieldError {
	raw, err := json.Marshal(opts)
	if err != nil {
		return []*FieldError{{Msg: err.Error()}}
	}
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return []*FieldError{{Msg: err.Error()}}
	}
	err = v.s.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *sjs.ValidationError
	if !errors.As(err, &ve) {
		return []*FieldError{{Msg: err.Error()}}
	}
	var out []*FieldError
	var walk func(e *sjs.ValidationError)
	walk = func(e *sjs.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, &FieldError{Field: strings.Join(e.InstanceLocation, "."), Msg: friendly(e)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// friendly words a validation error for people.
func friendly(e *sjs.ValidationError) string {
	msg := e.ErrorKind.LocalizedString(printer)
	if strings.Contains(msg, durationPattern) {
		return "must be a duration like 10s"
	}
	return msg
}

// JSONName returns the field's json name, or "" when it is not an option.
func JSONName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}
