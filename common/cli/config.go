package cli

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v4"

	"github.com/culvert-dev/culvert/common/transform"
)

// The apiVersions a config file may declare: Culvert's own layout (0.1.0)
// and Fluvio's current one (0.2.0), whose keys map where Culvert has the
// same idea (meta.topic.meta.name, meta.consumer.id, transforms' uses and
// with). config prints ConfigAPIVersion.
const (
	ConfigAPIVersion       = "0.1.0"
	ConfigAPIVersionFluvio = "0.2.0"
)

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
	// declared are the names in meta.secrets, sorted.
	declared []string
	// written holds, for each option the file set with a ${{ secrets.NAME }}
	// reference, its values as written: config prints them so.
	written map[string][]string
	red     *redactor
}

func newConfigState() *configState {
	return &configState{red: &redactor{}, written: map[string][]string{}}
}

// bindFlags registers --config and --secrets among the shared options.
func (c *configState) bindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "Config file, YAML or JSON: shared options under meta, own options under a section named after the connector, transforms as a list (apiVersion 0.1.0, or Fluvio's 0.2.0). The environment and flags beat it. [env CULVERT_CONFIG]")
	fs.StringVar(&c.secretsPath, "secrets", "", "File of NAME=value lines: the secrets that the config file uses as ${{ secrets.NAME }}; the environment beats it. [env CULVERT_SECRETS]")
}

// section is the config file key of the connector's own options: its name
// without -source or -sink.
func (a *App) section() string {
	n := strings.TrimSuffix(a.info.Name, "-source")
	return strings.TrimSuffix(n, "-sink")
}

// SecretRef matches ${{ secrets.NAME }} in a config file's string values;
// its first group is NAME. culvert serve finds the references of an
// instance's config with it.
var SecretRef = regexp.MustCompile(`\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// pathValue returns a flag's value, or else its environment variable's.
func (st *state) pathValue(flag, env string) string {
	fl := st.fs.Lookup(flag)
	if fl.Changed {
		return fl.Value.String()
	}
	v, _ := st.lookup(env)
	return v
}

// loadConfig reads --secrets and --config and sets every option that
// neither its flag nor its environment variable sets from the file, through
// the same flag.Value.Set as flags and the environment. It returns every
// problem, never a secret's value.
func (st *state) loadConfig() []string {
	var problems []string
	secrets := map[string]string{}
	if p := st.pathValue("secrets", "CULVERT_SECRETS"); p != "" {
		s, err := readSecrets(p)
		if err != nil {
			problems = append(problems, err.Error())
		}
		for _, v := range s {
			st.cfg.red.add(v)
		}
		secrets = s
	}
	if p := st.pathValue("config", "CULVERT_CONFIG"); p != "" {
		l := &loader{st: st, secrets: secrets, fromFile: map[string]string{}}
		problems = append(problems, l.load(p)...)
	}
	// Options marked secret are redacted whatever set them.
	for _, o := range st.opts {
		if !o.prop.WriteOnly {
			continue
		}
		vals := fieldStrings(o)
		if v, ok := st.lookup(o.env); ok {
			vals = append(vals, strings.Split(v, "\n")...)
		}
		for _, v := range vals {
			for _, part := range secretParts(v, o.isArr) {
				st.cfg.red.add(part)
			}
		}
	}
	return problems
}

// loader applies one config file.
type loader struct {
	st       *state
	secrets  map[string]string // from --secrets
	declared map[string]bool   // meta.secrets
	resolved map[string]string // declared secrets with their values
	fromFile map[string]string // options the file gives, with their paths
	problems []string
}

// setting is an option the file gives, at a path.
type setting struct {
	path string
	o    *option
	n    *yaml.Node
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
	resolveAliases(&doc, map[*yaml.Node]bool{})
	root := doc.Content[0]
	section := l.st.app.section()
	if root.Kind != yaml.MappingNode {
		return []string{fmt.Sprintf("--config %s: must be a mapping with meta, %s and transforms", path, section)}
	}
	var meta, own, transforms *yaml.Node
	for _, kv := range l.pairs("", root) {
		switch key, v := kv[0].Value, kv[1]; key {
		case "apiVersion":
			if v.Kind != yaml.ScalarNode || (v.Value != ConfigAPIVersion && v.Value != ConfigAPIVersionFluvio) {
				l.problem("apiVersion", "must be %s (Culvert's layout) or %s (Fluvio's)", ConfigAPIVersion, ConfigAPIVersionFluvio)
			}
		case "meta":
			meta = v
		case section:
			own = v
		case "transforms":
			transforms = v
		default:
			l.problem(key, "unknown key (want apiVersion, meta, %s or transforms)", section)
		}
	}
	settings := l.readMeta(meta)
	l.resolveSecrets()
	settings = append(settings, l.readSection(section, own)...)
	for _, s := range settings {
		l.apply(s)
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

// option returns the shared (shared true) or own option named name.
func (l *loader) option(name string, shared bool) *option {
	o := l.st.optionByName(name)
	if o == nil || o.shared != shared {
		return nil
	}
	return o
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (l *loader) scalarString(path string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		l.problem(path, "must be a string")
		return "", false
	}
	return n.Value, true
}

// mapping checks that n is a mapping and returns its pairs.
func (l *loader) mapping(path string, n *yaml.Node, what string) ([][2]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		l.problem(path, "must be a mapping %s", what)
		return nil, false
	}
	return l.pairs(path+".", n), true
}

// give records that the file gives option name at path, once.
func (l *loader) give(path, name string, shared bool, n *yaml.Node) []setting {
	o := l.option(name, shared)
	if o == nil {
		l.problem(path, "unknown key")
		return nil
	}
	if other, ok := l.fromFile[name]; ok {
		l.problem(path, "is given as %s too", other)
		return nil
	}
	l.fromFile[name] = path
	return []setting{{path, o, n}}
}

// readMeta checks meta's own keys and returns the shared options given in
// it, Fluvio's topic, consumer and producer settings mapped to Culvert's
// options.
func (l *loader) readMeta(meta *yaml.Node) []setting {
	l.declared = map[string]bool{}
	name := l.st.app.info.Name
	if meta == nil || isNull(meta) {
		l.problem("meta.type", "missing (this is %s)", name)
		return nil
	}
	pairs, ok := l.mapping("meta", meta, "with name, type, topic and other shared options")
	if !ok {
		return nil
	}
	var out []setting
	hasType := false
	for _, kv := range pairs {
		key, v := kv[0].Value, kv[1]
		switch p := "meta." + key; key {
		case "name":
			if s, ok := l.scalarString(p, v); ok {
				l.st.cfg.name = s
			}
		case "version":
			// The connector's version, as Fluvio's meta has it: informative only.
		case "type":
			hasType = true
			if s, ok := l.scalarString(p, v); ok && s != name {
				l.problem(p, "is %s, this is %s", s, name)
			}
		case "secrets":
			l.readSecretList(v)
		case "topic":
			if v.Kind == yaml.MappingNode {
				out = append(out, l.readTopic(p, v)...)
			} else {
				out = append(out, l.give(p, "topic", true, v)...)
			}
		case "consumer":
			out = append(out, l.readConsumer(p, v)...)
		case "producer":
			out = append(out, l.readProducer(p, v)...)
		default:
			o := l.option(key, true)
			switch {
			case o != nil && o.kind != "":
				l.problem(p, "transforms go in the transforms list")
			case o != nil:
				out = append(out, l.give(p, key, true, v)...)
			case l.option(key, false) != nil:
				l.problem(p, "unknown key (%s's own options go under %s)", name, l.st.app.section())
			default:
				l.problem(p, "unknown key")
			}
		}
	}
	if !hasType {
		l.problem("meta.type", "missing (this is %s)", name)
	}
	return out
}

// unsupported reports a Fluvio setting that Culvert has no option for.
func (l *loader) unsupported(path string) {
	l.problem(path, "a Fluvio setting that Culvert does not support")
}

// readTopic reads Fluvio 0.2.0's topic mapping: meta.name is the topic,
// partition.count the bus's partitions.
func (l *loader) readTopic(path string, n *yaml.Node) []setting {
	pairs, _ := l.mapping(path, n, "")
	var out []setting
	for _, kv := range pairs {
		p := path + "." + kv[0].Value
		switch kv[0].Value {
		case "version":
			// informative only, as meta.version
		case "meta":
			out = append(out, l.readOne(p, kv[1], "name", "topic")...)
		case "partition":
			out = append(out, l.readOne(p, kv[1], "count", "bus_partitions")...)
		default:
			l.unsupported(p)
		}
	}
	return out
}

// readOne reads the Fluvio mapping n at path, whose one key, key, gives
// the shared option name; its other keys are settings Culvert does not
// support.
func (l *loader) readOne(path string, n *yaml.Node, key, name string) []setting {
	pairs, _ := l.mapping(path, n, "with "+key)
	var out []setting
	for _, kv := range pairs {
		if kv[0].Value == key {
			out = append(out, l.give(path+"."+key, name, true, kv[1])...)
		} else {
			l.unsupported(path + "." + kv[0].Value)
		}
	}
	return out
}

// readConsumer reads Fluvio's consumer settings: id is a sink's group,
// offset.start (beginning or end) where a new group starts.
func (l *loader) readConsumer(path string, n *yaml.Node) []setting {
	if l.st.app.direction != DirectionSink {
		l.problem(path, "a source has no consumer settings")
		return nil
	}
	pairs, _ := l.mapping(path, n, "with id and offset")
	var out []setting
	for _, kv := range pairs {
		p := path + "." + kv[0].Value
		switch kv[0].Value {
		case "id":
			out = append(out, l.give(p, "group", true, kv[1])...)
		case "offset":
			out = append(out, l.readOne(p, kv[1], "start", "from")...)
		default:
			l.unsupported(p)
		}
	}
	return out
}

// readProducer reads Fluvio's producer settings: linger is a source's.
func (l *loader) readProducer(path string, n *yaml.Node) []setting {
	if l.st.app.direction != DirectionSource {
		l.problem(path, "a sink has no producer settings")
		return nil
	}
	pairs, _ := l.mapping(path, n, "with linger")
	var out []setting
	for _, kv := range pairs {
		p := path + "." + kv[0].Value
		switch kv[0].Value {
		case "linger":
			out = append(out, l.give(p, "linger", true, kv[1])...)
		case "batch-size":
			l.problem(p, "a Fluvio setting in bytes that Culvert does not support (meta.batch_size counts records)")
		default:
			l.unsupported(p)
		}
	}
	return out
}

// readSection returns the connector's own options given in its section.
func (l *loader) readSection(section string, n *yaml.Node) []setting {
	if n == nil || isNull(n) {
		return nil
	}
	pairs, ok := l.mapping(section, n, "of the connector's options")
	if !ok {
		return nil
	}
	var out []setting
	for _, kv := range pairs {
		p := section + "." + kv[0].Value
		switch {
		case l.option(kv[0].Value, false) != nil:
			out = append(out, l.give(p, kv[0].Value, false, kv[1])...)
		case l.option(kv[0].Value, true) != nil:
			l.problem(p, "unknown option (shared options go under meta)")
		default:
			l.problem(p, "unknown option")
		}
	}
	return out
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
		l.st.cfg.declared = append(l.st.cfg.declared, name)
		v, ok := l.st.lookup(name)
		if !ok {
			v, ok = l.secrets[name]
		}
		if !ok {
			missing = append(missing, name)
			continue
		}
		l.resolved[name] = v
		l.st.cfg.red.add(v)
	}
	slices.Sort(l.st.cfg.declared)
	slices.Sort(missing)
	for _, name := range missing {
		l.problem("meta.secrets", "%s is declared but set neither in the secrets file nor in the environment", name)
	}
}

// subst replaces ${{ secrets.NAME }} in s; found says whether s had any.
func (l *loader) subst(path, s string) (out string, found bool) {
	out = SecretRef.ReplaceAllStringFunc(s, func(ref string) string {
		found = true
		name := SecretRef.FindStringSubmatch(ref)[1]
		if !l.declared[name] {
			l.problem(path, "secret %s is not declared in meta.secrets", name)
			return ""
		}
		return l.resolved[name]
	})
	return out, found
}

// values turns a node into the strings that o's flag.Value.Set takes,
// checking its type against o's schema; refs says whether the values had
// secret references.
func (l *loader) values(path string, o *option, n *yaml.Node) (vals []string, refs, ok bool) {
	if o.isArr {
		items := n.Content
		if n.Kind == yaml.ScalarNode {
			items = []*yaml.Node{n}
		} else if n.Kind != yaml.SequenceNode {
			l.problem(path, "must be a list of strings")
			return nil, false, false
		}
		for i, it := range items {
			p := fmt.Sprintf("%s[%d]", path, i)
			if it.Kind != yaml.ScalarNode || isNull(it) {
				l.problem(p, "must be a string")
				return nil, false, false
			}
			s, found := l.subst(p, it.Value)
			vals = append(vals, s)
			refs = refs || found
		}
		return vals, refs, true
	}
	s, refs, ok := l.scalar(o, n, path)
	if !ok {
		l.problem(path, "must be %s", typeWords(o.prop.Type))
		return nil, false, false
	}
	return []string{s}, refs, true
}

// scalar returns a scalar node's value as o's flag takes it.
func (l *loader) scalar(o *option, n *yaml.Node, path string) (string, bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return "", false, false
	}
	switch o.prop.Type {
	case "integer":
		var i int64
		if n.Tag == "!!int" && n.Decode(&i) == nil {
			return strconv.FormatInt(i, 10), false, true
		}
	case "number":
		var f float64
		if (n.Tag == "!!int" || n.Tag == "!!float") && n.Decode(&f) == nil {
			return strconv.FormatFloat(f, 'g', -1, 64), false, true
		}
	case "boolean":
		var b bool
		if n.Tag == "!!bool" && n.Decode(&b) == nil {
			return strconv.FormatBool(b), false, true
		}
	default:
		if isNull(n) {
			return "", false, false
		}
		s, found := l.subst(path, n.Value)
		return s, found, true
	}
	// A secret may stand for a number or a boolean.
	if s, found := l.subst(path, n.Value); found && n.Tag == "!!str" {
		return s, true, true
	}
	return "", false, false
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

// apply sets an option from the file unless its flag or environment
// variable sets it; the value is checked either way.
func (l *loader) apply(s setting) {
	if isNull(s.n) {
		return
	}
	before := len(l.problems)
	defer func() {
		if len(l.problems) > before {
			s.o.fileFailed = true
		}
	}()
	vals, refs, ok := l.values(s.path, s.o, s.n)
	if !ok {
		return
	}
	if !s.o.isArr {
		// Check the value on a scratch copy, so that a bad value is
		// reported even when a flag or the environment overrides it.
		if err := setValue(newLike(s.o), vals[0]); err != nil {
			l.problem(s.path, "%v", err)
			return
		}
	}
	if l.overridden(s.o) {
		return
	}
	if err := setFrom(l.st.fs.Lookup(s.o.flag), vals); err != nil {
		l.problem(s.path, "%v", err)
		return
	}
	s.o.origin = s.path
	if refs {
		l.st.cfg.written[s.o.name] = writtenValues(s.n)
	}
}

// writtenValues returns a node's strings as written in the file.
func writtenValues(n *yaml.Node) []string {
	if n.Kind == yaml.SequenceNode {
		var out []string
		for _, it := range n.Content {
			out = append(out, it.Value)
		}
		return out
	}
	return []string{n.Value}
}

// overridden says whether o's flag or environment variable sets it.
func (l *loader) overridden(o *option) bool {
	if l.st.fs.Lookup(o.flag).Changed {
		return true
	}
	_, ok := l.st.lookup(o.env)
	return ok
}

// transformsHelp says what a transforms item may be.
const transformsHelp = "must be one of map, filter, arraymap or filter_map with a jq expression, such as {filter: '.amount > 50'}, or {uses: filter, with: {expr: '.amount > 50'}}"

// readTransforms reads the file's transforms, in the file's order: Culvert's
// {map: EXPR} or Fluvio's {uses: map, with: {expr: EXPR}}. A transform
// Culvert cannot run is a problem naming it.
func (l *loader) readTransforms(n *yaml.Node) {
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.problem("transforms", "must be a list such as [{filter: '.amount > 50'}, {map: '.priority = 1'}]")
		return
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("transforms[%d]", i)
		if item.Kind != yaml.MappingNode || len(item.Content) == 0 {
			l.problem(p, transformsHelp)
			continue
		}
		kind, expr := l.readTransform(p, item)
		if kind == "" {
			continue
		}
		resolved, _ := l.subst(p, expr.Value)
		l.st.transforms.file = append(l.st.transforms.file, transform.Step{Kind: kind, Expr: resolved, Written: expr.Value})
		l.st.transforms.fileWritten = append(l.st.transforms.fileWritten, expr.Value)
	}
}

// readTransform returns one item's kind and expression node, or "" after
// reporting a problem.
func (l *loader) readTransform(p string, item *yaml.Node) (transform.Kind, *yaml.Node) {
	pairs := l.pairs(p+".", item)
	if len(pairs) == 1 && pairs[0][0].Value != "uses" {
		k, v := pairs[0][0], pairs[0][1]
		kind := transformKind(k.Value)
		if kind == "" || k.Value != string(kind) {
			l.problem(p+"."+k.Value, "unknown transform (want map, filter, arraymap or filter_map)")
			return "", nil
		}
		if v.Kind != yaml.ScalarNode || isNull(v) {
			l.problem(p+"."+k.Value, "must be a jq expression")
			return "", nil
		}
		return kind, v
	}
	var uses, with *yaml.Node
	for _, kv := range pairs {
		switch kv[0].Value {
		case "uses":
			uses = kv[1]
		case "with":
			with = kv[1]
		default:
			l.problem(p, transformsHelp)
			return "", nil
		}
	}
	if uses == nil {
		l.problem(p, transformsHelp)
		return "", nil
	}
	name, ok := l.scalarString(p+".uses", uses)
	if !ok {
		return "", nil
	}
	kind := usesKind(name)
	if kind == "" {
		l.problem(p+".uses", "%s is not a transform Culvert can run: Culvert runs jq, as uses: map, filter, arraymap or filter_map with with: {expr: EXPR}", name)
		return "", nil
	}
	if with == nil || with.Kind != yaml.MappingNode {
		l.problem(p+".with", "must be {expr: EXPR}, the jq expression of %s", kind)
		return "", nil
	}
	var expr *yaml.Node
	for _, kv := range l.pairs(p+".with.", with) {
		if kv[0].Value != "expr" {
			l.problem(p+".with."+kv[0].Value, "unknown key (want expr)")
			return "", nil
		}
		expr = kv[1]
	}
	if expr == nil || expr.Kind != yaml.ScalarNode || isNull(expr) {
		l.problem(p+".with.expr", "must be a jq expression")
		return "", nil
	}
	return kind, expr
}

// usesKind returns the transform kind a uses: names: map, filter, arraymap
// or filter_map, optionally as culvert/NAME and with an @version.
func usesKind(name string) transform.Kind {
	name, _, _ = strings.Cut(name, "@")
	name = strings.TrimPrefix(name, "culvert/")
	if k := transformKind(name); k != "" && (name == string(k) || name == strings.ReplaceAll(string(k), "_", "-")) {
		return k
	}
	return ""
}

// defaultGroup makes meta.name a sink's consumer group when nothing else
// sets the group.
func (l *loader) defaultGroup() {
	o := l.option("group", true)
	if l.st.app.direction != DirectionSink || l.st.cfg.name == "" || o == nil || l.fromFile[o.name] != "" || l.overridden(o) {
		return
	}
	if err := setFrom(l.st.fs.Lookup(o.flag), []string{l.st.cfg.name}); err != nil {
		l.problem("meta.name", "%v", err)
		return
	}
	o.origin = "meta.name"
}

// resolveAliases replaces YAML aliases (*name) by the nodes they name, so
// that anchors work like copies. Each node is visited once: aliases that
// name each other many times over (billion laughs) or in a cycle cost no
// more than the document's size.
func resolveAliases(n *yaml.Node, seen map[*yaml.Node]bool) {
	if seen[n] {
		return
	}
	seen[n] = true
	for i, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias != nil {
			n.Content[i] = c.Alias
		}
		resolveAliases(n.Content[i], seen)
	}
}
