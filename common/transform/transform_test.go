package transform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
)

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
		{"filter keeps", []Step{{Filter, ".amount > 50"}}, `{"amount":51}`, `{"amount":51}`},
		{"filter drops", []Step{{Filter, ".amount > 50"}}, `{"amount":5}`, ``},
		{"filter null drops", []Step{{Filter, ".missing"}}, `{"amount":5}`, ``},
		{"map", []Step{{Map, prio}}, `{"amount":512.5}`, `{"amount":512.5,"priority":"MEDIUM"}`},
		{"filter then map", []Step{{Filter, ".amount > 50"}, {Map, prio}}, `{"amount":1500}`, `{"amount":1500,"priority":"HIGH"}`},
		{"map then filter sees mapped value", []Step{{Map, prio}, {Filter, `.priority == "LOW"`}}, `{"amount":1}`, `{"amount":1,"priority":"LOW"}`},
		{"arraymap", []Step{{ArrayMap, ".items[]"}}, `{"items":[1,{"a":2},"x"]}`, `1 {"a":2} "x"`},
		{"arraymap then map", []Step{{ArrayMap, ".[]"}, {Map, ". * 2"}}, `[1,2,3]`, `2 4 6`},
		{"arraymap empty", []Step{{ArrayMap, ".[]"}}, `[]`, ``},
		{"filter-map first", []Step{{FilterMap, ".a // empty"}}, `{"a":3}`, `3`},
		{"filter-map none", []Step{{FilterMap, ".a // empty"}}, `{"b":3}`, ``},
		{"big integers survive", []Step{{Map, "."}}, `{"id":12345678901234567890}`, `{"id":12345678901234567890}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := Compile(c.steps)
			if err != nil {
				t.Fatal(err)
			}
			out, err := ch.Apply(rec(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := values(out); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			res := ch.ApplyBatch([]record.Record{rec(c.in), rec(c.in)})
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
	if _, err := Compile([]Step{{Filter, ".a >"}}); err == nil || !strings.Contains(err.Error(), "--filter") {
		t.Fatalf("compile error %v does not name --filter", err)
	}
	if _, err := Compile([]Step{{FilterMap, "nosuchfn"}}); err == nil || !strings.Contains(err.Error(), "--filter-map") {
		t.Fatalf("compile error %v does not name --filter-map", err)
	}
	cases := []struct {
		steps []Step
		in    string
		step  string
	}{
		{[]Step{{Map, ".a"}}, `not json`, "decode"},
		{[]Step{{Map, ".a"}}, `{"a":1} {"a":2}`, "decode"},
		{[]Step{{Map, ".a + 1"}}, `{"a":"x"}`, "--map .a + 1"},
		{[]Step{{Map, ".[]"}}, `[1,2]`, "--map .[]"},
		{[]Step{{Map, "empty"}}, `[1,2]`, "--map empty"},
		{[]Step{{Filter, "error(\"boom\")"}}, `1`, `--filter error("boom")`},
	}
	for _, c := range cases {
		ch, err := Compile(c.steps)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.Apply(rec(c.in))
		te, ok := err.(*Error)
		if !ok || te.Step != c.step {
			t.Fatalf("%s on %s: error %v, want step %q", c.steps[0].Expr, c.in, err, c.step)
		}
		failed := ch.ApplyBatch([]record.Record{rec(c.in)}).Failed
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
	out, err := ch.Apply(rec("not json at all"))
	if err != nil || values(out) != "not json at all" {
		t.Fatalf("got %q, %v", values(out), err)
	}
}

func TestApplyBatchKeepsOrder(t *testing.T) {
	ch, err := Compile([]Step{{Filter, ".n % 3 != 0"}, {ArrayMap, "[., .] | .[]"}})
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
	res := ch.ApplyParallel(in)
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
	ch, _ := Compile([]Step{{Filter, ".amount > 50"}, {Map, `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}})
	r := rec(order)
	for i := 0; i < b.N; i++ {
		if _, err := ch.Apply(r); err != nil {
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
	ch, _ := Compile([]Step{{Filter, ".amount > 50"}, {Map, `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}})
	recs := make([]record.Record, 4096)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf(`{"order_id":"o-%d","customer_id":"c-77","amount":%d.5,"product":"widget"}`, i, i%2000))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch.ApplyParallel(recs)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// TestStreamedMatchesOrdinary checks that the streamed evaluation of a batch
// gives exactly what evaluating each record on its own gives, over awkward
// expressions and values that fail, across several batches.
func TestStreamedMatchesOrdinary(t *testing.T) {
	exprs := []Step{
		{Filter, ".n % 3 != 0 # a comment"},
		{Map, "def twice: [., .]; {n: .n, t: (.n | twice)}"},
		{ArrayMap, "if .n % 5 == 0 then empty else .t[] end"},
		{Map, "if . == 7 then error(\"seven\") else . end"},
		{FilterMap, "select(. % 2 == 1) | . * 10"},
		{Map, "[.] | .[]"},
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
			sr, or := streamed.ApplyBatch(batch), ordinary.ApplyBatch(batch)
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
	if newStream(Step{Map, "input"}) != nil || newStream(Step{Filter, "halt"}) != nil {
		t.Fatal("an expression using input or halt was streamed")
	}
	if newStream(Step{Map, ".a"}) == nil {
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
		ch, _ := Compile([]Step{{Filter, ".amount > 50"}, {Map, `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}})
		ch.noStream = ordinary
		b.Run(map[bool]string{false: "streamed", true: "ordinary"}[ordinary], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ch.ApplyBatch(recs)
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
