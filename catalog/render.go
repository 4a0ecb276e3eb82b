package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/culvert-dev/culvert/catalog/serve/ui"
)

// file is one generated file: its name inside the output directory and its
// content.
type file struct {
	name    string
	content []byte
}

// option is one row of a connector's options table in README.md.
type option struct {
	name        string
	typ         string
	def         string // compact JSON of the default, empty if none
	required    bool
	description string
	env         string // the environment variable, from the property's x-env
}

// flag returns the command-line flag of the option: --name with _ as -.
func (o option) flag() string {
	return "--" + strings.ReplaceAll(o.name, "_", "-")
}

// propSchema holds the keywords of a property schema that README.md shows.
type propSchema struct {
	Type        any               `json:"type"`
	Enum        []json.RawMessage `json:"enum"`
	Const       json.RawMessage   `json:"const"`
	Items       json.RawMessage   `json:"items"`
	Ref         string            `json:"$ref"`
	OneOf       []json.RawMessage `json:"oneOf"`
	AnyOf       []json.RawMessage `json:"anyOf"`
	Default     json.RawMessage   `json:"default"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Env         string            `json:"x-env"`
}

// decodeProp decodes a property schema; a boolean schema gives an empty one.
func decodeProp(raw json.RawMessage) (propSchema, error) {
	var p propSchema
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return p, nil
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, err
	}
	return p, nil
}

// defs resolves local references (#/$defs/x, #/definitions/x) of a schema.
type defs map[string]json.RawMessage

// maxRefDepth bounds how deep typeName follows $ref, items, oneOf and anyOf.
const maxRefDepth = 8

// options turns the ordered properties of the schema root into options.
func options(root json.RawMessage, props []member, required []string) ([]option, error) {
	var d struct {
		Defs        map[string]json.RawMessage `json:"$defs"`
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(root, &d); err != nil {
		return nil, fmt.Errorf("decoding schema definitions: %w", err)
	}
	refs := defs{}
	for k, v := range d.Definitions {
		refs["#/definitions/"+k] = v
	}
	for k, v := range d.Defs {
		refs["#/$defs/"+k] = v
	}

	opts := make([]option, 0, len(props))
	for _, m := range props {
		p, err := decodeProp(m.value)
		if err != nil {
			return nil, fmt.Errorf("schema: property %q: %w", m.key, err)
		}
		o := option{
			name:        m.key,
			typ:         refs.typeName(m.value, 0),
			description: p.Description,
			env:         p.Env,
		}
		if o.description == "" {
			o.description = p.Title
		}
		for _, r := range required {
			o.required = o.required || r == m.key
		}
		if len(p.Default) > 0 {
			o.def = compact(p.Default)
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// typeName describes the type of a property schema for README.md: its JSON
// Schema type ("string", "integer or null"), "array of <items>" for arrays,
// and the allowed values of an enum.
func (d defs) typeName(raw json.RawMessage, depth int) string {
	p, err := decodeProp(raw)
	if err != nil || depth > maxRefDepth {
		return "any"
	}

	var types []string
	switch t := p.Type.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, v := range t {
			if s, ok := v.(string); ok {
				types = append(types, s)
			}
		}
	}
	if len(types) == 0 && len(p.Enum) == 0 && len(p.Const) == 0 {
		if target, ok := d[p.Ref]; ok {
			return d.typeName(target, depth+1)
		}
		var alts []string
		for _, a := range slices.Concat(p.OneOf, p.AnyOf) {
			alts = append(alts, d.typeName(a, depth+1))
		}
		if len(alts) > 0 {
			return strings.Join(alts, " or ")
		}
	}
	for i, t := range types {
		if t == "array" && len(p.Items) > 0 {
			types[i] = "array of " + d.typeName(p.Items, depth+1)
		}
	}
	name := strings.Join(types, " or ")

	values := p.Enum
	if len(p.Const) > 0 {
		values = []json.RawMessage{p.Const}
	}
	if len(values) == 0 {
		if name == "" {
			return "any"
		}
		return name
	}
	list := make([]string, len(values))
	for i, v := range values {
		list[i] = code(compact(v))
	}
	enum := "one of " + strings.Join(list, ", ")
	if name == "" {
		return enum
	}
	return name + " (" + enum + ")"
}

// siteDir is the directory, inside the output directory, of the static
// catalog site.
const siteDir = "site"

// render generates catalog.json, README.md and the static site (site/, the
// web console's catalog pages reading catalog.json) for conns, which are
// sorted by name.
func render(conns []connector) ([]file, error) {
	cat, err := renderJSON(conns)
	if err != nil {
		return nil, err
	}
	site, err := ui.Site(cat)
	if err != nil {
		return nil, fmt.Errorf("building the static site: %w", err)
	}
	files := []file{
		{name: "catalog.json", content: cat},
		{name: "README.md", content: renderREADME(conns)},
	}
	for _, f := range site {
		files = append(files, file{name: path.Join(siteDir, f.Name), content: f.Content})
	}
	return files, nil
}

// renderJSON encodes {"connectors": [...]} with two-space indentation. Each
// schema keeps the key order its connector printed.
func renderJSON(conns []connector) ([]byte, error) {
	cat := struct {
		Connectors []Metadata `json:"connectors"`
	}{Connectors: make([]Metadata, len(conns))}
	for i, c := range conns {
		cat.Connectors[i] = c.meta
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cat); err != nil { // Encode ends with a newline
		return nil, fmt.Errorf("encoding catalog.json: %w", err)
	}
	return buf.Bytes(), nil
}

// toolsSection lists, after the connectors, the commands that are not
// connectors: culvert (catalog/cmd/culvert), which make build puts beside
// them. It has no metadata to generate from: its subcommands are named here.
const toolsSection = `
| tool | what it does |
|---|---|
| [culvert](../README.md#operating-topics) | Operates the bus the connectors share, on every backend: ` + "`topics list\\|describe\\|create\\|alter\\|delete`, `groups list\\|describe\\|reset\\|delete`, `consume`, `produce`, `dlq list\\|replay`" + ` (built with the connectors by ` + "`make build`" + `). |
`

// renderREADME writes the Markdown catalog.
func renderREADME(conns []connector) []byte {
	var b strings.Builder
	b.WriteString("# Connector catalog\n\n")
	b.WriteString("This file is generated by `make catalog` from each connector's `metadata` output (see also `catalog.json`). Do not edit it by hand.\n\n")

	b.WriteString("| connector | direction | description |\n")
	b.WriteString("|---|---|---|\n")
	for _, c := range conns {
		// Names match ^[a-z0-9-]+$ before the suffix, so the heading anchor is the name.
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s |\n", c.meta.Name, c.meta.Name, c.meta.Direction, cell(c.meta.Description))
	}
	b.WriteString(toolsSection)

	for _, c := range conns {
		fmt.Fprintf(&b, "\n## %s\n\n", c.meta.Name)
		fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(c.meta.Description))
		fmt.Fprintf(&b, "Direction: %s. Version: %s.\n\n", c.meta.Direction, code(c.meta.Version))
		b.WriteString("| option | flag | type | default | required | description |\n")
		b.WriteString("|---|---|---|---|---|---|\n")
		for _, o := range c.options {
			def, req := "", ""
			if o.def != "" {
				def = code(o.def)
			}
			if o.required {
				req = "yes"
			}
			flag := code(o.flag())
			if o.env != "" {
				flag += ", " + code(o.env)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
				cell(code(o.name)), cell(flag), cell(o.typ), cell(def), req, cell(o.description))
		}
	}
	return []byte(b.String())
}

// cellEscaper puts a value on one line and escapes | for a Markdown table cell.
var cellEscaper = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "|", `\|`)

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	return cellEscaper.Replace(strings.TrimSpace(s))
}

// code returns s as a Markdown code span, with a fence longer than any run of
// backticks in s.
func code(s string) string {
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// compact returns the JSON value raw on one line.
func compact(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw) // raw came from a decoder, so this does not happen
	}
	return buf.String()
}
