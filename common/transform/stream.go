package transform

import (
	"context"
	"errors"
	"strings"

	"github.com/itchyny/gojq"
)

// A stream evaluates one step over many values with one long-running gojq
// program fed a value at a time. Setting up gojq's interpreter once per
// batch instead of once per record halves the cost of a step. For each
// value the program gives one array: the outputs of the expression that
// the step's kind needs. It gives them all only while they fit (one for
// --map and --filter, max for --arraymap) and stops at the first for
// --filter-map, so that an expression with endless outputs, such as
// repeat(.), never runs on here. Anything else (an error, a halt, too many
// outputs) makes the caller evaluate that value the ordinary way, step.run,
// which is the reference for every result and message.
type stream struct {
	code *gojq.Code
	feed *feed
	it   gojq.Iter
	ctx  context.Context // what it runs with
	n    int             // outputs of the current value so far
	max  int             // most outputs of the current value
}

// feed is the program's input: one value, taken once.
type feed struct {
	v   any
	has bool
}

// Next gives the program the value set by eval, once.
func (f *feed) Next() (any, bool) {
	if !f.has {
		return nil, false
	}
	f.has = false
	return f.v, true
}

// errStreamLimit stops a streamed value whose outputs do not fit.
var errStreamLimit = errors.New("too many outputs to stream")

// newStream compiles s for streaming, or returns nil when it cannot stream:
// an expression that reads input itself or halts runs the ordinary way.
func newStream(s Step) *stream {
	if strings.Contains(s.Expr, "input") || strings.Contains(s.Expr, "halt") {
		return nil
	}
	// A trailing comment must not swallow the wrapper, hence the newline.
	// --filter-map takes the first output as first() does; the others count
	// outputs with a Go function, cheaper than limit().
	wrapped := "inputs | try [" + s.Expr + "\n| _culvert_count] catch null"
	if s.Kind == FilterMap {
		wrapped = "inputs | try [label $_culvert_first | " + s.Expr + "\n| ., break $_culvert_first] catch null"
	}
	q, err := gojq.Parse(wrapped)
	if err != nil {
		return nil
	}
	st := &stream{feed: &feed{}}
	code, err := gojq.Compile(q, gojq.WithInputIter(st.feed),
		gojq.WithFunction("_culvert_count", 0, 0, func(v any, _ []any) any {
			if st.n++; st.n > st.max {
				return errStreamLimit
			}
			return v
		}))
	if err != nil {
		return nil
	}
	st.code = code
	return st
}

// reset starts a new program run at the next value, so that whatever the
// interpreter accumulates stays bounded by a batch.
func (st *stream) reset() { st.it = nil }

// eval returns the outputs of the step for v, at most max of them, or false
// when v must be evaluated the ordinary way.
func (st *stream) eval(ctx context.Context, v any, max int) ([]any, bool) {
	if st.it == nil || st.ctx != ctx {
		st.it, st.ctx = st.code.RunWithContext(ctx, nil), ctx
	}
	st.feed.v, st.feed.has = v, true
	st.n, st.max = 0, max
	x, ok := st.it.Next()
	if !ok || st.feed.has {
		st.it, st.feed.has = nil, false
		return nil, false
	}
	outs, isArray := x.([]any)
	if !isArray {
		if _, isErr := x.(error); isErr {
			st.it = nil
		}
		return nil, false
	}
	return outs, true
}

// run applies step s (number i of the chain) to v, streamed when it can,
// appending its outputs to out, which may hold no more than max values.
func (sc *scratch) run(i int, s *step, out []any, v any, max int) ([]any, error) {
	if s.fast != nil {
		if out, ok, err := s.runFast(out, v, max); ok {
			return out, err
		}
	}
	if i < len(sc.streams) && sc.streams[i] != nil {
		limit := 1
		if s.Kind == ArrayMap {
			limit = max - len(out)
		}
		if outs, ok := sc.streams[i].eval(sc.ctx, v, limit); ok {
			switch s.Kind {
			case Filter:
				if len(outs) > 0 && outs[0] != nil && outs[0] != false {
					return add(out, v, max)
				}
				return out, nil
			case FilterMap:
				if len(outs) > 0 {
					return add(out, outs[0], max)
				}
				return out, nil
			case ArrayMap:
				return append(out, outs...), nil
			case Map:
				if len(outs) == 1 {
					return add(out, outs[0], max)
				}
			}
		}
	}
	return s.run(sc.ctx, out, v, max)
}

// runFast applies step s to v with its fast path, appending its outputs to
// out, which may hold no more than max values. It returns false when gojq
// must evaluate v: on an error (for its message), on a bail, and when a
// --map has no output.
func (s *step) runFast(out []any, v any, max int) ([]any, bool, error) {
	x, st := s.fast(v)
	switch {
	case st == fastOK && s.Kind == Filter:
		if truthy(x) {
			out, err := add(out, v, max)
			return out, true, err
		}
		return out, true, nil
	case st == fastOK:
		out, err := add(out, x, max)
		return out, true, err
	case st == fastEmpty && s.Kind != Map:
		return out, true, nil
	}
	return out, false, nil
}
