package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	gojson "github.com/goccy/go-json"
	"github.com/itchyny/gojq"

	"github.com/culvert-dev/culvert/common/record"
)

// Kind is the kind of a transform step.
type Kind string

// The kinds of step, named as their options are.
const (
	// Map replaces the value with the expression's single output.
	Map Kind = "map"
	// Filter keeps the record when the expression's first output is neither
	// false nor null (as jq's select does).
	Filter Kind = "filter"
	// ArrayMap makes one record per output of the expression (e.g. .items[]).
	ArrayMap Kind = "arraymap"
	// FilterMap keeps the expression's first output if there is one, and
	// drops the record otherwise.
	FilterMap Kind = "filter_map"
)

// Kinds lists the kinds in the order that applies when their order was not
// given (environment variables).
var Kinds = []Kind{Map, Filter, ArrayMap, FilterMap}

// Flag returns the command-line flag of kind k, such as "--filter-map".
func (k Kind) Flag() string { return "--" + strings.ReplaceAll(string(k), "_", "-") }

// Step is one transform: a kind and a jq expression.
type Step struct {
	Kind Kind
	Expr string
}

type step struct {
	Step
	code *gojq.Code
}

// Chain is a compiled list of steps. It is safe for concurrent use.
type Chain struct {
	steps    []step
	pool     sync.Pool // of *scratch
	noStream bool      // evaluate every record the ordinary way (tests)
}

// Compile compiles steps. An error names the step's flag and expression.
func Compile(steps []Step) (*Chain, error) {
	c := &Chain{}
	for _, s := range steps {
		switch s.Kind {
		case Map, Filter, ArrayMap, FilterMap:
		default:
			return nil, fmt.Errorf("unknown transform %q", s.Kind)
		}
		q, err := gojq.Parse(s.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", s.Kind.Flag(), s.Expr, err)
		}
		code, err := gojq.Compile(q)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", s.Kind.Flag(), s.Expr, err)
		}
		c.steps = append(c.steps, step{Step: s, code: code})
	}
	return c, nil
}

// Empty reports whether the chain has no steps; records then pass through
// untouched, JSON or not.
func (c *Chain) Empty() bool { return c == nil || len(c.steps) == 0 }

// Error is a record that a transform could not handle.
type Error struct {
	// Step is the failing step ("--map .x"), or "decode" when the value is not JSON.
	Step string
	Err  error
}

// Error returns "step: error".
func (e *Error) Error() string { return e.Step + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Apply runs the chain on one record and returns its output records: none
// when filtered out, several with --arraymap. Outputs keep the input's key,
// headers, time and offset.
func (c *Chain) Apply(r record.Record) ([]record.Record, error) {
	var sc scratch
	return c.apply(nil, r, &sc)
}

// scratch holds what is reused from one record to the next: buffers and
// the streams of the steps.
type scratch struct {
	cur, next []any
	streams   []*stream
}

// getScratch returns a scratch with streams for c's steps, fresh for a batch.
func (c *Chain) getScratch() *scratch {
	if sc, ok := c.pool.Get().(*scratch); ok {
		for _, st := range sc.streams {
			if st != nil {
				st.reset()
			}
		}
		return sc
	}
	sc := &scratch{streams: make([]*stream, len(c.steps))}
	if !c.noStream {
		for i, s := range c.steps {
			sc.streams[i] = newStream(s.Step)
		}
	}
	return sc
}

func (c *Chain) apply(out []record.Record, r record.Record, sc *scratch) ([]record.Record, error) {
	if c.Empty() {
		return append(out, r), nil
	}
	v, err := decode(r.Value)
	if err != nil {
		return out, &Error{Step: "decode", Err: fmt.Errorf("value is not JSON: %w", err)}
	}
	vals := append(sc.cur[:0], v)
	changed := false // only filters ran: the value is the input's, bytes and all
	for i := range c.steps {
		s := &c.steps[i]
		next := sc.next[:0]
		for _, v := range vals {
			if next, err = sc.run(i, s, next, v); err != nil {
				return out, &Error{Step: string(s.Kind.Flag()) + " " + s.Expr, Err: err}
			}
		}
		sc.cur, sc.next = next, vals
		vals = next
		if len(vals) == 0 {
			return out, nil
		}
		changed = changed || s.Kind != Filter
	}
	if !changed {
		return append(out, r), nil
	}
	for _, v := range vals {
		b, err := gojq.Marshal(v)
		if err != nil {
			return out, &Error{Step: "encode", Err: err}
		}
		o := r
		o.Value = b
		out = append(out, o)
	}
	clear(sc.cur) // let the values be collected
	return out, nil
}

// decode parses a JSON value. goccy/go-json is twice as fast as
// encoding/json but decodes numbers to float64; a value with a long run of
// digits (an integer beyond 2^53 would lose precision) goes through
// encoding/json with UseNumber instead, which gojq handles exactly.
func decode(b []byte) (any, error) {
	if !hasLongNumber(b) {
		var v any
		if err := gojson.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

func hasLongNumber(b []byte) bool {
	run := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			if run++; run >= 16 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

func (s *step) run(out []any, v any) ([]any, error) {
	it := s.code.Run(v)
	first := true
	for {
		x, ok := it.Next()
		if !ok {
			break
		}
		if err, isErr := x.(error); isErr {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			return out, err
		}
		switch s.Kind {
		case Filter:
			if x != nil && x != false {
				out = append(out, v)
			}
			return out, nil
		case FilterMap:
			return append(out, x), nil
		case Map:
			if !first {
				return out, errors.New("produced more than one output (use --arraymap for one record per output)")
			}
			out = append(out, x)
		case ArrayMap:
			out = append(out, x)
		}
		first = false
	}
	if s.Kind == Map && first {
		return out, errors.New("produced no output (use --filter-map to drop such records)")
	}
	return out, nil
}

// Failed is a record that could not be transformed, with the reason.
type Failed struct {
	Record record.Record
	Err    *Error
}

// minChunk is the fewest records worth handing to another goroutine.
const minChunk = 256

// Result is what a chain made of a batch of records.
type Result struct {
	// Out are the output records, in input order.
	Out []record.Record
	// Failed are the records a step could not handle.
	Failed []Failed
	// Dropped counts the records filtered out: no output and no error.
	Dropped int
}

// ApplyBatch runs the chain over recs in this goroutine.
func (c *Chain) ApplyBatch(recs []record.Record) Result {
	if c.Empty() {
		return Result{Out: recs}
	}
	return c.applyRange(recs)
}

// ApplyParallel is ApplyBatch spread over all CPUs.
func (c *Chain) ApplyParallel(recs []record.Record) Result {
	if c.Empty() {
		return Result{Out: recs}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(recs)+minChunk-1)/minChunk)
	if workers <= 1 {
		return c.applyRange(recs)
	}
	results := make([]Result, workers)
	per := (len(recs) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(recs))
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			results[w] = c.applyRange(recs[lo:hi])
		}(w)
	}
	wg.Wait()
	n := 0
	for _, r := range results {
		n += len(r.Out)
	}
	all := Result{Out: make([]record.Record, 0, n)}
	for _, r := range results {
		all.Out = append(all.Out, r.Out...)
		all.Failed = append(all.Failed, r.Failed...)
		all.Dropped += r.Dropped
	}
	return all
}

func (c *Chain) applyRange(recs []record.Record) Result {
	res := Result{Out: make([]record.Record, 0, len(recs))}
	sc := c.getScratch()
	defer c.pool.Put(sc)
	for _, r := range recs {
		before := len(res.Out)
		var err error
		if res.Out, err = c.apply(res.Out, r, sc); err != nil {
			var te *Error
			errors.As(err, &te)
			res.Failed = append(res.Failed, Failed{Record: r, Err: te})
		} else if len(res.Out) == before {
			res.Dropped++
		}
	}
	return res
}
