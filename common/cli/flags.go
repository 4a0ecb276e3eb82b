package cli

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
	"github.com/spf13/pflag"

	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

// option is one field of an options struct, with its flag.
type option struct {
	name   string // json name: batch_size
	flag   string // flag name: batch-size
	env    string // CULVERT_BATCH_SIZE, or CULVERT_FILE_SOURCE_PATH for a connector's own
	shared bool   // one of the options every connector has
	field  reflect.Value
	prop   *jsonschema.Schema
	isArr  bool
	kind   transform.Kind // a transform flag's kind, else ""
	// origin names where the value came from, for errors: the flag, the
	// environment variable or the config file's path.
	origin string
	// fileFailed says the config file gave a value that was rejected: the
	// option's other problems would only repeat it.
	fileFailed bool
}

// FlagName returns the flag of an option's json name.
func FlagName(name string) string { return strings.ReplaceAll(name, "_", "-") }

// bindOptions registers a flag for each option field of the struct v, after
// setting each field to its schema default. Transform flags append to ts.
func bindOptions(fs *pflag.FlagSet, v reflect.Value, s *jsonschema.Schema, env func(name string) string, ts *transformList) ([]*option, error) {
	var opts []*option
	var walk func(v reflect.Value) error
	walk = func(v reflect.Value) error {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
				if err := walk(v.Field(i)); err != nil {
					return err
				}
				continue
			}
			name := schema.JSONName(f)
			if name == "" {
				continue
			}
			prop, ok := s.Properties.Get(name)
			if !ok {
				return fmt.Errorf("option %s has no schema", name)
			}
			o := &option{name: name, flag: FlagName(name), env: env(name), field: v.Field(i), prop: prop}
			o.origin = "--" + o.flag
			if err := o.register(fs, f, ts); err != nil {
				return fmt.Errorf("option %s: %w", name, err)
			}
			opts = append(opts, o)
		}
		return nil
	}
	return opts, walk(v)
}

// enum returns the option's allowed values, from its schema.
func (o *option) enum() []string {
	var vals []string
	for _, e := range o.prop.Enum {
		vals = append(vals, fmt.Sprint(e))
	}
	return vals
}

func (o *option) usage() string {
	u := o.prop.Description
	if vals := o.enum(); len(vals) > 0 {
		u += " One of: " + strings.Join(vals, ", ") + "."
	}
	return u + " [env " + o.env + "]"
}

func (o *option) register(fs *pflag.FlagSet, f reflect.StructField, ts *transformList) error {
	p := o.field.Addr().Interface()
	if o.prop.Default != nil {
		if err := setValue(p, fmt.Sprint(o.prop.Default)); err != nil {
			return fmt.Errorf("default %v: %w", o.prop.Default, err)
		}
	}
	switch p := p.(type) {
	case *string:
		fs.StringVar(p, o.flag, *p, o.usage())
	case *bool:
		fs.BoolVar(p, o.flag, *p, o.usage())
	case *int:
		fs.IntVar(p, o.flag, *p, o.usage())
	case *int64:
		fs.Int64Var(p, o.flag, *p, o.usage())
	case *float64:
		fs.Float64Var(p, o.flag, *p, o.usage())
	case *[]string:
		o.isArr = true
		if f.Tag.Get("culvert") == "transform" {
			o.kind = transform.Kind(o.name)
			fs.Var(&transformFlag{kind: o.kind, list: ts}, o.flag, o.usage())
		} else {
			fs.StringArrayVar(p, o.flag, *p, o.usage())
		}
	case pflag.Value:
		fs.Var(p, o.flag, o.usage())
	default:
		return fmt.Errorf("unsupported option type %T", p)
	}
	return nil
}

// setValue parses s into the option that p points to.
func setValue(p any, s string) error {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	switch p := p.(type) {
	case *string:
		*p = s
		return nil
	case *bool:
		fs.BoolVar(p, "v", false, "")
	case *int:
		fs.IntVar(p, "v", 0, "")
	case *int64:
		fs.Int64Var(p, "v", 0, "")
	case *float64:
		fs.Float64Var(p, "v", 0, "")
	case pflag.Value:
		return p.Set(s)
	default:
		return fmt.Errorf("unsupported option type %T", p)
	}
	return fs.Lookup("v").Value.Set(s) // the value's own message, naming no flag
}

// setFrom sets an option whose flag was not given as if the flag had been
// given each of vals: the environment and the config file both use it.
func setFrom(fl *pflag.Flag, vals []string) error {
	for _, v := range vals {
		if err := fl.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}

// newLike returns a pointer to a new zero value of o's type, to check a
// value on without setting o.
func newLike(o *option) any { return reflect.New(o.field.Type()).Interface() }

// fieldStrings returns an option's values as strings.
func fieldStrings(o *option) []string {
	switch v := o.field.Interface().(type) {
	case string:
		return []string{v}
	case []string:
		return v
	}
	return []string{fmt.Sprint(o.field.Interface())}
}
