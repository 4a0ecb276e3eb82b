package cli

import (
	"strings"

	"github.com/culvert-dev/culvert/common/transform"
)

// transformList is the one ordered list of transforms, whichever of the
// flags, the environment and the config file gave it. Like any option, the
// flags' list beats the environment's, which beats the file's: the list
// that runs is the first of them that has a transform, whole and in its
// own order.
type transformList struct {
	flags []transform.Step // in command-line order
	env   []transform.Step // in the order of transform.Kinds
	file  []transform.Step // in the file's order
	// fileWritten holds each of file's expressions as written, with its
	// ${{ secrets.NAME }} references: config prints them so.
	fileWritten []string
}

// written returns the expressions of steps() as config prints them.
func (l *transformList) written() []string {
	steps := l.steps()
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Expr
		if len(l.flags) == 0 && len(l.env) == 0 {
			out[i] = l.fileWritten[i]
		}
	}
	return out
}

// steps returns the transforms that run, in the order they run.
func (l *transformList) steps() []transform.Step {
	switch {
	case len(l.flags) > 0:
		return l.flags
	case len(l.env) > 0:
		return l.env
	}
	return l.file
}

// origin names where the transforms that run come from, for errors.
func (l *transformList) origin() string {
	switch {
	case len(l.flags) > 0:
		return "flags"
	case len(l.env) > 0:
		return "environment"
	}
	return "config file"
}

// fill sets the transform options of c (--map, --filter, ...) from the
// list, so that they show what runs.
func (l *transformList) fill(c *Common) {
	c.Map, c.Filter, c.ArrayMap, c.FilterMap = nil, nil, nil, nil
	for _, s := range l.steps() {
		switch s.Kind {
		case transform.Map:
			c.Map = append(c.Map, s.Expr)
		case transform.Filter:
			c.Filter = append(c.Filter, s.Expr)
		case transform.ArrayMap:
			c.ArrayMap = append(c.ArrayMap, s.Expr)
		case transform.FilterMap:
			c.FilterMap = append(c.FilterMap, s.Expr)
		}
	}
}

// transformFlag is a repeatable jq flag (--map, --filter, ...): each use
// appends a step to the flags' list, so that transforms apply in
// command-line order.
type transformFlag struct {
	kind transform.Kind
	list *transformList
}

func (v *transformFlag) String() string {
	var exprs []string
	for _, s := range v.list.flags {
		if s.Kind == v.kind {
			exprs = append(exprs, s.Expr)
		}
	}
	return strings.Join(exprs, " ")
}

func (v *transformFlag) Type() string { return "jq" }

func (v *transformFlag) Set(s string) error {
	v.list.flags = append(v.list.flags, transform.Step{Kind: v.kind, Expr: s})
	return nil
}

// transformKind returns the transform kind named name (map, filter,
// arraymap, filter_map; filter-map too), or "".
func transformKind(name string) transform.Kind {
	name = strings.ReplaceAll(name, "-", "_")
	for _, k := range transform.Kinds {
		if string(k) == name {
			return k
		}
	}
	return ""
}
