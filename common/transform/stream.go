package transform

import (
	"strings"

	"github.com/itchyny/gojq"
)

// A stream evaluates one step over many values with one long-running gojq
// program, `inputs | try [E] catch ...`, fed a value at a time. Setting up
// gojq's interpreter once per batch instead of once per record halves the
// cost of a step. It gives exactly one array per value: all of E's
// outputs, so an expression must have a finite number of them. Anything
// else (an error, a halt, a --map with other than one output) makes the
// caller evaluate that value the ordinary way, step.run, which is the
// reference for every result and message.
type stream struct {
	code *gojq.Code
	feed *feed
	it   gojq.Iter
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

// newStream compiles s for streaming, or returns nil when it cannot stream:
// an expression that reads input itself or halts runs the ordinary way.
func newStream(s Step) *stream {
	if strings.Contains(s.Expr, "input") || strings.Contains(s.Expr, "halt") {
		return nil
	}
	// A trailing comment must not swallow the wrapper. Every output of the
	// expression is collected (as jq's select does); wrapping it in first()
	// or limit() would cost more than the expression itself.
	q, err := gojq.Parse("inputs | try [" + s.Expr + "\n] catch null")
	if err != nil {
		return nil
	}
	f := &feed{}
	code, err := gojq.Compile(q, gojq.WithInputIter(f))
	if err != nil {
		return nil
	}
	return &stream{code: code, feed: f}
}

// reset starts a new program run at the next value, so that whatever the
// interpreter accumulates stays bounded by a batch.
func (st *stream) reset() { st.it = nil }

// eval returns the outputs of the step for v, or false when v must be
// evaluated the ordinary way.
func (st *stream) eval(v any) ([]any, bool) {
	if st.it == nil {
		st.it = st.code.Run(nil)
	}
	st.feed.v, st.feed.has = v, true
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

// run applies step s (number i of the chain) to v, streamed when it can.
func (sc *scratch) run(i int, s *step, out []any, v any) ([]any, error) {
	if i < len(sc.streams) && sc.streams[i] != nil {
		if outs, ok := sc.streams[i].eval(v); ok {
			switch s.Kind {
			case Filter:
				if len(outs) > 0 && outs[0] != nil && outs[0] != false {
					out = append(out, v)
				}
				return out, nil
			case FilterMap:
				return append(out, outs[:min(1, len(outs))]...), nil
			case ArrayMap:
				return append(out, outs...), nil
			case Map:
				if len(outs) == 1 {
					return append(out, outs[0]), nil
				}
			}
		}
	}
	return s.run(out, v)
}
