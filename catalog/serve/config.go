package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/redact"
	"github.com/culvert-dev/culvert/common/transform"
)

// redacted replaces a secret option's value in what the API returns (as
// the connectors' own config command prints it).
const redacted = "*****"

// OptionError is a problem with one option of a config; Option is ""
// for a problem with the config as a whole.
type OptionError struct {
	Option string
	Msg    string
}

func (e OptionError) Error() string {
	if e.Option == "" {
		return e.Msg
	}
	return e.Option + ": " + e.Msg
}

// configErrors is every problem of a config, as one error.
type configErrors []OptionError

func (es configErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("Connector configuration is invalid and contains the following %d error(s):\n%s",
		len(es), strings.Join(lines, "\n"))
}

// Config is an instance's config as the API takes it: Kafka Connect's flat
// string map (connector.class names the connector; other keys are its
// option names, with _, - or . between words), or the nested config file
// (apiVersion, meta with type, the connector's section, transforms).
type Config struct {
	// Flat is set for a flat map.
	Flat map[string]string
	// Nested is set for a config file's shape.
	Nested map[string]any
}

// ParseConfig reads a config from JSON. Numbers, booleans and lists in a
// flat map are taken as their JSON text.
func ParseConfig(raw []byte) (*Config, error) {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, errors.New("config: must be a JSON object of option names to values")
	}
	if _, ok := m["meta"].(map[string]any); ok {
		return &Config{Nested: m}, nil
	}
	c := &Config{Flat: map[string]string{}}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			c.Flat[k] = v
		case nil:
		case json.Number:
			c.Flat[k] = v.String()
		case bool:
			c.Flat[k] = strconv.FormatBool(v)
		default:
			b, _ := json.Marshal(v)
			c.Flat[k] = string(b)
		}
	}
	return c, nil
}

// MarshalJSON writes the config as it was given.
func (c *Config) MarshalJSON() ([]byte, error) {
	if c.Nested != nil {
		return json.Marshal(c.Nested)
	}
	return json.Marshal(c.Flat)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (c *Config) UnmarshalJSON(b []byte) error {
	p, err := ParseConfig(b)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

// Class returns the connector the config names: connector.class, or the
// config file's meta.type.
func (c *Config) Class() string {
	if c.Nested != nil {
		s, _ := c.meta()["type"].(string)
		return s
	}
	return c.Flat["connector.class"]
}

func (c *Config) meta() map[string]any {
	m, _ := c.Nested["meta"].(map[string]any)
	return m
}

// optionName turns a flat map's key into an option name: batch.size,
// batch-size and batch_size are batch_size.
func optionName(key string) string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(key)
}

// transformKind returns the transform an option name is, or "".
func transformKind(opt string) transform.Kind {
	for _, k := range transform.Kinds {
		if string(k) == opt {
			return k
		}
	}
	return ""
}

// file is a connector config file, as the supervisor writes it.
type file struct {
	doc     map[string]any
	topics  []string
	timeout time.Duration // meta.shutdown_timeout
}

// buildFile turns c into the config file of instance name of plugin p;
// bus is the --bus of instances that set none. With problems, the file
// leaves out the options that have them.
func buildFile(p *Plugin, name string, c *Config, bus string) (*file, configErrors) {
	var errs configErrors
	var doc map[string]any
	if c.Nested != nil {
		doc, errs = nestedDoc(p, name, c)
	} else {
		doc, errs = flatDoc(p, name, c)
	}
	meta := doc["meta"].(map[string]any)
	if _, ok := meta["bus"]; !ok && bus != "" {
		meta["bus"] = bus
	}
	// Every ${{ secrets.NAME }} used is declared.
	declared := map[string]bool{}
	list, _ := meta["secrets"].([]any)
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				declared[n] = true
			}
		}
	}
	for _, n := range secretNames(doc) {
		if !declared[n] {
			declared[n] = true
			list = append(list, map[string]any{"name": n})
		}
	}
	if len(list) > 0 {
		meta["secrets"] = list
	}
	f := &file{doc: doc, timeout: 30 * time.Second}
	if s, ok := meta["shutdown_timeout"].(string); ok {
		if d, err := time.ParseDuration(s); err == nil {
			f.timeout = d
		}
	}
	switch t := meta["topic"].(type) {
	case string:
		f.topics = append(f.topics, t)
	case map[string]any:
		if m, ok := t["meta"].(map[string]any); ok {
			if s, ok := m["name"].(string); ok {
				f.topics = append(f.topics, s)
			}
		}
	}
	if s, ok := meta["dlq_topic"].(string); ok && s != "" {
		f.topics = append(f.topics, s)
	}
	if len(errs) == 0 {
		errs = nil
	}
	return f, errs
}

// secretNames returns the secrets a document references, sorted.
func secretNames(v any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			for _, m := range cli.SecretRef.FindAllStringSubmatch(v, -1) {
				if !slices.Contains(out, m[1]) {
					out = append(out, m[1])
				}
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	slices.Sort(out)
	return out
}

func flatDoc(p *Plugin, name string, c *Config) (map[string]any, configErrors) {
	var errs configErrors
	meta := map[string]any{"type": p.Name, "name": name}
	own := map[string]any{}
	ts := map[transform.Kind][]string{}
	keys := make([]string, 0, len(c.Flat))
	for k := range c.Flat {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		val := c.Flat[key]
		switch key {
		case "connector.class", "tasks.max":
			continue
		case "name":
			if val != name {
				errs = append(errs, OptionError{"name", fmt.Sprintf("is %q, but the connector is %q", val, name)})
			}
			continue
		}
		opt := optionName(key)
		if key == "topics" && p.Direction == "sink" {
			opt = "topic" // Kafka Connect's sinks read "topics"
		}
		pr := p.Schema.Properties[opt]
		switch {
		case pr == nil:
			errs = append(errs, OptionError{key, "unknown option of " + p.Name})
			continue
		case opt == "metrics_addr":
			errs = append(errs, OptionError{key, "set by culvert serve (each instance gets a free loopback port)"})
			continue
		}
		if k := transformKind(opt); k != "" {
			ts[k] = append(ts[k], listValue(val, false)...)
			continue
		}
		v, err := convert(pr, val)
		if err != nil {
			errs = append(errs, OptionError{key, err.Error()})
			continue
		}
		if p.Own(opt) {
			own[opt] = v
		} else {
			meta[opt] = v
		}
	}
	doc := map[string]any{"apiVersion": cli.ConfigAPIVersion, "meta": meta}
	if len(own) > 0 {
		doc[p.Section()] = own
	}
	var list []any
	for _, k := range transform.Kinds {
		for _, e := range ts[k] {
			list = append(list, map[string]any{string(k): e})
		}
	}
	if len(list) > 0 {
		doc["transforms"] = list
	}
	return doc, errs
}

// listValue reads a list option's value: a JSON list of strings, else the
// value split at commas (Kafka Connect's LIST), else (split false, as for
// jq expressions, which have commas) the one value.
func listValue(val string, split bool) []string {
	if t := strings.TrimSpace(val); strings.HasPrefix(t, "[") {
		var l []string
		if json.Unmarshal([]byte(t), &l) == nil {
			return l
		}
	}
	if !split {
		return []string{val}
	}
	var out []string
	for _, s := range strings.Split(val, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// convert turns a flat map's string into the JSON value of an option of
// schema pr. A secret reference stays a string (it may stand for any
// value).
func convert(pr *Prop, val string) (any, error) {
	if cli.SecretRef.MatchString(val) && pr.Type != "array" {
		return val, nil
	}
	switch pr.Type {
	case "integer":
		i, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("must be an integer, not %q", val)
		}
		return i, nil
	case "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("must be a number, not %q", val)
		}
		return f, nil
	case "boolean":
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("must be true or false, not %q", val)
		}
		return b, nil
	case "array":
		l := listValue(val, true)
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out, nil
	}
	return val, nil
}

func nestedDoc(p *Plugin, name string, c *Config) (map[string]any, configErrors) {
	var errs configErrors
	b, _ := json.Marshal(c.Nested)
	var doc map[string]any
	json.Unmarshal(b, &doc) // a deep copy
	meta := doc["meta"].(map[string]any)
	if n, ok := meta["name"]; ok && n != name {
		errs = append(errs, OptionError{"meta.name", fmt.Sprintf("is %v, but the connector is %q", n, name)})
	}
	meta["name"] = name
	if _, ok := meta["metrics_addr"]; ok {
		errs = append(errs, OptionError{"meta.metrics_addr", "set by culvert serve (each instance gets a free loopback port)"})
	}
	if _, ok := doc["apiVersion"]; !ok {
		doc["apiVersion"] = cli.ConfigAPIVersion
	}
	return doc, errs
}

// secretOption says whether option opt of p holds a secret: marked
// writeOnly, or named like a credential.
func secretOption(p *Plugin, opt string) bool {
	if p != nil {
		if pr := p.Schema.Properties[opt]; pr != nil && pr.WriteOnly {
			return true
		}
	}
	return redact.SecretName(opt)
}

// shown returns a value of option opt as the API shows it: a secret's
// value never (a ${{ secrets.NAME }} reference is shown), a URL's password
// masked.
func shown(p *Plugin, opt, v string) string {
	switch {
	case v == "" || cli.SecretRef.MatchString(v) && cli.SecretRef.ReplaceAllString(v, "") == "":
		return v
	case secretOption(p, opt):
		return redacted
	case strings.Contains(v, "://"):
		return redact.URL(v)
	}
	return v
}

// Shown returns the config as GET .../config returns it: secret values
// replaced (p may be nil when the connector's binary is gone).
func (c *Config) Shown(p *Plugin) *Config {
	if c.Flat != nil {
		out := &Config{Flat: make(map[string]string, len(c.Flat))}
		for k, v := range c.Flat {
			if k == "connector.class" || k == "name" {
				out.Flat[k] = v
				continue
			}
			out.Flat[k] = shown(p, optionName(k), v)
		}
		return out
	}
	b, _ := json.Marshal(c.Nested)
	var doc map[string]any
	json.Unmarshal(b, &doc)
	for k, sec := range doc {
		if k == "transforms" || k == "apiVersion" {
			continue
		}
		m, ok := sec.(map[string]any)
		if !ok {
			continue
		}
		for opt, v := range m {
			if opt != "type" && opt != "name" {
				m[opt] = shownValue(p, opt, v)
			}
		}
	}
	return &Config{Nested: doc}
}

// shownValue is shown for a value of the config file's shape, whatever its
// JSON type: each string of a list or map as shown shows it, and a secret
// option's number or boolean as redacted.
func shownValue(p *Plugin, opt string, v any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return shown(p, opt, v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = shownValue(p, opt, e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = shownValue(p, opt, e)
		}
		return out
	}
	if secretOption(p, opt) {
		return redacted
	}
	return v
}

// problemOption names the option of one problem line that a connector's
// validate printed (such as "file.follow: must be true or false" or
// "--path is required (or set ...)") and rewords it with that name.
func problemOption(p *Plugin, line string) OptionError {
	if rest, ok := strings.CutPrefix(line, "--"); ok {
		i := strings.IndexAny(rest, " :")
		if i > 0 {
			opt := optionName(rest[:i])
			if p.Schema.Properties[opt] != nil {
				msg := strings.TrimPrefix(strings.TrimSpace(rest[i:]), ": ")
				// "is required (or set CULVERT_...)": the environment is not the API's.
				if j := strings.Index(msg, " (or set "); j > 0 {
					msg = msg[:j]
				}
				return OptionError{opt, msg}
			}
		}
		return OptionError{"", line}
	}
	path, msg, ok := strings.Cut(line, ": ")
	if !ok {
		return OptionError{"", line}
	}
	if rest, ok := strings.CutPrefix(path, "transforms["); ok {
		if _, kind, ok := strings.Cut(rest, "]."); ok {
			return OptionError{kind, msg}
		}
	}
	for _, pre := range []string{"meta.", p.Section() + "."} {
		if rest, ok := strings.CutPrefix(path, pre); ok {
			opt, _, _ := strings.Cut(rest, ".")
			opt, _, _ = strings.Cut(opt, "[")
			if opt == "secrets" {
				return OptionError{"", msg}
			}
			return OptionError{opt, msg}
		}
	}
	return OptionError{"", line}
}
