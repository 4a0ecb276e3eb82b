package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v4"

	"github.com/culvert-dev/culvert/common/redact"
	"github.com/culvert-dev/culvert/common/transform"
)

// ConfigAPIVersion is the only apiVersion a config file may declare.
const ConfigAPIVersion = "0.1.0"

// Redacted replaces secret values in everything a connector prints.
const Redacted = "*****"

// configState is what one invocation learns from --config and --secrets.
// It also owns the redactor through which everything the command prints
// passes.
type configState struct {
	path        string // --config
	secretsPath string // --secrets
	// name is meta.name, the instance's name: a sink's default consumer group.
	name string
	red  *redactor
}

func newConfigState() *configState { return &configState{red: &redactor{}} }

// bindFlags registers --config and --secrets among the shared options.
func (c *configState) bindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "Config file, YAML or JSON: shared options under meta, own options under a section named after the connector, transforms as a list. The environment and flags beat it. [env CULVERT_CONFIG]")
	fs.StringVar(&c.secretsPath, "secrets", "", "File of NAME=value lines: the secrets that the config file uses as ${{ secrets.NAME }}; the environment beats it. [env CULVERT_SECRETS]")
}

// section is the config file key of the connector's own options: its name
// without -source or -sink.
func (a *App) section() string {
	n := strings.TrimSuffix(a.info.Name, "-source")
	return strings.TrimSuffix(n, "-sink")
}

// secretRef matches ${{ secrets.NAME }} in a config file's string values.
var secretRef = regexp.MustCompile(`\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// pathValue returns a flag's value, or else its environment variable's.
func pathValue(fs *pflag.FlagSet, flag, env string, lookup func(string) (string, bool)) string {
	fl := fs.Lookup(flag)
	if fl.Changed {
		return fl.Value.String()
	}
	v, _ := lookup(env)
	return v
}

// loadConfig reads --secrets and --config and sets every option that
// neither its flag nor its environment variable sets from the file, through
// the same flag.Value.Set as flags and the environment. It returns every
// problem at once, never a secret's value.
func (a *App) loadConfig(fs *pflag.FlagSet, c *configState, ownOpts, sharedOpts []*option, lookup func(string) (string, bool)) error {
	var problems []string
	secrets := map[string]string{}
	if p := pathValue(fs, "secrets", "CULVERT_SECRETS", lookup); p != "" {
		s, err := readSecrets(p)
		if err != nil {
			problems = append(problems, err.Error())
		}
		for _, v := range s {
			c.red.add(v)
		}
		secrets = s
	}
	if p := pathValue(fs, "config", "CULVERT_CONFIG", lookup); p != "" {
		l := &loader{app: a, fs: fs, c: c, own: ownOpts, shared: sharedOpts, lookup: lookup, secrets: secrets, fromFile: map[string]bool{}}
		problems = append(problems, l.load(p)...)
	}
	// Options marked secret are redacted whatever set them.
	for _, o := range append(append([]*option(nil), ownOpts...), sharedOpts...) {
		if !o.prop.WriteOnly {
			continue
		}
		for _, v := range fieldStrings(o) {
			c.red.add(v)
		}
		if v, ok := lookup(o.env); ok {
			for _, line := range strings.Split(v, "\n") {
				c.red.add(line)
			}
		}
	}
	if len(problems) > 0 {
		return &usageError{strings.Join(problems, "\n  ")}
	}
	return nil
}

// fieldStrings returns an option's string values.
func fieldStrings(o *option) []string {
	switch v := o.field.Interface().(type) {
	case string:
		return []string{v}
	case []string:
		return v
	}
	return []string{fmt.Sprint(o.field.Interface())}
}

// readSecrets reads a file of NAME=value lines; # starts a comment line.
// Errors name the line, never its content.
func readSecrets(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secrets: %w", err)
	}
	out := map[string]string{}
	var bad []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !secretName.MatchString(name) {
			bad = append(bad, fmt.Sprintf("%s:%d: want NAME=value", path, i+1))
			continue
		}
		out[name] = val
	}
	if len(bad) > 0 {
		return out, errors.New(strings.Join(bad, "\n  "))
	}
	return out, nil
}

// loader applies one config file.
type loader struct {
	app         *App
	fs          *pflag.FlagSet
	c           *configState
	own, shared []*option
	lookup      func(string) (string, bool)
	secrets     map[string]string // from --secrets
	declared    map[string]bool   // meta.secrets
	resolved    map[string]string // declared secrets with their values
	fromFile    map[string]bool   // options the file set
	problems    []string
}

func (l *loader) problem(path, format string, args ...any) {
	l.problems = append(l.problems, path+": "+fmt.Sprintf(format, args...))
}

func (l *loader) load(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{"--config: " + err.Error()}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []string{fmt.Sprintf("--config %s: %v", path, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return []string{fmt.Sprintf("--config %s: is empty", path)}
	}
	resolveAliases(&doc, 0)
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return []string{fmt.Sprintf("--config %s: must be a mapping with meta, %s and transforms", path, l.app.section())}
	}
	var meta, section, transforms *yaml.Node
	for _, kv := range l.pairs("", root) {
		switch key, v := kv[0].Value, kv[1]; key {
		case "apiVersion":
			if v.Kind != yaml.ScalarNode || v.Value != ConfigAPIVersion {
				l.problem("apiVersion", "must be %s", ConfigAPIVersion)
			}
		case "meta":
			meta = v
		case l.app.section():
			section = v
		case "transforms":
			transforms = v
		default:
			l.problem(key, "unknown key (want apiVersion, meta, %s or transforms)", l.app.section())
		}
	}
	metaOpts := l.readMeta(meta)
	l.resolveSecrets()
	for _, kv := range metaOpts {
		l.apply("meta."+kv[0].Value, l.option(l.shared, kv[0].Value), kv[1])
	}
	if section != nil && !isNull(section) {
		if section.Kind != yaml.MappingNode {
			l.problem(l.app.section(), "must be a mapping of the connector's options")
		} else {
			for _, kv := range l.pairs(l.app.section()+".", section) {
				p := l.app.section() + "." + kv[0].Value
				o := l.option(l.own, kv[0].Value)
				switch {
				case o != nil:
					l.apply(p, o, kv[1])
				case l.option(l.shared, kv[0].Value) != nil:
					l.problem(p, "unknown option (shared options go under meta)")
				default:
					l.problem(p, "unknown option")
				}
			}
		}
	}
	l.readTransforms(transforms)
	l.defaultGroup()
	return l.problems
}

// pairs returns a mapping's key/value nodes, reporting duplicate and
// non-string keys.
func (l *loader) pairs(prefix string, m *yaml.Node) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.problem(strings.TrimSuffix(prefix, "."), "keys must be strings")
			continue
		}
		if seen[k.Value] {
			l.problem(prefix+k.Value, "given twice")
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func (l *loader) option(opts []*option, name string) *option {
	for _, o := range opts {
		if o.name == name {
			return o
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (l *loader) scalarString(path string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		l.problem(path, "must be a string")
		return "", false
	}
	return n.Value, true
}

// readMeta checks meta's own keys and returns the shared options given in it.
func (l *loader) readMeta(meta *yaml.Node) [][2]*yaml.Node {
	l.declared = map[string]bool{}
	if meta == nil || isNull(meta) {
		l.problem("meta.type", "missing (this is %s)", l.app.info.Name)
		return nil
	}
	if meta.Kind != yaml.MappingNode {
		l.problem("meta", "must be a mapping with name, type, topic and other shared options")
		return nil
	}
	var opts [][2]*yaml.Node
	hasType := false
	for _, kv := range l.pairs("meta.", meta) {
		key, v := kv[0].Value, kv[1]
		switch p := "meta." + key; key {
		case "name":
			if s, ok := l.scalarString(p, v); ok {
				l.c.name = s
			}
		case "version":
			// The connector's version, as Fluvio's meta has it: informative only.
		case "type":
			hasType = true
			if s, ok := l.scalarString(p, v); ok && s != l.app.info.Name {
				l.problem(p, "is %s, this is %s", s, l.app.info.Name)
			}
		case "secrets":
			l.readSecretList(v)
		default:
			o := l.option(l.shared, key)
			switch {
			case o != nil && transformKind(o) != "":
				l.problem(p, "transforms go in the transforms list")
			case o != nil:
				opts = append(opts, kv)
			case l.option(l.own, key) != nil:
				l.problem(p, "unknown key (%s's own options go under %s)", l.app.info.Name, l.app.section())
			default:
				l.problem(p, "unknown key")
			}
		}
	}
	if !hasType {
		l.problem("meta.type", "missing (this is %s)", l.app.info.Name)
	}
	return opts
}

func (l *loader) readSecretList(v *yaml.Node) {
	if isNull(v) {
		return
	}
	if v.Kind != yaml.SequenceNode {
		l.problem("meta.secrets", "must be a list of {name: NAME}")
		return
	}
	for i, item := range v.Content {
		p := fmt.Sprintf("meta.secrets[%d]", i)
		if item.Kind != yaml.MappingNode {
			l.problem(p, "must be {name: NAME}")
			continue
		}
		hasName := false
		for _, kv := range l.pairs(p+".", item) {
			if kv[0].Value != "name" {
				l.problem(p+"."+kv[0].Value, "unknown key")
				continue
			}
			hasName = true
			if s, ok := l.scalarString(p+".name", kv[1]); ok {
				if !secretName.MatchString(s) {
					l.problem(p+".name", "must be letters, digits and _, not starting with a digit")
				} else {
					l.declared[s] = true
				}
			}
		}
		if !hasName {
			l.problem(p+".name", "missing")
		}
	}
}

// resolveSecrets finds the value of each declared secret: the environment
// beats the secrets file.
func (l *loader) resolveSecrets() {
	l.resolved = map[string]string{}
	var missing []string
	for name := range l.declared {
		v, ok := l.lookup(name)
		if !ok {
			v, ok = l.secrets[name]
		}
		if !ok {
			missing = append(missing, name)
			continue
		}
		l.resolved[name] = v
		l.c.red.add(v)
	}
	slices.Sort(missing)
	for _, name := range missing {
		l.problem("meta.secrets", "%s is declared but set neither in the secrets file nor in the environment", name)
	}
}

// subst replaces ${{ secrets.NAME }} in s; found says whether s had any.
func (l *loader) subst(path, s string) (out string, found bool) {
	out = secretRef.ReplaceAllStringFunc(s, func(ref string) string {
		found = true
		name := secretRef.FindStringSubmatch(ref)[1]
		if !l.declared[name] {
			l.problem(path, "secret %s is not declared in meta.secrets", name)
			return ""
		}
		return l.resolved[name]
	})
	return out, found
}

// values turns a node into the strings that o's flag.Value.Set takes,
// checking its type against o's schema.
func (l *loader) values(path string, o *option, n *yaml.Node) ([]string, bool) {
	scalar := func() (string, bool) {
		if n.Kind != yaml.ScalarNode {
			return "", false
		}
		var ok bool
		switch o.prop.Type {
		case "integer":
			var i int64
			ok = n.Tag == "!!int" && n.Decode(&i) == nil
			if ok {
				return strconv.FormatInt(i, 10), true
			}
		case "number":
			var f float64
			ok = (n.Tag == "!!int" || n.Tag == "!!float") && n.Decode(&f) == nil
			if ok {
				return strconv.FormatFloat(f, 'g', -1, 64), true
			}
		case "boolean":
			var b bool
			ok = n.Tag == "!!bool" && n.Decode(&b) == nil
			if ok {
				return strconv.FormatBool(b), true
			}
		default:
			s, _ := l.subst(path, n.Value)
			return s, true
		}
		// A secret may stand for a number or a boolean.
		if s, found := l.subst(path, n.Value); found && n.Tag == "!!str" {
			return s, true
		}
		return "", false
	}
	if o.isArr {
		items := n.Content
		if n.Kind == yaml.ScalarNode {
			items = []*yaml.Node{n}
		} else if n.Kind != yaml.SequenceNode {
			l.problem(path, "must be a list of strings")
			return nil, false
		}
		var vals []string
		for i, it := range items {
			if it.Kind != yaml.ScalarNode || isNull(it) {
				l.problem(fmt.Sprintf("%s[%d]", path, i), "must be a string")
				return nil, false
			}
			s, _ := l.subst(fmt.Sprintf("%s[%d]", path, i), it.Value)
			vals = append(vals, s)
		}
		return vals, true
	}
	s, ok := scalar()
	if !ok {
		l.problem(path, "must be %s", typeWords(o.prop.Type))
		return nil, false
	}
	return []string{s}, true
}

func typeWords(t string) string {
	switch t {
	case "integer":
		return "an integer"
	case "number":
		return "a number"
	case "boolean":
		return "true or false"
	}
	return "a string"
}

// apply sets o from the file's node n unless its flag or environment
// variable sets it; the value is checked either way.
func (l *loader) apply(path string, o *option, n *yaml.Node) {
	if isNull(n) {
		return
	}
	vals, ok := l.values(path, o, n)
	if !ok {
		return
	}
	if !o.isArr {
		// Check the value on a scratch copy, so that a bad value is
		// reported even when a flag or the environment overrides it.
		scratch := newLike(o)
		if err := setValue(scratch, vals[0]); err != nil {
			l.problem(path, "%v", err)
			return
		}
	}
	if l.overridden(o) {
		return
	}
	if err := setFrom(l.fs.Lookup(o.flag), vals); err != nil {
		l.problem(path, "%v", err)
		return
	}
	l.fromFile[o.name] = true
}

// overridden says whether o's flag or environment variable sets it.
func (l *loader) overridden(o *option) bool {
	if l.fs.Lookup(o.flag).Changed {
		return true
	}
	_, ok := l.lookup(o.env)
	return ok
}

func transformKind(o *option) transform.Kind {
	for _, k := range transform.Kinds {
		if string(k) == o.name {
			return k
		}
	}
	return ""
}

// readTransforms applies the file's transforms, in the file's order, unless
// a transform is given by a flag or an environment variable: then those
// replace the file's transforms entirely.
func (l *loader) readTransforms(n *yaml.Node) {
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.problem("transforms", "must be a list such as [{filter: '.amount > 50'}, {map: '.priority = 1'}]")
		return
	}
	type step struct {
		o             *option
		expr, written string
	}
	var steps []step
	for i, item := range n.Content {
		p := fmt.Sprintf("transforms[%d]", i)
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			l.problem(p, "must be one of map, filter, arraymap or filter_map with a jq expression, such as {filter: '.amount > 50'}")
			continue
		}
		k, v := item.Content[0], item.Content[1]
		o := l.option(l.shared, k.Value)
		if k.Kind != yaml.ScalarNode || o == nil || transformKind(o) == "" {
			l.problem(p+"."+k.Value, "unknown transform (want map, filter, arraymap or filter_map)")
			continue
		}
		if v.Kind != yaml.ScalarNode || isNull(v) {
			l.problem(p+"."+k.Value, "must be a jq expression")
			continue
		}
		expr, _ := l.subst(p+"."+k.Value, v.Value)
		steps = append(steps, step{o, expr, v.Value})
	}
	for _, o := range l.shared {
		if transformKind(o) != "" && l.overridden(o) {
			return
		}
	}
	for _, s := range steps {
		// Errors and dead letters show the expression as written, with
		// its secret references, never their values.
		l.fs.Lookup(s.o.flag).Value.(*transformValue).setWritten(s.expr, s.written)
	}
}

// defaultGroup makes meta.name a sink's consumer group when nothing else
// sets the group.
func (l *loader) defaultGroup() {
	o := l.option(l.shared, "group")
	if l.app.direction != DirectionSink || l.c.name == "" || o == nil || l.fromFile[o.name] || l.overridden(o) {
		return
	}
	if err := setFrom(l.fs.Lookup(o.flag), []string{l.c.name}); err != nil {
		l.problem("meta.name", "%v", err)
	}
}

// effectiveConfig returns the options' values as one indented JSON object,
// own options first, with secret options and secret values redacted.
func (c *configState) effectiveConfig(opts []*option) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, o := range opts {
		var v any
		switch x := o.field.Interface().(type) {
		case string:
			v = c.red.redact(x)
			if strings.Contains(x, "://") { // a URL: --bus, an endpoint, a broker
				v = redact.URL(c.red.redact(x))
			}
		case []string:
			vals := make([]string, len(x))
			for j, s := range x {
				vals[j] = c.red.redact(s)
			}
			v = vals
		default:
			v = x
		}
		if o.prop.WriteOnly && !o.field.IsZero() {
			v = Redacted
		}
		val, err := marshal(v)
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", o.name, err)
		}
		key, _ := marshal(o.name)
		fmt.Fprintf(&buf, "  %s: %s", key, val)
		if i < len(opts)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// configCommands returns the validate and config subcommands. They take
// the same options as a run: their arguments are parsed by root's flags.
func (a *App) configCommands(root *cobra.Command, c *configState, own, shared any, ownOpts, sharedOpts []*option, steps *[]transform.Step) []*cobra.Command {
	opts := append(append([]*option(nil), ownOpts...), sharedOpts...)
	prepare := func(cmd *cobra.Command, args []string) (bool, error) {
		fs := root.Flags()
		if err := root.ParseFlags(args); err != nil {
			if errors.Is(err, pflag.ErrHelp) {
				return false, cmd.Help()
			}
			return false, &usageError{err.Error()}
		}
		if rest := fs.Args(); len(rest) > 0 {
			return false, usageErrorf("unexpected argument %q (options are given as --name value)", rest[0])
		}
		if err := a.loadConfig(fs, c, ownOpts, sharedOpts, os.LookupEnv); err != nil {
			return false, err
		}
		_, err := a.check(fs, own, shared, opts, *steps)
		return err == nil, err
	}
	return []*cobra.Command{{
		Use:                "validate [options]",
		Short:              "Check the options, config file, secrets and transforms without connecting; print valid, or each problem (exit 2)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ok, err := prepare(cmd, args)
			if ok {
				fmt.Fprintln(cmd.OutOrStdout(), "valid")
			}
			return err
		},
	}, {
		Use:                "config [options]",
		Short:              "Print the effective options (defaults, config file, environment, flags) as JSON, secrets redacted",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ok, err := prepare(cmd, args)
			if !ok {
				return err
			}
			b, err := c.effectiveConfig(opts)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}}
}

// resolveAliases replaces YAML aliases (*name) by the nodes they name, so
// that anchors work like copies; depth guards against aliases in a cycle.
func resolveAliases(n *yaml.Node, depth int) {
	if depth > 64 {
		return
	}
	for i, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias != nil {
			n.Content[i] = c.Alias
		}
		resolveAliases(n.Content[i], depth+1)
	}
}
