package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// Filter keeps the record when the expression's single output is neither
	// false nor null; more than one output is an error (use any or all).
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
	// Expr is the expression evaluated, secrets resolved.
	Expr string
	// Written is the expression as written, such as a config file's with
	// its ${{ secrets.NAME }} references: what errors and dead letters
	// show. Empty means Expr.
	Written string
}

// String returns the step as errors and dead letters name it: its flag and
// the expression as written, such as "--map .a".
func (s Step) String() string {
	return s.Kind.Flag() + " " + s.written()
}

func (s Step) written() string {
	if s.Written != "" {
		return s.Written
	}
	return s.Expr
}

type step struct {
	Step
	code *gojq.Code
	fast fastFn  // the fast path (fast.go), nil when gojq evaluates every value
	set  *setKey // a --map .key = expr that may change a value in place, or nil
}

// Chain is a compiled list of steps. It is safe for concurrent use.
type Chain struct {
	steps      []step
	raw        *rawPlan  // the raw path (raw.go), or nil
	pool       sync.Pool // of *scratch
	noStream   bool      // evaluate every record the ordinary way (tests)
	maxOutputs int
	timeout    time.Duration
}

// The limits of a chain that Compile was given no option for.
const (
	// DefaultMaxOutputs is the most records one input record may become.
	DefaultMaxOutputs = 10_000
	// DefaultTimeout is the longest the chain may take over one record.
	DefaultTimeout = time.Second
)

// Option sets a limit of a Chain.
type Option func(*Chain)

// MaxOutputs sets the most records that one input record may become
// (--max-outputs): a record whose steps give more is an error, found as
// soon as the next output is produced. n <= 0 means DefaultMaxOutputs.
func MaxOutputs(n int) Option {
	return func(c *Chain) {
		if n > 0 {
			c.maxOutputs = n
		}
	}
}

// Timeout sets the longest the chain may take over one record
// (--transform-timeout): a record that takes longer is an error. 0 means no
// limit.
func Timeout(d time.Duration) Option {
	return func(c *Chain) { c.timeout = max(d, 0) }
}

// Compile compiles steps. An error names the step's flag and expression as
// written.
func Compile(steps []Step, opts ...Option) (*Chain, error) {
	c := &Chain{maxOutputs: DefaultMaxOutputs, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	for _, s := range steps {
		switch s.Kind {
		case Map, Filter, ArrayMap, FilterMap:
		default:
			return nil, fmt.Errorf("unknown transform %q", s.Kind)
		}
		q, err := gojq.Parse(s.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", s.Kind.Flag(), s.written(), err)
		}
		code, err := gojq.Compile(q)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", s.Kind.Flag(), s.written(), err)
		}
		st := step{Step: s, code: code}
		if fastPathEnabled {
			st.fast = compileFast(q)
			if s.Kind == Map {
				st.set = compileSetKey(q)
			}
		}
		c.steps = append(c.steps, st)
	}
	if fastPathEnabled && len(c.steps) > 0 {
		c.raw = compileRaw(c.steps)
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
// headers, time and offset. An error is an *Error, or ctx's error when ctx
// ended first.
func (c *Chain) Apply(ctx context.Context, r record.Record) ([]record.Record, error) {
	res := c.applyRange(ctx, nil, []record.Record{r}, &scratch{})
	switch {
	case res.Err != nil:
		return nil, res.Err
	case len(res.Failed) > 0:
		return nil, res.Failed[0].Err
	}
	return res.Out, nil
}

// scratch holds what is reused from one record to the next: buffers and
// the streams of the steps.
type scratch struct {
	cur, next []any
	streams   []*stream
	ctx       context.Context // what the current record is evaluated with
	buf       []byte          // a value being encoded
	keys      []string        // appendJSON's
	chunk     []byte          // where encoded values go, shared by many records
	members   []member        // the raw path's (raw.go)
	part      map[string]any
	overs     []override
}

// encodeChunk is the size of the memory that the encoded values of many
// records share: one allocation for them instead of one each.
const encodeChunk = 32 << 10

// encode returns the JSON of v as gojq.Marshal writes it, in memory of its
// own that nothing else writes to.
func (sc *scratch) encode(v any) []byte {
	if !fastPathEnabled {
		b, _ := gojq.Marshal(v)
		return b
	}
	sc.buf = appendJSON(sc.buf[:0], v, &sc.keys)
	return sc.keep(sc.buf)
}

// keep returns a copy of sc.buf, which holds an encoded value, in memory of
// its own that nothing else writes to.
func (sc *scratch) keep(buf []byte) []byte {
	n := len(buf)
	if n > encodeChunk/4 {
		b := append([]byte(nil), buf...)
		if cap(sc.buf) > 1<<20 {
			sc.buf = nil // not kept for the values to come
		}
		return b
	}
	if cap(sc.chunk)-len(sc.chunk) < n {
		sc.chunk = make([]byte, 0, encodeChunk)
	}
	start := len(sc.chunk)
	sc.chunk = append(sc.chunk, buf...)
	return sc.chunk[start : start+n : start+n]
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
	if c.raw != nil {
		if out, ok := c.applyRaw(out, r, sc); ok {
			return out, nil
		}
	}
	v, err := decode(r.Value)
	if err != nil {
		return out, &Error{Step: "decode", Err: err}
	}
	vals := append(sc.cur[:0], v)
	changed := false // only filters ran: the value is the input's, bytes and all
	// owned: the value is the one decoded above, which nothing else holds
	// (filters pass it on), so a map step may set a key of it in place.
	owned := true
	for i := range c.steps {
		s := &c.steps[i]
		next := sc.next[:0]
		inPlace := false
		if owned && s.set != nil && len(vals) == 1 {
			if m, ok := vals[0].(map[string]any); ok && s.set.apply(m) {
				next, inPlace = append(next, m), true
			}
		}
		for j := 0; j < len(vals) && !inPlace; j++ {
			// The outputs of a record, over all its values, stay within
			// maxOutputs: one more is an error.
			if next, err = sc.run(i, s, next, vals[j], c.maxOutputs); err != nil {
				return out, &Error{Step: s.String(), Err: err}
			}
		}
		sc.cur, sc.next = next, vals
		vals = next
		if len(vals) == 0 {
			return out, nil
		}
		changed = changed || s.Kind != Filter
		owned = owned && (s.Kind == Filter || inPlace)
	}
	if !changed {
		return append(out, r), nil
	}
	for _, v := range vals {
		o := r
		o.Value = sc.encode(v)
		out = append(out, o)
	}
	clear(sc.cur) // let the values be collected
	return out, nil
}

// decode parses a JSON value. goccy/go-json is twice as fast as
// encoding/json but decodes numbers to float64; a value with a long run of
// digits (an integer beyond 2^53 would lose precision) goes through
// encoding/json with UseNumber instead, which gojq handles exactly. So
// does a value that goccy refuses, so that one decoder, and one rule, says
// why: a number beyond the range of a float64 (such as 1e400) makes the
// value an error whatever else it holds; integers within it are exact.
func decode(b []byte) (any, error) {
	if !hasLongNumber(b) {
		if fastPathEnabled {
			if v, ok := fastDecode(b); ok {
				return v, nil
			}
		}
		var v any
		if err := gojson.Unmarshal(b, &v); err == nil {
			return v, nil
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("value is not JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("value is not JSON: more than one JSON value")
	}
	if err := checkNumbers(v); err != nil {
		return nil, err
	}
	return v, nil
}

// checkNumbers returns an error for the first number in v beyond the range
// of a float64.
func checkNumbers(v any) error {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		// Up to 308 digits without an exponent is below 1e308: in range.
		if len(s) <= 308 && !strings.ContainsAny(s, "eE") {
			return nil
		}
		if f, err := strconv.ParseFloat(s, 64); err != nil && math.IsInf(f, 0) {
			if len(s) > 40 {
				s = s[:20] + "..." + s[len(s)-10:]
			}
			return fmt.Errorf("number %s is beyond the range of a float64 (±1.8e308)", s)
		}
	case map[string]any:
		for _, x := range v {
			if err := checkNumbers(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := checkNumbers(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasLongNumber reports whether b holds a run of 16 digits or more (a number
// that may not fit a float64 exactly).
func hasLongNumber(b []byte) bool {
	// A run of 16 digits holds every 16th byte: look at those, and count
	// back from a digit. i is where the 16th digit of the next run that
	// could be long would be.
	for i := 15; i < len(b); {
		if b[i] < '0' || b[i] > '9' {
			i += 16
			continue
		}
		j := i
		for j > i-15 && '0' <= b[j-1] && b[j-1] <= '9' {
			j--
		}
		if j == i-15 {
			return true
		}
		i = j + 15 // the run starts at j
	}
	return false
}

// Errors of a step whose outputs do not fit its kind.
var (
	errMapMany    = errors.New("produced more than one output (use --arraymap for one record per output)")
	errMapNone    = errors.New("produced no output (use --filter-map to drop such records)")
	errFilterMany = errors.New("produced more than one output (a filter gives one true or false: use any or all to combine several)")
)

// run evaluates the step on v the ordinary way, with ctx, and appends its
// outputs to out, which may hold no more than max values. It stops as soon
// as the outputs are wrong for the step's kind: at the second output of
// --map and --filter, the first of --filter-map, and at the output of
// --arraymap that would go beyond max.
func (s *step) run(ctx context.Context, out []any, v any, max int) ([]any, error) {
	it := s.code.RunWithContext(ctx, v)
	n := 0
	var first any
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
		n++
		switch s.Kind {
		case FilterMap:
			return add(out, x, max)
		case Map:
			if n > 1 {
				return out, errMapMany
			}
			first = x
		case Filter:
			if n > 1 {
				return out, errFilterMany
			}
			first = x
		case ArrayMap:
			var err error
			if out, err = add(out, x, max); err != nil {
				return out, err
			}
		}
	}
	switch {
	case s.Kind == Map && n == 0:
		return out, errMapNone
	case s.Kind == Map:
		return add(out, first, max)
	case s.Kind == Filter && n == 1 && first != nil && first != false:
		return add(out, v, max)
	}
	return out, nil
}

// add appends x to out unless out already holds max values.
func add(out []any, x any, max int) ([]any, error) {
	if len(out) >= max {
		return out, fmt.Errorf("produced more than %d outputs (--max-outputs)", max)
	}
	return append(out, x), nil
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
	// Err is set when the context ended before the chain had run over
	// every record: the result is incomplete and nothing of it may be used.
	Err error
}

// ApplyBatch runs the chain over recs in this goroutine. When ctx ends
// before the chain has run over every record, Result.Err says so and the
// result is incomplete.
func (c *Chain) ApplyBatch(ctx context.Context, recs []record.Record) Result {
	return c.AppendBatch(ctx, nil, recs)
}

// AppendBatch is ApplyBatch with its outputs appended to out: Result.Out is
// out followed by them. A caller transforming several batches into one
// slice gives each the slice so far (with room for all of them).
func (c *Chain) AppendBatch(ctx context.Context, out, recs []record.Record) Result {
	if c.Empty() {
		if out == nil {
			return Result{Out: recs}
		}
		return Result{Out: append(out, recs...)}
	}
	sc := c.getScratch()
	defer c.pool.Put(sc)
	return c.applyRange(ctx, out, recs, sc)
}

// ApplyParallel is ApplyBatch spread over all CPUs.
func (c *Chain) ApplyParallel(ctx context.Context, recs []record.Record) Result {
	if c.Empty() {
		return Result{Out: recs}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(recs)+minChunk-1)/minChunk)
	if workers <= 1 {
		return c.ApplyBatch(ctx, recs)
	}
	results := make([]Result, workers)
	per := (len(recs) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(recs))
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			results[w] = c.ApplyBatch(ctx, recs[lo:hi])
		}(w)
	}
	wg.Wait()
	return merge(results)
}

// merge joins the results of consecutive ranges of records, in order: the
// first error is the result's.
func merge(results []Result) Result {
	if len(results) == 1 {
		return results[0]
	}
	n := 0
	for _, r := range results {
		n += len(r.Out)
	}
	all := Result{Out: make([]record.Record, 0, n)}
	for _, r := range results {
		all.Out = append(all.Out, r.Out...)
		all.Failed = append(all.Failed, r.Failed...)
		all.Dropped += r.Dropped
		if all.Err == nil {
			all.Err = r.Err
		}
	}
	return all
}

func (c *Chain) applyRange(ctx context.Context, out, recs []record.Record, sc *scratch) Result {
	res := Result{Out: out}
	if out == nil {
		res.Out = make([]record.Record, 0, len(recs))
	}
	wd := newWatchdog(ctx, c.timeout)
	defer wd.stop()
	for _, r := range recs {
		before := len(res.Out)
		sc.ctx = wd.begin()
		var err error
		res.Out, err = c.apply(res.Out, r, sc)
		expired := wd.end()
		if ctx.Err() != nil {
			res.Out = res.Out[:before]
			res.Err = fmt.Errorf("transforming: %w", context.Cause(ctx))
			return res
		}
		if err != nil {
			var te *Error
			errors.As(err, &te)
			if expired && errors.Is(err, context.Canceled) {
				te.Err = fmt.Errorf("took longer than %v (--transform-timeout)", c.timeout)
			}
			res.Out = res.Out[:before]
			res.Failed = append(res.Failed, Failed{Record: r, Err: te})
		} else if len(res.Out) == before {
			res.Dropped++
		}
	}
	return res
}

// watchdog cancels the context of a record's evaluation once it has run
// longer than the timeout, with one timer for many records, ticking four
// times a timeout: a record seen running at five ticks in a row has run
// for at least the timeout (at most a quarter more) and is cancelled. A
// record costs the watchdog two atomic writes, not a clock reading.
type watchdog struct {
	parent  context.Context
	timeout time.Duration
	n       uint64        // records begun (the evaluating goroutine's)
	state   atomic.Uint64 // n<<2 | expired<<1 | busy
	mu      sync.Mutex    // ctx and cancel against check, the timer
	ctx     context.Context
	cancel  context.CancelFunc
	timer   *time.Timer
	seen    uint64 // the state the last tick saw (check's)
	ticks   int    // the ticks in a row that saw it
}

// watchTicks is how many ticks of the watchdog make a timeout.
const watchTicks = 4

// tick is the time between two ticks.
func (w *watchdog) tick() time.Duration { return max(w.timeout/watchTicks, time.Microsecond) }

const (
	watchBusy    = 1
	watchExpired = 2
)

func newWatchdog(parent context.Context, timeout time.Duration) *watchdog {
	w := &watchdog{parent: parent, timeout: timeout}
	w.ctx, w.cancel = context.WithCancel(parent)
	return w
}

// begin marks the start of a record and returns the context to evaluate it with.
func (w *watchdog) begin() context.Context {
	if w.timeout <= 0 {
		return w.ctx
	}
	w.n++
	w.state.Store(w.n<<2 | watchBusy)
	if w.timer == nil { // only begin and stop, in this goroutine, set it
		w.mu.Lock()
		w.timer = time.AfterFunc(w.tick(), w.check)
		w.mu.Unlock()
	}
	return w.ctx
}

// end marks the end of a record and reports whether its context was
// cancelled for running too long; the next record then gets a new one.
func (w *watchdog) end() bool {
	if w.timeout <= 0 {
		return false
	}
	if w.state.Swap(w.n<<2)&watchExpired == 0 {
		return false
	}
	w.mu.Lock() // check has cancelled the context by the time it lets go
	defer w.mu.Unlock()
	w.ctx, w.cancel = context.WithCancel(w.parent)
	return true
}

// check runs on the timer: it cancels the current record's context when the
// same record was running at watchTicks ticks before this one.
func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil {
		return // stopped
	}
	s := w.state.Load()
	if s&watchBusy == 0 || s != w.seen {
		w.seen, w.ticks = s, 0
	} else if w.ticks++; w.ticks >= watchTicks {
		// Only if the record is still running: end swaps the state.
		if w.state.CompareAndSwap(s, s|watchExpired) {
			w.cancel()
		}
		w.ticks = 0
	}
	w.timer.Reset(w.tick())
}

// stop releases the timer and the context.
func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.cancel()
}
