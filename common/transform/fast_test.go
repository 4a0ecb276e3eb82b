package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/itchyny/gojq"

	"github.com/culvert-dev/culvert/common/record"
)

// The differential tests of the fast path (fast.go): on the same expression
// and the same decoded value, the fast path and gojq must agree. What the
// fast path claims is checked against gojq directly (checkFast), and whole
// chains with and without it must give the same records, errors and drops
// (checkChains).

// fastCorpus holds expressions as users write them. Those the fast path
// must take are in fastSupported too.
var fastSupported = []string{
	`.amount > 50`,
	`.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`,
	`.`, `.a`, `.a.b`, `.a.b.c`, `.a[0]`, `.a[-1]`, `.["a"]`, `.a."b"`, `.[0]`, `.[2]`, `.a?`, `.a.b?`, `.a[0]?.c`, `.a?.b?`, `(.a)?`,
	`.user.name`, `.user.email | ascii_downcase`, `.items[0].price * .items[0].qty`,
	`.level == "ERROR"`, `.level != "DEBUG" and .host == "db-1"`, `.a or .b`, `(.a | not) or .c`, `.amount >= 100 and .amount < 1000`,
	`select(.amount > 50)`, `select(.level == "ERROR") | {msg, host}`, `select(.user.age >= 18) | .user`,
	`{id: .order_id, amount, customer: .customer_id}`, `{"a": 1, "b": .b, c}`, `{(.k): .v}`, `{"x-\(.a)": 1}`, `{}`, `{a: {b: {c: .a}}}`,
	`.a = 1`, `.a.b = .c`, `.a[1] = 2`, `.a[-1] = 0`, `.new = .amount * 2`, `.user.name = (.user.name | ascii_upcase)`,
	`.a |= . + 1`, `.amount |= tostring`, `.user.email |= ascii_downcase`, `.a.b |= length`, `.a += 1`, `.a -= 1`, `.a *= 2`, `.a /= 2`, `.a %= 2`, `.a //= "default"`,
	`.a // "none"`, `.a.b // .c // 0`, `.missing // empty`, `.a? // 1`,
	`. + 1`, `. - 1`, `. * 2`, `. / 2`, `. % 3`, `1 + 2`, `10 / 4`, `7 % -1`, `.a + .b`, `.a - .b`, `.a * .b`, `.a / .b`, `.a % .b`, `-.a`, `-(1)`, `-0`, `-0.0`, `+.a`, `.a + "x"`, `null + .a`,
	`length`, `.a | length`, `keys`, `.user | keys`, `has("a")`, `has(0)`, `.a | has("b")`, `type`, `.a | type`,
	`tostring`, `.a | tostring`, `tonumber`, `.a | tonumber`, `ascii_downcase`, `ascii_upcase`, `not`,
	`test("err")`, `.msg | test("disk|full")`, `.level | test("^e"; "i")`,
	`"\(.a)-\(.b)"`, `"id: \(.user.name // "anonymous")"`,
	`[.a]`, `[]`, `[empty]`,
	`if . then 1 end`, `if .a then .b elif .c then .d else null end`, `if .a == null then empty else .a end`,
	`true`, `false`, `null`, `1`, `1.5`, `1e3`, `1e1000`, `"s"`, `empty`,
	`try .a`, `try (.a + 1)`, `.a | select(. != null) | . * 100 | tostring? // 0`,
	`.ts / 1000`, `.n == -0`, `.big + 1`, `.id + 1`, `.id`, `.small * 1`, `.k + "é"`,
	`. == .`, `. < .`, `.a < .b`, `.a == .b`, `.a >= .b`, `[.a] < [.b]`, `{a} == {a: .b}`, `nan < .a`, `.a > nan`, `nan == nan`, `infinite`, `-infinite < .a`, `[nan] | tostring`,
	`1 / 0`, `.a / 0`, `.a % 0`, `{(.a): 1}`, `.a.b.c = 1`, `.[0] = 1`, `.a |= empty`, `.a.[0]`, `.[5000] = 1`, `.a[4000] = 1`,
	`startswith("a")`, `.a | endswith("x")`, `.a | ltrimstr("A")`, `.msg | rtrimstr("full")`, `.msg | split(" ")`, `split("")`, `split(.a)`, `.a | startswith(.b)`,
	`tojson`, `.a | tojson`, `.user | tojson | length`, `{j: tojson}`,
	`tostring | length`, `keys | length`, `.a | tostring | test("^\\d+$")`, `ascii_downcase | . == "école"`,
}

// fastUnsupported are left to gojq entirely.
var fastUnsupported = []string{
	`.[]`, `.a[]`, `map(.a)`, `.a, .b`, `reduce .[] as $x (0; . + $x)`, `def f: .; f`, `. as $x | $x`, `$ENV`, `env`,
	`.[1:2]`, `.[.k]`, `try .a catch .`, `input`, `halt`, `limit(1; .a)`, `first(.a)`, `.. | numbers`, `@base64`,
	`to_entries`, `path(.a)`, `del(.a)`, `.[] = 1`, `{a: (1,2)}`, `"\(1,2)"`, `123456789012345678901234567890`,
	`test("a"; "x")`, `test(.re)`, `{$__loc__}`, `.a | test("[")`, `[.a, .b] | length`, `.a | floor`, `split(", "; null)`, `trimstr("a")`, `join(",")`, `.a[1e1] = 1`,
}

var fastDocs = []string{
	`{"order_id":"o-1","customer_id":"c-7","amount":51,"product":"Widget"}`,
	`{"order_id":"o-2","customer_id":"c-8","amount":1500.5,"product":"Gadget"}`,
	`{"order_id":"o-3","amount":100,"product":"x"}`,
	`{"amount":"12"}`, `{"amount":null}`, `{"amount":-3.25}`, `{}`,
	`null`, `true`, `false`, `0`, `-0`, `-0.0`, `1.5`, `7`, `-7`, `1e300`, `-1e-7`, `1e21`, `1E-7`, `9007199254740993`, `12345678901234567890`,
	`"str"`, `"ÉCOLE école"`, `"\u00e9\ud83d\ude00"`, `"\ud800x"`, `"12"`, `"-1.5e3"`, `" 12"`, `"0x10"`, `"1e1000"`, `"nan"`, `"+1"`, `".5"`,
	`[]`, `[1,2,3]`, `[[1]]`, `["a","b"]`,
	`{"a":{"b":[1,{"c":"d"}]},"k":"key","v":[1]}`, `{"a":"x","b":2,"c":[true,null]}`, `{"a":3,"b":4}`, `{"a":3.5,"b":-2}`, `{"a":"A","b":"b"}`,
	`{"a":null,"b":false,"c":"c","d":1}`, `{"a":[1,2,3]}`, `{"a":[]}`, `{"a":{}}`, `{"a":{"b":null}}`, `{"a":"123"}`, `{"a":"x1"}`, `{"a":true}`,
	`{"a":9223372036854775807,"b":1}`, `{"a":-9223372036854775808,"b":-1}`, `{"a":4611686018427387904,"b":4}`,
	`{"user":{"name":"Ann","email":"ANN@EXAMPLE.COM","age":41},"tags":["a","b"],"items":[{"sku":"A1","qty":2,"price":9.99}]}`,
	`{"user":{"name":null,"email":"x@y","age":17}}`,
	`{"level":"ERROR","msg":"disk full","ts":1700000000123,"host":"db-1"}`, `{"level":"debug","msg":"ok","ts":1.5e12,"host":"web"}`,
	`{"id":9007199254740993,"x":1}`, `{"k":"<>&\u2028\u0000","n":-0.0,"big":1e21,"small":1e-7}`, `{"b":1,"a":2,"é":3,"A":4,"":5}`,
}

// typeSig writes v's Go types, maps by sorted key: the fast path must
// give gojq's very values, an int where gojq has an int.
func typeSig(b *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		ks := make([]string, 0, len(v))
		for k := range v {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		b.WriteByte('{')
		for _, k := range ks {
			fmt.Fprintf(b, "%q:", k)
			typeSig(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for _, x := range v {
			typeSig(b, x)
		}
		b.WriteByte(']')
	default:
		fmt.Fprintf(b, "%T,", v)
	}
}

func sig(v any) string {
	var b strings.Builder
	typeSig(&b, v)
	j, _ := gojq.Marshal(v)
	return string(j) + " " + b.String()
}

// reference runs code on v as step.run does: its outputs (at most 3) up to
// the first error, and that error.
func reference(code *gojq.Code, v any) ([]string, error) {
	it := code.Run(v)
	var outs []string
	for len(outs) < 3 {
		x, ok := it.Next()
		if !ok {
			break
		}
		if err, isErr := x.(error); isErr {
			return outs, err
		}
		outs = append(outs, sig(x))
	}
	return outs, nil
}

// checkFast evaluates expr on v with the fast path and with gojq and
// returns how the fast path ended and an error when it claimed what gojq
// does not do. The fast path must have compiled expr (fast != nil).
func checkFast(expr string, fast fastFn, code *gojq.Code, v any) (fastStatus, error) {
	x, st := fast(v)
	if st == fastBail {
		return st, nil
	}
	outs, err := reference(code, v)
	bad := false
	switch st {
	case fastOK:
		bad = err != nil || len(outs) != 1 || outs[0] != sig(x)
	case fastEmpty:
		bad = err != nil || len(outs) != 0
	case fastErr:
		bad = len(outs) != 0
	}
	if bad {
		in, _ := gojq.Marshal(v)
		return st, fmt.Errorf("%s on %s: fast path %v (status %d), gojq %q, error %v", expr, in, sig(x), st, outs, err)
	}
	return st, nil
}

func compileBoth(t testing.TB, expr string) (fastFn, *gojq.Code) {
	q, err := gojq.Parse(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return compileFast(q), code
}

func TestFastPathCorpus(t *testing.T) {
	var docs []any
	for _, d := range fastDocs {
		v, err := decode([]byte(d))
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		docs = append(docs, v)
	}
	for _, expr := range fastSupported {
		fast, code := compileBoth(t, expr)
		if fast == nil {
			t.Errorf("%s: not taken by the fast path", expr)
			continue
		}
		answered := 0
		for _, v := range docs {
			st, err := checkFast(expr, fast, code, v)
			if err != nil {
				t.Error(err)
			}
			if st != fastBail {
				answered++
			}
		}
		if answered == 0 {
			t.Errorf("%s: the fast path bailed on every document", expr)
		}
	}
	for _, expr := range fastUnsupported {
		q, err := gojq.Parse(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if compileFast(q) != nil {
			t.Errorf("%s: taken by the fast path, which does not know it", expr)
		}
	}
}

// withoutFast turns c's fast path off.
func withoutFast(c *Chain) *Chain {
	for i := range c.steps {
		c.steps[i].fast = nil
	}
	c.raw = nil
	return c
}

// checkChains applies steps to recs with and without the fast path,
// streamed and not, and returns an error when the results differ.
func checkChains(steps []Step, recs []record.Record) error {
	fast, err := Compile(steps)
	if err != nil {
		return nil // both refuse it alike
	}
	slow, _ := Compile(steps)
	withoutFast(slow)
	ordinary, _ := Compile(steps)
	withoutFast(ordinary).noStream = true
	fr := fast.ApplyBatch(bg, recs)
	for _, other := range []*Chain{slow, ordinary} {
		or := other.ApplyBatch(bg, recs)
		if values(fr.Out) != values(or.Out) || fr.Dropped != or.Dropped || len(fr.Failed) != len(or.Failed) {
			return fmt.Errorf("%v: fast path %q (%d dropped, %d failed), gojq %q (%d dropped, %d failed)",
				steps, values(fr.Out), fr.Dropped, len(fr.Failed), values(or.Out), or.Dropped, len(or.Failed))
		}
		for i := range fr.Failed {
			if fr.Failed[i].Err.Error() != or.Failed[i].Err.Error() || fr.Failed[i].Record.Offset != or.Failed[i].Record.Offset {
				return fmt.Errorf("%v: fast path failed %v, gojq %v", steps, fr.Failed[i].Err, or.Failed[i].Err)
			}
		}
	}
	return nil
}

func TestFastPathChains(t *testing.T) {
	var recs []record.Record
	for i, d := range append(slices.Clone(fastDocs), "not json", `1e1000`, `{"a":1e400}`) {
		recs = append(recs, record.Record{Value: []byte(d), Offset: int64(i)})
	}
	for _, expr := range append(slices.Clone(fastSupported), fastUnsupported...) {
		for _, k := range Kinds {
			if err := checkChains([]Step{{Kind: k, Expr: expr}}, recs); err != nil {
				t.Error(err)
			}
		}
	}
	// Steps one after the other: the orders pipeline, and a filter whose
	// value a map then changes.
	pipelines := [][]Step{
		{{Kind: Filter, Expr: `.amount > 50`}, {Kind: Map, Expr: `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}},
		{{Kind: FilterMap, Expr: `.a // empty`}, {Kind: Map, Expr: `{v: ., t: type}`}, {Kind: Filter, Expr: `.t != "null"`}},
		{{Kind: Map, Expr: `.a = 1`}, {Kind: Filter, Expr: `.a == 1`}, {Kind: Map, Expr: `.b = .a + 1`}},
		// Set in place (setKey) only where the value is the decoded one and
		// the new value a scalar.
		{{Kind: Map, Expr: `.a = .`}, {Kind: Map, Expr: `.b = .a`}},
		{{Kind: Map, Expr: `.a = [.]`}, {Kind: Map, Expr: `.c = {b: .}`}, {Kind: Map, Expr: `.d = "x"`}},
		{{Kind: ArrayMap, Expr: `[., .][]`}, {Kind: Map, Expr: `.a = 1`}, {Kind: Map, Expr: `.n = 2`}},
		{{Kind: FilterMap, Expr: `select(.a)`}, {Kind: Map, Expr: `.a = 1`}},
		{{Kind: Map, Expr: `.a = error("x")`}, {Kind: Map, Expr: `.a = 2`}},
	}
	for _, steps := range pipelines {
		if err := checkChains(steps, recs); err != nil {
			t.Error(err)
		}
	}
}

// TestFastPathInputsUntouched: the fast path never changes the value it
// reads (a filter passes the input on, bytes and all; others share it).
func TestFastPathInputsUntouched(t *testing.T) {
	for _, expr := range fastSupported {
		fast, _ := compileBoth(t, expr)
		if fast == nil {
			t.Fatalf("%s: not taken by the fast path", expr)
		}
		for _, d := range fastDocs {
			v, _ := decode([]byte(d))
			before := sig(v)
			fast(v)
			if after := sig(v); after != before {
				t.Fatalf("%s changed its input %s to %s", expr, before, after)
			}
		}
	}
}

func TestFastPathCanBeTurnedOff(t *testing.T) {
	defer func(on bool) { fastPathEnabled = on }(fastPathEnabled)
	fastPathEnabled = false
	c, err := Compile([]Step{{Kind: Filter, Expr: ".a"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.steps[0].fast != nil {
		t.Fatal("CULVERT_JQ_FASTPATH=off did not turn the fast path off")
	}
	fastPathEnabled = true
	if c, _ = Compile([]Step{{Kind: Filter, Expr: ".a"}}); c.steps[0].fast == nil {
		t.Fatal("the fast path does not take .a")
	}
}

// FuzzFastPath: on any expression the fast path takes and any JSON value,
// it agrees with gojq (checkFast), and so does a chain of one step of each
// kind (checkChains). The seeds are the corpus above and testdata.
func FuzzFastPath(f *testing.F) {
	for i, expr := range fastSupported {
		f.Add(expr, fastDocs[i%len(fastDocs)])
		f.Add(expr, fastDocs[(i*7+3)%len(fastDocs)])
	}
	f.Fuzz(func(t *testing.T, expr, doc string) {
		q, err := gojq.Parse(expr)
		if err != nil {
			return
		}
		fast := compileFast(q)
		if fast == nil {
			return
		}
		code, err := gojq.Compile(q)
		if err != nil {
			return
		}
		if err := checkDecode([]byte(doc)); err != nil {
			t.Fatal(err)
		}
		v, err := decode([]byte(doc))
		if err != nil {
			return
		}
		st, err := checkFast(expr, fast, code, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkEncode(v); err != nil {
			t.Fatal(err)
		}
		if x, st := fast(v); st == fastOK {
			if err := checkEncode(x); err != nil {
				t.Fatal(err)
			}
		}
		if st == fastBail {
			return // gojq alone evaluates it
		}
		recs := []record.Record{{Value: []byte(doc)}}
		for _, k := range Kinds {
			if err := checkChains([]Step{{Kind: k, Expr: expr}}, recs); err != nil {
				t.Fatal(err)
			}
		}
		// The raw path (raw.go): the expression as the value of a new key,
		// and the orders pipeline on the document.
		for _, steps := range [][]Step{{{Kind: Map, Expr: ".new = (" + expr + ")"}}, rawOrders} {
			if err := checkChains(steps, recs); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// BenchmarkFastPath compares the orders filter and map with the fast path
// (fast decoding, evaluation and encoding) and without it (goccy, gojq,
// gojq.Marshal; CULVERT_JQ_FASTPATH=off): go test -bench FastPath ./transform
func BenchmarkFastPath(b *testing.B) {
	recs := make([]record.Record, 5000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf(`{"order_id":"o-%d","customer_id":"c-77","amount":%d.5,"product":"widget"}`, i, i%2000))
	}
	steps := []Step{{Kind: Filter, Expr: ".amount > 50"}, {Kind: Map, Expr: `.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)`}}
	defer func(on bool) { fastPathEnabled = on }(fastPathEnabled)
	for _, on := range []bool{true, false} {
		fastPathEnabled = on // CULVERT_JQ_FASTPATH=off when false
		ch, _ := Compile(steps)
		b.Run(map[bool]string{true: "fast", false: "off"}[on], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ch.ApplyBatch(bg, recs)
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// checkEncode returns an error when appendJSON and gojq.Marshal encode v
// differently.
func checkEncode(v any) error {
	var keys []string
	got := appendJSON([]byte("prefix"), v, &keys)
	want, _ := gojq.Marshal(v)
	if string(got) != "prefix"+string(want) || len(keys) != 0 {
		return fmt.Errorf("appendJSON wrote %s, gojq.Marshal %s", got[len("prefix"):], want)
	}
	return nil
}

func TestAppendJSON(t *testing.T) {
	vals := []any{
		nil, true, false, 0, -1, math.MaxInt, math.MinInt, 0.0, math.Copysign(0, -1), 1.5, 1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 123456789e15,
		-1e-300, 5e-324, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), big.NewInt(0).Lsh(big.NewInt(1), 100),
		json.Number("12345678901234567890"), json.Number("-0"),
		"", "plain", "\"\\/\b\f\n\r\t\x00\x1f\x7f", "<>&\u2028\u2029", "é\U0001F600", "bad \xff\xfe utf8 \xed\xa0\x80",
		[]any{}, []any{1, "a", nil, []any{map[string]any{}}},
		map[string]any{"b": 1, "a": map[string]any{"z": 1, "y": []any{map[string]any{"d": 1, "c": 2}}}, "é": 1, "A": 2, "": 3, "aa": 4},
	}
	for _, d := range fastDocs {
		v, _ := decode([]byte(d))
		vals = append(vals, v)
	}
	for _, v := range vals {
		if err := checkEncode(v); err != nil {
			t.Error(err)
		}
	}
	// Encoded values share memory, but none writes over another.
	sc := &scratch{}
	var outs [][]byte
	for i := range 5000 {
		outs = append(outs, sc.encode(map[string]any{"i": i, "s": strings.Repeat("x", i%300)}))
	}
	for i, b := range outs {
		if want := fmt.Sprintf(`{"i":%d,"s":"%s"}`, i, strings.Repeat("x", i%300)); string(b) != want {
			t.Fatalf("value %d is %s, want %s", i, b, want)
		}
		if len(b) != cap(b) {
			t.Fatalf("value %d may be appended to over the next one", i)
		}
	}
}

// checkDecode returns an error when fastDecode takes b and gives other than
// goccy/go-json does, or takes what goccy refuses.
func checkDecode(b []byte) error {
	v, ok := fastDecode(b)
	if !ok {
		return nil
	}
	var want any
	if err := gojson.Unmarshal(b, &want); err != nil {
		return fmt.Errorf("fastDecode took %q, which goccy refuses: %v", b, err)
	}
	if sig(v) != sig(want) {
		return fmt.Errorf("fastDecode read %q as %s, goccy as %s", b, sig(v), sig(want))
	}
	if math.Signbit(toFloat(v)) != math.Signbit(toFloat(want)) {
		return fmt.Errorf("fastDecode read %q with another sign than goccy", b)
	}
	return nil
}

func toFloat(v any) float64 {
	f, _ := v.(float64)
	return f
}

func TestFastDecode(t *testing.T) {
	taken := []string{
		`{}`, `[]`, `""`, `0`, `-0`, `-0.0`, `1.5`, `1e3`, `1E-7`, `-1.25e+300`, `123456789012345`, `0.1`, `5e-324`, `1.7976931348623157e308`,
		` {"a" : [ 1 , 2 ] , "b":{"c":null}} `, `"é😀"`, `"a\"b\\c\/d\b\f\n\r\t\u00e9\u0000\u20ac"`, `[true,false,null]`,
		`{"order_id":"o-1","customer_id":"c-7","amount":51,"product":"Widget"}`,
	}
	declined := []string{
		``, ` `, `{`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `+1`, `1e`, `-`, `1e400`, `NaN`, `tru`, `nul`, `"\x"`,
		`"\ud83d\ude00"`, `"\ud800"`, "\"\xff\"", "\"a\tb\"", `{"a":1,"a":2}`, `1 2`, `"abc`, `"\u12"`, strings.Repeat("[", 300) + strings.Repeat("]", 300),
	}
	for _, s := range taken {
		if _, ok := fastDecode([]byte(s)); !ok {
			t.Errorf("fastDecode declined %s", s)
		}
		if err := checkDecode([]byte(s)); err != nil {
			t.Error(err)
		}
	}
	for _, s := range declined {
		if _, ok := fastDecode([]byte(s)); ok {
			t.Errorf("fastDecode took %q", s)
		}
	}
	for _, d := range fastDocs {
		if err := checkDecode([]byte(d)); err != nil {
			t.Error(err)
		}
	}
}

// TestSetInPlace: a map .key = scalar changes the decoded value itself, and
// an output shared by two records is never changed in place.
func TestSetInPlace(t *testing.T) {
	c, err := Compile([]Step{{Kind: Filter, Expr: `.amount > 50`}, {Kind: Map, Expr: `.priority = "HIGH"`}})
	if err != nil {
		t.Fatal(err)
	}
	if c.steps[1].set == nil {
		t.Fatal(".priority = ... is not set in place")
	}
	out, err := c.Apply(bg, rec(`{"amount":51}`))
	if err != nil || values(out) != `{"amount":51,"priority":"HIGH"}` {
		t.Fatalf("got %s, %v", values(out), err)
	}
	shared, _ := Compile([]Step{{Kind: ArrayMap, Expr: `{a: 1} as $x | [$x, $x][]`}, {Kind: Map, Expr: `.b = 2`}, {Kind: Map, Expr: `.a = 3`}})
	out, err = shared.Apply(bg, rec(`null`))
	if err != nil || values(out) != `{"a":3,"b":2} {"a":3,"b":2}` {
		t.Fatalf("got %s, %v", values(out), err)
	}
	for _, expr := range []string{`.a.b = 1`, `.[0] = 1`, `.a |= 1`, `.a = (.b, .c)`, `.a += 1`} {
		if c, _ := Compile([]Step{{Kind: Map, Expr: expr}}); c.steps[0].set != nil {
			t.Errorf("%s is set in place", expr)
		}
	}
}
