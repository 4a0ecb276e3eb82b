package format

import "sort"

// Property is a top-level property of an object --schema, as a sink that
// creates a table or columns from the schema (sql-sink --auto-create)
// reads it.
type Property struct {
	// Name is the property's name.
	Name string
	// Types are the JSON types the schema allows ("integer", "number",
	// "string", "boolean", "object", "array", "null"), nil when it says
	// none.
	Types []string
	// Format is the property's "format" keyword, such as date-time; "" if
	// none.
	Format string
	// Required says the property is among the object's "required" ones.
	Required bool
}

// Properties returns the top-level properties of an object schema
// (through a schema that is only a $ref), sorted by name; nil when the
// schema has none.
func (s *Schema) Properties() []Property {
	root := resolve(s.check)
	required := map[string]bool{}
	for _, r := range root.Required {
		required[r] = true
	}
	out := make([]Property, 0, len(root.Properties))
	for name, p := range root.Properties {
		p = resolve(p)
		prop := Property{Name: name, Required: required[name]}
		if p.Types != nil {
			prop.Types = p.Types.ToStrings()
		}
		if p.Format != nil {
			prop.Format = p.Format.Name
		}
		out = append(out, prop)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
