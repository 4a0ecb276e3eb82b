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

// EnvPrefix starts the environment variable of every option.
const EnvPrefix = "CULVERT_"

// option is one field of an options struct, with its flag.
type option struct {
	name  string // json name: batch_size
	flag  string // flag name: batch-size
	env   string // CULVERT_BATCH_SIZE
	field reflect.Value
	prop  *jsonschema.Schema
	isArr bool
}

// FlagName returns the flag of an option's json name.
func FlagName(name string) string { return strings.ReplaceAll(name, "_", "-") }

// EnvName returns the environment variable of an option's json name.
func EnvName(name string) string { return EnvPrefix + strings.ToUpper(name) }

// transformValue is a repeatable jq flag that also records its place among
// all transform flags, so that transforms apply in command-line order.
type transformValue struct {
	kind  transform.Kind
	field *[]string
	steps *[]transform.Step
}

func (v *transformValue) String() string { return strings.Join(*v.field, " ") }
func (v *transformValue) Type() string   { return "jq" }
func (v *transformValue) Set(s string) error {
	*v.field = append(*v.field, s)
	*v.steps = append(*v.steps, transform.Step{Kind: v.kind, Expr: s})
	return nil
}

// setWritten is Set for a transform whose secrets were resolved: expr is
// evaluated, written (with its ${{ secrets.NAME }} references) is what
// errors and dead letters show.
func (v *transformValue) setWritten(expr, written string) {
	*v.field = append(*v.field, expr)
	*v.steps = append(*v.steps, transform.Step{Kind: v.kind, Expr: expr, Written: written})
}

// bindOptions registers a flag for each option field of the struct that ptr
// points to, after setting each field to its schema default.
func bindOptions(fs *pflag.FlagSet, ptr any, s *jsonschema.Schema, steps *[]transform.Step) ([]*option, error) {
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
			o := &option{name: name, flag: FlagName(name), env: EnvName(name), field: v.Field(i), prop: prop}
			if err := o.register(fs, f, steps); err != nil {
				return fmt.Errorf("option %s: %w", name, err)
			}
			opts = append(opts, o)
		}
		return nil
	}
	return opts, walk(reflect.ValueOf(ptr).Elem())
}

func (o *option) usage() string {
	u := o.prop.Description
	if len(o.prop.Enum) > 0 {
		var vals []string
		for _, e := range o.prop.Enum {
			vals = append(vals, fmt.Sprint(e))
		}
		u += " One of: " + strings.Join(vals, ", ") + "."
	}
	return u + " [env " + o.env + "]"
}

func (o *option) register(fs *pflag.FlagSet, f reflect.StructField, steps *[]transform.Step) error {
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
			fs.Var(&transformValue{kind: transform.Kind(o.name), field: p, steps: steps}, o.flag, o.usage())
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

// applyEnv sets each option whose flag was not given from its environment
// variable, if set. A repeatable option takes one value per line.
func applyEnv(fs *pflag.FlagSet, opts []*option, lookup func(string) (string, bool)) error {
	for _, o := range opts {
		fl := fs.Lookup(o.flag)
		if fl.Changed {
			continue
		}
		val, ok := lookup(o.env)
		if !ok {
			continue
		}
		vals := []string{val}
		if o.isArr {
			vals = strings.Split(strings.TrimRight(val, "\n"), "\n")
		}
		if err := setFrom(fl, vals); err != nil {
			return usageErrorf("%s (from %s): %v", "--"+o.flag, o.env, err)
		}
	}
	return nil
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

// orderedSteps returns the transforms: those from flags in command-line
// order, and those from the environment in the order of transform.Kinds.
func orderedSteps(fromFlags []transform.Step, c *Common) []transform.Step {
	seen := map[transform.Kind]int{}
	for _, s := range fromFlags {
		seen[s.Kind]++
	}
	steps := append([]transform.Step(nil), fromFlags...)
	for _, k := range transform.Kinds {
		var exprs []string
		switch k {
		case transform.Map:
			exprs = c.Map
		case transform.Filter:
			exprs = c.Filter
		case transform.ArrayMap:
			exprs = c.ArrayMap
		case transform.FilterMap:
			exprs = c.FilterMap
		}
		if seen[k] == 0 {
			for _, e := range exprs {
				steps = append(steps, transform.Step{Kind: k, Expr: e})
			}
		}
	}
	return steps
}
