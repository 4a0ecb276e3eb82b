package transform

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/record"
)

var bg = context.Background()

func rec(v string) record.Record { return record.Record{Key: []byte("k"), Value: []byte(v), Offset: 7} }

func values(recs []record.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, string(r.Value))
	}
	return strings.Join(s, " ")
}

func TestChain(t *testing.T) {
	const prio = `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`
	cases := []struct {
		name  string
		steps []Step
		in    string
		want  string
	}{
		{"filter keeps", []Step{{Kind: Filter, Expr: ".amount > 50"}}, `{"amount":51}`, `{"amount":51}`},
		{"filter drops", []Step{{Kind: Filter, Expr: ".amount > 50"}}, `{"amount":5}`, ``},
		{"filter null drops", []Step{{Kind: Filter, Expr: ".missing"}}, `{"amount":5}`, ``},
		{"map", []Step{{Kind: Map, Expr: prio}}, `{"amount":512.5}`, `{"amount":512.5,"priority":"MEDIUM"}`},
		{"filter then map", []Step{{Kind: Filter, Expr: ".amount > 50"}, {Kind: Map, Expr: prio}}, `{"amount":1500}`, `{"amount":1500,"priority":"HIGH"}`},
		{"map then filter sees mapped value", []Step{{Kind: Map, Expr: prio}, {Kind: Filter, Expr: `.priority == "LOW"`}}, `{"amount":1}`, `{"amount":1,"priority":"LOW"}`},
		{"arraymap", []Step{{Kind: ArrayMap, Expr: ".items[]"}}, `{"items":[1,{"a":2},"x"]}`, `1 {"a":2} "x"`},
		{"arraymap then map", []Step{{Kind: ArrayMap, Expr: ".[]"}, {Kind: Map, Expr: ". * 2"}}, `[1,2,3]`, `2 4 6`},
		{"arraymap empty", []Step{{Kind: ArrayMap, Expr: ".[]"}}, `[]`, ``},
		{"filter-map first", []Step{{Kind: FilterMap, Expr: ".a // empty"}}, `{"a":3}`, `3`},
		{"filter-map none", []Step{{Kind: FilterMap, Expr: ".a // empty"}}, `{"b":3}`, ``},
		{"big integers survive", []Step{{Kind: Map, Expr: "."}}, `{"id":12345678901234567890}`, `{"id":12345678901234567890}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := Compile(c.steps)
			if err != nil {
				t.Fatal(err)
			}
			out, err := ch.Apply(bg, rec(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := values(out); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			res := ch.ApplyBatch(bg, []record.Record{rec(c.in), rec(c.in)})
			if len(res.Failed) != 0 || values(res.Out) != strings.TrimSpace(c.want+" "+c.want) {
				t.Fatalf("streamed: got %s (%d failed), want %s twice", values(res.Out), len(res.Failed), c.want)
			}
			if wantDropped := map[bool]int{true: 2, false: 0}[c.want == ""]; res.Dropped != wantDropped {
				t.Fatalf("dropped %d, want %d", res.Dropped, wantDropped)
			}
			for _, o := range out {
				if string(o.Key) != "k" || o.Offset != 7 {
					t.Fatalf("output lost key or offset: %+v", o)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	if _, err := Compile([]Step{{Kind: Filter, Expr: ".a >"}}); err == nil || !strings.Contains(err.Error(), "--filter") {
		t.Fatalf("compile error %v does not name --filter", err)
	}
	if _, err := Compile([]Step{{Kind: FilterMap, Expr: "nosuchfn"}}); err == nil || !strings.Contains(err.Error(), "--filter-map") {
		t.Fatalf("compile error %v does not name --filter-map", err)
	}
	cases := []struct {
		steps []Step
		in    string
		step  string
	}{
		{[]Step{{Kind: Map, Expr: ".a"}}, `not json`, "decode"},
		{[]Step{{Kind: Map, Expr: ".a"}}, `{"a":1} {"a":2}`, "decode"},
		{[]Step{{Kind: Map, Expr: ".a + 1"}}, `{"a":"x"}`, "--map .a + 1"},
		{[]Step{{Kind: Map, Expr: ".[]"}}, `[1,2]`, "--map .[]"},
		{[]Step{{Kind: Map, Expr: "empty"}}, `[1,2]`, "--map empty"},
		{[]Step{{Kind: Filter, Expr: "error(\"boom\")"}}, `1`, `--filter error("boom")`},
	}
	for _, c := range cases {
		ch, err := Compile(c.steps)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.Apply(bg, rec(c.in))
		te, ok := err.(*Error)
		if !ok || te.Step != c.step {
			t.Fatalf("%s on %s: error %v, want step %q", c.steps[0].Expr, c.in, err, c.step)
		}
		failed := ch.ApplyBatch(bg, []record.Record{rec(c.in)}).Failed
		if len(failed) != 1 || failed[0].Err.Error() != te.Error() {
			t.Fatalf("streamed: %v, want the error %v", failed, te)
		}
	}
}

func TestEmptyChainPassesAnything(t *testing.T) {
	ch, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ch.Apply(bg, rec("not json at all"))
	if err != nil || values(out) != "not json at all" {
		t.Fatalf("got %q, %v", values(out), err)
	}
}

func TestApplyBatchKeepsOrder(t *testing.T) {
	ch, err := Compile([]Step{{Kind: Filter, Expr: ".n % 3 != 0"}, {Kind: ArrayMap, Expr: "[., .] | .[]"}})
	if err != nil {
		t.Fatal(err)
	}
	var in []record.Record
	for i := 0; i < 5000; i++ {
		v := fmt.Sprintf(`{"n":%d}`, i)
		if i%1000 == 999 {
			v = "bad"
		}
		in = append(in, record.Record{Value: []byte(v), Offset: int64(i)})
	}
	res := ch.ApplyParallel(bg, in)
	out, failed := res.Out, res.Failed
	// Multiples of 3 are filtered out, but for 999, 2997 and 3999, which fail.
	if res.Dropped != 1667-2 {
		t.Fatalf("dropped %d", res.Dropped)
	}
	if len(failed) != 5 {
		t.Fatalf("%d failed, want 5", len(failed))
	}
	for i, f := range failed {
		if f.Record.Offset != int64(i*1000+999) || f.Err.Step != "decode" {
			t.Fatalf("failure %d: offset %d step %s", i, f.Record.Offset, f.Err.Step)
		}
	}
	prev := int64(-1)
	for i := 0; i < len(out); i += 2 {
		if out[i].Offset <= prev || out[i+1].Offset != out[i].Offset || out[i].Offset%3 == 0 {
			t.Fatalf("output %d out of order: offset %d after %d", i, out[i].Offset, prev)
		}
		prev = out[i].Offset
	}
}

const order = `{"order_id":"o-12345","customer_id":"c-77","amount":512.5,"product":"widget"}`

func BenchmarkOrdersFilterMap(b *testing.B) {
	ch, _ := Compile([]Step{{Kind: Filter, Expr: ".amount > 50"}, {Kind: Map, Expr: `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}})
	r := rec(order)
	for i := 0; i < b.N; i++ {
		if _, err := ch.Apply(bg, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for i := 0; i < b.N; i++ {
		decode([]byte(order))
	}
}

func BenchmarkApplyBatch(b *testing.B) {
	ch, _ := Compile([]Step{{Kind: Filter, Expr: ".amount > 50"}, {Kind: Map, Expr: `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}})
	recs := make([]record.Record, 4096)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf(`{"order_id":"o-%d","customer_id":"c-77","amount":%d.5,"product":"widget"}`, i, i%2000))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch.ApplyParallel(bg, recs)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// TestStreamedMatchesOrdinary checks that the streamed evaluation of a batch
// gives exactly what evaluating each record on its own gives, over awkward
// expressions and values that fail, across several batches.
func TestStreamedMatchesOrdinary(t *testing.T) {
	exprs := []Step{
		{Kind: Filter, Expr: ".n % 3 != 0 # a comment"},
		{Kind: Map, Expr: "def twice: [., .]; {n: .n, t: (.n | twice)}"},
		{Kind: ArrayMap, Expr: "if .n % 5 == 0 then empty else .t[] end"},
		{Kind: Map, Expr: "if . == 7 then error(\"seven\") else . end"},
		{Kind: FilterMap, Expr: "select(. % 2 == 1) | . * 10"},
		{Kind: Map, Expr: "[.] | .[]"},
	}
	var in []record.Record
	for i := 0; i < 3000; i++ {
		v := fmt.Sprintf(`{"n":%d}`, i)
		if i%97 == 0 {
			v = "oops"
		}
		in = append(in, record.Record{Value: []byte(v), Offset: int64(i)})
	}
	for n := 1; n <= len(exprs); n++ {
		streamed, err := Compile(exprs[:n])
		if err != nil {
			t.Fatal(err)
		}
		ordinary, _ := Compile(exprs[:n])
		ordinary.noStream = true
		for _, batch := range [][]record.Record{in[:1000], in[1000:]} {
			sr, or := streamed.ApplyBatch(bg, batch), ordinary.ApplyBatch(bg, batch)
			so, sf, oo, of := sr.Out, sr.Failed, or.Out, or.Failed
			if sr.Dropped != or.Dropped {
				t.Fatalf("%d steps: %d dropped streamed, %d ordinary", n, sr.Dropped, or.Dropped)
			}
			if values(so) != values(oo) {
				t.Fatalf("%d steps: streamed and ordinary outputs differ", n)
			}
			if len(sf) != len(of) {
				t.Fatalf("%d steps: %d failures streamed, %d ordinary", n, len(sf), len(of))
			}
			for i := range sf {
				if sf[i].Err.Error() != of[i].Err.Error() || sf[i].Record.Offset != of[i].Record.Offset {
					t.Fatalf("%d steps: failure %d: %v at %d, ordinary %v at %d", n, i, sf[i].Err, sf[i].Record.Offset, of[i].Err, of[i].Record.Offset)
				}
			}
		}
	}
}

func TestExpressionsReadingInputRunTheOrdinaryWay(t *testing.T) {
	if newStream(Step{Kind: Map, Expr: "input"}) != nil || newStream(Step{Kind: Filter, Expr: "halt"}) != nil {
		t.Fatal("an expression using input or halt was streamed")
	}
	if newStream(Step{Kind: Map, Expr: ".a"}) == nil {
		t.Fatal(".a not streamed")
	}
}

// BenchmarkStreamedVsOrdinary measures what streaming a batch through one
// gojq run per step saves over evaluating each record on its own (README,
// Performance): go test -bench StreamedVsOrdinary ./transform
func BenchmarkStreamedVsOrdinary(b *testing.B) {
	recs := make([]record.Record, 5000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf(`{"order_id":"o-%d","customer_id":"c-77","amount":%d.5,"product":"widget"}`, i, i%2000))
	}
	for _, ordinary := range []bool{false, true} {
		ch, _ := Compile([]Step{{Kind: Filter, Expr: ".amount > 50"}, {Kind: Map, Expr: `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}})
		ch.noStream = ordinary
		b.Run(map[bool]string{false: "streamed", true: "ordinary"}[ordinary], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ch.ApplyBatch(bg, recs)
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// applyBoth runs ch over recs streamed and the ordinary way and checks that
// both give the same result, which it returns.
func applyBoth(t *testing.T, steps []Step, opts []Option, recs ...record.Record) Result {
	t.Helper()
	streamed, err := Compile(steps, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ordinary, _ := Compile(steps, opts...)
	ordinary.noStream = true
	sr, or := streamed.ApplyBatch(bg, recs), ordinary.ApplyBatch(bg, recs)
	if values(sr.Out) != values(or.Out) || len(sr.Failed) != len(or.Failed) || sr.Dropped != or.Dropped {
		t.Fatalf("%v: streamed %q (%d failed), ordinary %q (%d failed)", steps, values(sr.Out), len(sr.Failed), values(or.Out), len(or.Failed))
	}
	for i := range sr.Failed {
		if sr.Failed[i].Err.Error() != or.Failed[i].Err.Error() {
			t.Fatalf("%v: streamed %v, ordinary %v", steps, sr.Failed[i].Err, or.Failed[i].Err)
		}
	}
	return sr
}

// TestRunawayExpressionsStop: expressions with endless outputs stop at the
// output that makes the record wrong, instead of gathering them all, and
// the record fails; the next record of the batch goes on.
func TestRunawayExpressionsStop(t *testing.T) {
	cases := []struct {
		steps []Step
		opts  []Option
		want  string // the error of the first record
	}{
		{[]Step{{Kind: Map, Expr: "if . == 0 then repeat(.) else . end"}}, nil, "--map if . == 0 then repeat(.) else . end: produced more than one output"},
		{[]Step{{Kind: Filter, Expr: "if . == 0 then repeat(true) else true end"}}, nil, "produced more than one output (a filter gives one"},
		{[]Step{{Kind: ArrayMap, Expr: "if . == 0 then range(1e9) else . end"}}, nil, "produced more than 10000 outputs (--max-outputs)"},
		{[]Step{{Kind: ArrayMap, Expr: "if . == 0 then range(1e9) else . end"}}, []Option{MaxOutputs(50)}, "produced more than 50 outputs (--max-outputs)"},
		// The cap holds for the record as a whole, over several steps.
		{[]Step{{Kind: ArrayMap, Expr: "if . == 0 then range(10) else . end"}, {Kind: ArrayMap, Expr: "range(10)"}}, []Option{MaxOutputs(50)}, "--arraymap range(10): produced more than 50 outputs"},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res := applyBoth(t, c.steps, c.opts, rec("0"), rec("1"))
		runtime.ReadMemStats(&after)
		if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Err.Error(), c.want) {
			t.Fatalf("%v: failed %v, want %q", c.steps, res.Failed, c.want)
		}
		if len(res.Out) == 0 || string(res.Out[0].Value) != map[bool]string{true: "0", false: "1"}[c.steps[0].Kind == ArrayMap && len(c.steps) == 2] {
			t.Fatalf("%v: the next record gave %q", c.steps, values(res.Out))
		}
		// Both evaluations together allocated little: the outputs were never gathered.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Fatalf("%v: allocated %d MiB", c.steps, alloc>>20)
		}
	}
	// --filter-map takes the first output of an endless expression.
	if res := applyBoth(t, []Step{{Kind: FilterMap, Expr: "range(5; 1e9)"}}, nil, rec("1")); values(res.Out) != "5" {
		t.Fatalf("filter-map of range gave %q", values(res.Out))
	}
}

// TestTransformTimeout: a record whose evaluation runs past the timeout
// fails, and the records after it in the batch are evaluated as usual.
func TestTransformTimeout(t *testing.T) {
	steps := []Step{{Kind: Map, Expr: "if . == 1 then last(range(1e15)) else . * 10 end"}}
	res := applyBoth(t, steps, []Option{Timeout(50 * time.Millisecond)}, rec("0"), rec("1"), rec("2"))
	if values(res.Out) != "0 20" || len(res.Failed) != 1 || res.Failed[0].Record.Value[0] != '1' {
		t.Fatalf("got %q, failed %v", values(res.Out), res.Failed)
	}
	if got := res.Failed[0].Err.Error(); got != "--map "+steps[0].Expr+": took longer than 50ms (--transform-timeout)" {
		t.Fatalf("error %q", got)
	}
	ch, _ := Compile(steps, Timeout(50*time.Millisecond))
	if _, err := ch.Apply(bg, rec("1")); err == nil || !strings.Contains(err.Error(), "--transform-timeout") {
		t.Fatalf("Apply: %v", err)
	}
}

// TestCancelStopsEvaluation: with no timeout, the end of the context stops
// an endless evaluation, and the result says that it is incomplete.
func TestCancelStopsEvaluation(t *testing.T) {
	for _, noStream := range []bool{false, true} {
		ch, _ := Compile([]Step{{Kind: Map, Expr: "last(range(1e15))"}}, Timeout(0))
		ch.noStream = noStream
		ctx, cancel := context.WithCancel(bg)
		time.AfterFunc(20*time.Millisecond, cancel)
		res := ch.ApplyParallel(ctx, []record.Record{rec("0"), rec("1")})
		if !errors.Is(res.Err, context.Canceled) || len(res.Out) != 0 || len(res.Failed) != 0 {
			t.Fatalf("streamed=%v: err %v, %d out, %d failed", !noStream, res.Err, len(res.Out), len(res.Failed))
		}
		if _, err := ch.Apply(ctx, rec("0")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply after cancel: %v", err)
		}
	}
}

// TestFilterWithSeveralOutputsFails: a filter must give one boolean; a
// filter with several outputs is an error, not decided by its first.
func TestFilterWithSeveralOutputsFails(t *testing.T) {
	res := applyBoth(t, []Step{{Kind: Filter, Expr: ".tags[] == \"x\""}}, nil, rec(`{"tags":["x"]}`), rec(`{"tags":["x","y"]}`), rec(`{"tags":[]}`))
	if values(res.Out) != `{"tags":["x"]}` || len(res.Failed) != 1 || res.Dropped != 1 {
		t.Fatalf("got %q, %d failed, %d dropped", values(res.Out), len(res.Failed), res.Dropped)
	}
}

// TestErrorsShowTheExpressionAsWritten: errors name a step by the
// expression as written, not the one evaluated (secrets resolved).
func TestErrorsShowTheExpressionAsWritten(t *testing.T) {
	steps := []Step{{Kind: Map, Expr: `.a + "s3cr3t"`, Written: `.a + "${{ secrets.TOKEN }}"`}}
	res := applyBoth(t, steps, nil, rec(`{"a":1}`))
	if len(res.Failed) != 1 || res.Failed[0].Err.Step != `--map .a + "${{ secrets.TOKEN }}"` {
		t.Fatalf("failed %v", res.Failed)
	}
	if _, err := Compile([]Step{{Kind: Map, Expr: `.a + "s3cr3t" +`, Written: `.a + "${{ secrets.TOKEN }}" +`}}); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("compile error %v", err)
	}
}

// TestNumbersBeyondFloat64: one rule, whatever else the record holds: a
// number beyond the range of a float64 makes the record fail to decode;
// integers within it stay exact.
func TestNumbersBeyondFloat64(t *testing.T) {
	steps := []Step{{Kind: Map, Expr: "."}}
	for _, in := range []string{`{"f":1e400}`, `{"f":1e400,"x":12345678901234567}`, `[-1e400]`, `{"x":12345678901234567,"f":[1.8e308]}`, "[1" + strings.Repeat("0", 400) + "]"} {
		res := applyBoth(t, steps, nil, rec(in))
		if len(res.Failed) != 1 || res.Failed[0].Err.Step != "decode" || !strings.Contains(res.Failed[0].Err.Error(), "beyond the range of a float64") {
			t.Fatalf("%.60s: out %q, failed %v", in, values(res.Out), res.Failed)
		}
	}
	for _, in := range []string{`{"f":1e308}`, `{"f":1e308,"x":12345678901234567}`, `{"f":-1.7e308,"x":12345678901234567890}`} {
		if res := applyBoth(t, steps, nil, rec(in)); len(res.Out) != 1 || len(res.Failed) != 0 {
			t.Fatalf("%s: out %q, failed %v", in, values(res.Out), res.Failed)
		}
	}
	if res := applyBoth(t, steps, nil, rec(`{"a":`)); len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Err.Error(), "value is not JSON") {
		t.Fatalf("bad JSON: %v", res.Failed)
	}
}
