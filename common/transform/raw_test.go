package transform

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
)

var rawOrders = []Step{
	{Kind: Filter, Expr: `.amount > 50`},
	{Kind: Map, Expr: `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`},
}

// rawDocs are objects whose text the raw path reads in each of its ways:
// members printed as they are written and not, whitespace, and the objects
// it must leave to the ordinary path (valid or not).
var rawDocs = []string{
	`{"order_id":"o-1","customer_id":"c-4654","amount":2.08,"product":"gasket"}`,
	`{"order_id":"o-3","customer_id":"c-4756","amount":460.33,"product":"valve"}`,
	`{"product":"valve","amount":1460,"order_id":"o-9"}`,
	` { "amount" : 60 , "z" : [ 1 , 2 ] , "a" : { "y" : 1 , "x" : 2 } } `,
	`{"amount":60,"a":1.0,"b":1.50,"c":1E2,"d":0.0000001,"e":0.000001,"f":-0,"g":"\u0041","h":"x\u007fy","i":"\/"}`,
	"{\"amount\":70,\"del\":\"a\x7fb\",\"tab\":\"a\\tb\"}",
	`{"amount":123456789012345,"x":1234567890.12345,"y":0.123456789012345,"z":-0.5,"w":0}`,
	`{"amount":99,"é":1,"A":2,"":3,"b":true,"n":null,"f":false}`,
	`{"amount":1e2}`, `{"amount":"60"}`, `{"amount":[60]}`, `{"amount":{"v":60}}`, `{"amount":null}`, `{}`,
	`{"amount":60,"priority":"old"}`, `{"priority":"old","amount":6000}`,
	// Left to the ordinary path.
	`{"amount":60,"amount":10}`, `{"a\"b":1,"amount":70}`, `{"\u0061mount":70}`, "{\"amount\":60,\"s\":\"\xff\"}",
	`{"amount":60} x`, `{"amount":60}{}`, `{"amount":60,}`, `{"amount":060}`, `{"amount":1e400}`, `{"amount":-}`,
	`{"amount":60,"big":12345678901234567890}`, `{"amount":60,"s":"\ud800"}`, `[{"amount":60}]`, `60`, `"x"`, `not json`, ``,
}

// rawChains are chains the raw path takes.
var rawChains = [][]Step{
	rawOrders,
	{{Kind: Filter, Expr: `.amount > 50`}},
	{{Kind: Filter, Expr: `.amount | . > 50`}},
	{{Kind: Filter, Expr: `(.a // 0) < 2 and .amount != null`}},
	{{Kind: Map, Expr: `.a = .amount`}},
	{{Kind: Map, Expr: `.amount = .amount * 2`}, {Kind: Filter, Expr: `.amount > 200`}},
	{{Kind: Filter, Expr: `.amount > 50`}, {Kind: Map, Expr: `.p = 1`}, {Kind: Map, Expr: `.q = .p + 1`}, {Kind: Filter, Expr: `.q == 2`}, {Kind: Map, Expr: `.p = "x"`}},
	{{Kind: Map, Expr: `.["x\"y"] = 1`}},
	{{Kind: Map, Expr: `.s = "\(.amount)-\(.product)"`}},
	{{Kind: Map, Expr: `.a = [.amount]`}, {Kind: Map, Expr: `.b = {x: .a}`}},
	{{Kind: Filter, Expr: `.amount > 50`}, {Kind: Map, Expr: `{id: .order_id, amount, p: (.product | ascii_upcase)}`}},
	{{Kind: FilterMap, Expr: `.a // empty`}},
	{{Kind: ArrayMap, Expr: `[.amount]`}},
	{{Kind: Map, Expr: `.amount`}},
	{{Kind: Map, Expr: `.x = (.amount | length)`}},
	{{Kind: Map, Expr: `.x = (.amount / 0)`}},
	{{Kind: Map, Expr: `.x = empty`}},
	{{Kind: Filter, Expr: `.amount | test("6")`}},
	{{Kind: Map, Expr: `.x = if .amount then .product else null end`}},
}

// notRawChains read the whole value, or update it otherwise than .key =.
var notRawChains = [][]Step{
	{{Kind: Filter, Expr: `length > 1`}},
	{{Kind: Filter, Expr: `select(.amount > 50)`}},
	{{Kind: Filter, Expr: `has("amount")`}},
	{{Kind: Filter, Expr: `.amount > 50 and (keys | length) > 1`}},
	{{Kind: Map, Expr: `.a = .`}},
	{{Kind: Map, Expr: `{a: .}`}},
	{{Kind: Map, Expr: `.x = if .a then .b end`}},
	{{Kind: Map, Expr: `.a |= 1`}},
	{{Kind: Map, Expr: `.a.b = 1`}},
	{{Kind: Filter, Expr: `.[0]`}},
	{{Kind: Map, Expr: `.x = tojson`}},
	{{Kind: Map, Expr: `.amount`}, {Kind: Filter, Expr: `. > 50`}},
	{{Kind: Map, Expr: `.a = 1`}, {Kind: Filter, Expr: `length > 1`}},
	{{Kind: ArrayMap, Expr: `.[]`}},
}

// TestRawPath: the raw path takes the chains it should, gives what the
// ordinary path gives on every document, and answers itself for the
// documents it should.
func TestRawPath(t *testing.T) {
	var recs []record.Record
	for i, d := range append(slices.Clone(rawDocs), fastDocs...) {
		recs = append(recs, record.Record{Key: []byte("k"), Value: []byte(d), Offset: int64(i)})
	}
	for _, steps := range rawChains {
		c, err := Compile(steps)
		if err != nil {
			t.Fatal(err)
		}
		if c.raw == nil {
			t.Errorf("%v: not taken by the raw path", steps)
		}
		if err := checkChains(steps, recs); err != nil {
			t.Error(err)
		}
	}
	for _, steps := range notRawChains {
		c, err := Compile(steps)
		if err != nil {
			t.Fatal(err)
		}
		if c.raw != nil {
			t.Errorf("%v: taken by the raw path, which must leave it", steps)
		}
		if err := checkChains(steps, recs); err != nil {
			t.Error(err)
		}
	}
	// Which documents the orders pipeline answers on the raw path.
	c, _ := Compile(rawOrders)
	sc := c.getScratch()
	for i, d := range rawDocs {
		_, ok := c.applyRaw(nil, record.Record{Value: []byte(d)}, sc)
		if want := i < 16; ok != want {
			t.Errorf("raw path answered %v on %s, want %v", ok, d, want)
		}
	}
}

// TestRawPathKeepsNothing: the records it gives share nothing with the
// input, nor with each other, and the input is untouched.
func TestRawPathKeepsNothing(t *testing.T) {
	c, _ := Compile(rawOrders)
	var recs []record.Record
	for i := range 100 {
		recs = append(recs, rec(fmt.Sprintf(`{"order_id":"o-%d","amount":%d.5,"s":"x\ty"}`, i, i*20)))
	}
	res := c.ApplyBatch(bg, recs)
	want := values(res.Out)
	for _, r := range recs {
		clear(r.Value)
	}
	if got := values(res.Out); got != want {
		t.Fatalf("outputs changed with their inputs: %s", got)
	}
	if len(res.Out) != 97 {
		t.Fatalf("%d outputs, want 97", len(res.Out))
	}
	if got := string(res.Out[0].Value); got != `{"amount":60.5,"order_id":"o-3","priority":"LOW","s":"x\ty"}` {
		t.Fatalf("first output %s", got)
	}
}

// BenchmarkRawPath: the orders pipeline with the raw path and with the fast
// path alone: go test -run - -bench RawPath ./transform
func BenchmarkRawPath(b *testing.B) {
	recs := make([]record.Record, 5000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf(`{"order_id":"o-%d","customer_id":"c-77","amount":%d.25,"product":"widget"}`, i, i%2000))
	}
	for _, raw := range []bool{true, false} {
		ch, _ := Compile(rawOrders)
		if !raw {
			ch.raw = nil
		}
		b.Run(map[bool]string{true: "raw", false: "fast"}[raw], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ch.ApplyBatch(bg, recs)
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestHasLongNumber holds the skipping search to the plain one.
func TestHasLongNumber(t *testing.T) {
	plain := func(b []byte) bool {
		run := 0
		for _, c := range b {
			if run = map[bool]int{true: run + 1, false: 0}['0' <= c && c <= '9']; run >= 16 {
				return true
			}
		}
		return false
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		b := make([]byte, r.IntN(60))
		for i := range b {
			b[i] = "0123456789x"[min(r.IntN(12), 10)]
		}
		if got, want := hasLongNumber(b), plain(b); got != want {
			t.Fatalf("hasLongNumber(%q) = %v, want %v", b, got, want)
		}
	}
}
