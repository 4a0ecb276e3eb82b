package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/culvert-dev/culvert/common/redact"
)

// effectiveConfig returns the options' values as a config file that
// --config reads back (JSON, which is YAML too): apiVersion, meta with the
// instance's name and type and the shared options, the connector's own
// options under its section, and the transforms in the order they run.
// Secret options and secret values are redacted; a value the config file
// gave with ${{ secrets.NAME }} references is shown as written.
func (st *state) effectiveConfig() ([]byte, error) {
	var b objectWriter
	b.open()
	b.field("apiVersion", ConfigAPIVersion)
	b.key("meta")
	b.open()
	if st.cfg.name != "" {
		b.field("name", st.cfg.name)
	}
	b.field("type", st.app.info.Name)
	var own []*option
	for _, o := range st.opts {
		switch {
		case !o.shared:
			own = append(own, o)
		case o.kind == "":
			b.field(o.name, st.shown(o))
		}
	}
	if len(st.cfg.declared) > 0 {
		var list []map[string]string
		for _, name := range st.cfg.declared {
			list = append(list, map[string]string{"name": name})
		}
		b.field("secrets", list)
	}
	b.close()
	b.key(st.app.section())
	b.open()
	for _, o := range own {
		b.field(o.name, st.shown(o))
	}
	b.close()
	steps := []map[string]string{}
	written := st.transforms.written()
	for i, s := range st.transforms.steps() {
		expr := written[i]
		if expr == s.Expr {
			expr = st.cfg.red.redact(expr)
		}
		steps = append(steps, map[string]string{string(s.Kind): expr})
	}
	b.field("transforms", steps)
	b.close()
	if b.err != nil {
		return nil, b.err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// shown returns the value config shows for o.
func (st *state) shown(o *option) any {
	if w, ok := st.cfg.written[o.name]; ok {
		if o.isArr {
			return w
		}
		return w[0]
	}
	if o.prop.WriteOnly {
		switch x := o.field.Interface().(type) {
		case string:
			return shownSecret(x, false)
		case []string:
			vals := make([]string, len(x))
			for i, v := range x {
				vals[i] = shownSecret(v, true)
			}
			return vals
		}
		if !o.field.IsZero() {
			return Redacted
		}
	}
	switch x := o.field.Interface().(type) {
	case string:
		v := st.cfg.red.redact(x)
		if strings.Contains(x, "://") { // a URL: --bus, an endpoint, a broker
			v = redact.URL(v)
		}
		return v
	case []string:
		vals := make([]string, len(x))
		for j, s := range x {
			vals[j] = st.cfg.red.redact(s)
		}
		return vals
	default:
		return x
	}
}

// objectWriter writes a JSON object whose keys keep their order.
type objectWriter struct {
	buf   bytes.Buffer
	comma []bool // per open object: whether a field was written
	err   error
}

func (w *objectWriter) open() {
	w.buf.WriteByte('{')
	w.comma = append(w.comma, false)
}

func (w *objectWriter) close() {
	w.buf.WriteByte('}')
	w.comma = w.comma[:len(w.comma)-1]
}

func (w *objectWriter) key(k string) {
	if n := len(w.comma); n > 0 {
		if w.comma[n-1] {
			w.buf.WriteByte(',')
		}
		w.comma[n-1] = true
	}
	w.value(k)
	w.buf.WriteByte(':')
}

func (w *objectWriter) field(k string, v any) {
	w.key(k)
	w.value(v)
}

func (w *objectWriter) value(v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil && w.err == nil {
		w.err = fmt.Errorf("printing %v: %w", v, err)
	}
	w.buf.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
