package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/culvert-dev/culvert/common/transform"
)

// EnvPrefix starts the environment variable of every option.
const EnvPrefix = "CULVERT_"

// EnvName returns the environment variable of a shared option, one that
// every connector has: CULVERT_BATCH_SIZE.
func EnvName(name string) string { return EnvPrefix + strings.ToUpper(name) }

// OwnEnvName returns the environment variable of a connector's own option:
// the connector's name comes first (CULVERT_FILE_SOURCE_PATH), so that a
// variable set for one connector is never read by another.
func OwnEnvName(connector, name string) string {
	return EnvPrefix + envWord(connector) + "_" + strings.ToUpper(name)
}

func envWord(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// Variables that are not options but that a connector reads or that its
// tools set, so that they are never reported as unknown.
var otherVariables = []string{
	"CULVERT_CONFIG",      // --config
	"CULVERT_SECRETS",     // --secrets
	"CULVERT_CPUPROFILE",  // a CPU profile of the run (runMain)
	"CULVERT_JQ_FASTPATH", // off: gojq evaluates every transform (common/transform, fast.go)
	"CULVERT_BIN",         // the directory of the built connectors (Makefiles, bats tests)
}

// otherConnector matches the variables of some connector's own options:
// CULVERT_<NAME>_SOURCE_... or CULVERT_<NAME>_SINK_....
var otherConnector = regexp.MustCompile(`^CULVERT_[A-Z0-9_]+?_(SOURCE|SINK)_[A-Z0-9_]`)

// applyEnv sets each option whose flag was not given from its environment
// variable, if set. A repeatable option takes one value per line; the
// transforms of the environment become one list, in the order of
// transform.Kinds.
func (st *state) applyEnv() []string {
	var problems []string
	for _, k := range transform.Kinds {
		o := st.optionByName(string(k))
		if o == nil {
			continue
		}
		if val, ok := st.lookup(o.env); ok {
			for _, e := range strings.Split(strings.TrimRight(val, "\n"), "\n") {
				st.transforms.env = append(st.transforms.env, transform.Step{Kind: k, Expr: e})
			}
		}
	}
	for _, o := range st.opts {
		fl := st.fs.Lookup(o.flag)
		if fl.Changed || o.kind != "" {
			continue
		}
		val, ok := st.lookup(o.env)
		if !ok {
			continue
		}
		vals := []string{val}
		if o.isArr {
			vals = strings.Split(strings.TrimRight(val, "\n"), "\n")
		}
		o.origin = "--" + o.flag + " (from " + o.env + ")"
		if err := setFrom(fl, vals); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", o.origin, err))
		}
	}
	return problems
}

// unknownEnv returns a line for each CULVERT_ variable of the environment
// that names no option of this connector, with a suggestion where one is
// close. Variables of other connectors' own options are no concern of this
// one, and neither are otherVariables.
func (st *state) unknownEnv() []string {
	known := map[string]bool{}
	var names []string
	for _, o := range st.opts {
		known[o.env] = true
		names = append(names, o.env)
	}
	own := EnvPrefix + envWord(st.app.info.Name) + "_"
	var out []string
	for _, kv := range st.environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || slices.Contains(otherVariables, name) {
			continue
		}
		if !strings.HasPrefix(name, own) && otherConnector.MatchString(name) {
			continue
		}
		msg := fmt.Sprintf("environment variable %s is no option of %s", name, st.app.info.Name)
		if s := closest(name, names, own); s != "" {
			msg += "; did you mean " + s + "?"
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// closest returns the name among names that is nearest to name, if it is
// near enough to be a typo, or the connector's own variable of the same
// option when name is a shared-style name of one (CULVERT_PATH for
// CULVERT_FILE_SOURCE_PATH).
func closest(name string, names []string, own string) string {
	if slices.Contains(names, own+strings.TrimPrefix(name, EnvPrefix)) {
		return own + strings.TrimPrefix(name, EnvPrefix)
	}
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
