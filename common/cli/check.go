package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

// prepare applies the environment and the config file to the parsed flags
// and checks everything that can be checked without connecting: a run,
// validate and config all call it, so validate accepts exactly what a run
// accepts. It reports every problem at once, each named by where its value
// came from (a flag, an environment variable or the config file's path).
// Unknown CULVERT_ variables are problems when warn is nil (validate), else
// warnings written to warn.
func (st *state) prepare(warn io.Writer) (*transform.Chain, error) {
	problems := st.applyEnv()
	problems = append(problems, st.loadConfig()...)
	if unknown := st.unknownEnv(); warn == nil {
		problems = append(problems, unknown...)
	} else {
		for _, u := range unknown {
			fmt.Fprintf(warn, "%s: warning: %s\n", st.app.info.Name, u)
		}
	}
	chain, more := st.check()
	problems = append(problems, more...)
	if len(problems) > 0 {
		return nil, &usageError{strings.Join(problems, "\n  ")}
	}
	return chain, nil
}

// check validates the options against their schema, the connector's own
// Validate, and the shared options' own rules, and compiles the transforms.
func (st *state) check() (*transform.Chain, []string) {
	var problems []string
	add := func(p string) {
		if p != "" {
			problems = append(problems, p)
		}
	}
	c := st.inv.common()
	st.transforms.fill(c)
	s := st.app.Schema()
	for _, req := range s.Required {
		if o := st.optionByName(req); o != nil && o.field.IsZero() && !o.fileFailed {
			problems = append(problems, fmt.Sprintf("--%s is required (or set %s)", o.flag, o.env))
		}
	}
	v, err := schema.Compile(s)
	if err != nil {
		return nil, append(problems, fmt.Sprintf("compiling the options schema: %v", err))
	}
	doc, err := st.document()
	if err != nil {
		return nil, append(problems, err.Error())
	}
	schemaOK := true
	for _, fe := range v.Validate(doc) {
		schemaOK = false
		add(st.fieldProblem(fe))
	}
	if schemaOK {
		// The connector's own checks assume values its schema accepts.
		if err := st.inv.validateOwn(); err != nil {
			add(st.errorProblem(err))
		}
		err := c.Options.Validate()
		if err == nil {
			err = c.Options.CheckBinding(st.inv.binding())
		}
		if err != nil {
			add(st.errorProblem(err))
		}
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			problems = append(problems, st.origin("metrics_addr")+": must be HOST:PORT, such as 127.0.0.1:9464")
		}
	}
	if _, err := busSpec(c); err != nil {
		add(st.errorProblem(err))
	}
	if err := connector.CheckDLQTopic(c.Topic, c.DLQTopic); err != nil {
		add(st.errorProblem(err))
	}
	steps := st.transforms.steps()
	chain, err := transform.Compile(steps, transform.MaxOutputs(c.MaxOutputs), transform.Timeout(c.TransformTimeout.D()))
	if err != nil {
		// Every bad expression, named by its flag or its path in the file.
		for i, s := range steps {
			_, err := transform.Compile([]transform.Step{s})
			switch {
			case err == nil:
			case st.transforms.origin() == "config file" && errors.Unwrap(err) != nil:
				add(fmt.Sprintf("transforms[%d].%s: %v", i, s.Kind, errors.Unwrap(err)))
			default:
				add(err.Error())
			}
		}
	}
	return chain, problems
}

// document gathers own and shared options as one JSON object for
// validation.
func (st *state) document() (map[string]any, error) {
	out := map[string]any{}
	own, shared := st.inv.structs()
	for _, v := range []any{own.Addr().Interface(), shared.Addr().Interface()} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// origin names where option name's value came from: its flag, its
// environment variable or its config file path.
func (st *state) origin(name string) string {
	if o := st.optionByName(name); o != nil {
		return o.origin
	}
	return "--" + FlagName(name)
}

// fieldProblem words a problem with one option, naming where its value
// came from; "" when the config file's value was already reported.
func (st *state) fieldProblem(fe *schema.FieldError) string {
	if fe.Field == "" {
		return fe.Msg
	}
	name, _, _ := strings.Cut(fe.Field, ".")
	if o := st.optionByName(name); o != nil && o.fileFailed {
		return ""
	}
	return st.origin(name) + strings.TrimPrefix(fe.Field, name) + ": " + fe.Msg
}

// errorProblem words an error of a check: a schema.FieldError names its
// option's origin.
func (st *state) errorProblem(err error) string {
	var fe *schema.FieldError
	if errors.As(err, &fe) {
		return st.fieldProblem(fe)
	}
	return err.Error()
}
