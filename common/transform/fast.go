package transform

import (
	"cmp"
	"maps"
	"math"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/itchyny/gojq"
)

// The fast path evaluates the jq expressions users write most (field paths,
// literals, comparisons, and/or/not, arithmetic, if/elif/else, select,
// object and array construction, = and |= updates on constant paths, //,
// ?, string interpolation and a few functions) as Go closures on the
// decoded value, without gojq's interpreter. Which expressions it takes is
// decided at compile time from gojq's AST: anything else is left to gojq,
// expression by expression (compileFast returns nil).
//
// gojq stays the reference: the fast path gives a value only where it knows
// gojq gives the same one (the same Go value of the same type, so that
// gojq.Marshal encodes both alike), and otherwise says so (fastErr,
// fastBail) and the record is evaluated by gojq, which then gives the output
// or the error and its message. FuzzFastPath and TestFastPathCorpus hold
// the fast path to that against gojq.
//
// The values are decoded by fastDecode and the outputs encoded by
// appendJSON, each held to what it replaces (goccy/go-json, gojq.Marshal)
// the same way.
//
// CULVERT_JQ_FASTPATH=off turns all three off: goccy decodes, gojq
// evaluates and encodes every value, as before the fast path (benchmarks
// compare both in one run: bench csv, go test -bench FastPath).

// fastStatus is how a fast evaluation ended.
type fastStatus uint8

const (
	// fastOK: one output, the value returned.
	fastOK fastStatus = iota
	// fastEmpty: no output, and gojq gives none either.
	fastEmpty
	// fastErr: gojq raises an error here, or gives no output. Inside try
	// and ? that is the same as no output; elsewhere gojq evaluates the
	// expression again to give the error its message.
	fastErr
	// fastBail: a case the fast path does not handle at run time (a type,
	// an overflow): gojq evaluates the whole expression.
	fastBail
)

// fastFn evaluates an expression that has at most one output on v. It never
// modifies v or anything v holds.
type fastFn func(v any) (any, fastStatus)

// fastPathEnabled is false when CULVERT_JQ_FASTPATH=off: no fast
// evaluation, decoding or encoding.
var fastPathEnabled = os.Getenv("CULVERT_JQ_FASTPATH") != "off"

// compileFast returns the fast evaluator of q, or nil when q is outside
// what the fast path knows.
func compileFast(q *gojq.Query) fastFn {
	if q == nil || q.Meta != nil || len(q.Imports) > 0 {
		return nil
	}
	f, ok := fastQuery(q)
	if !ok {
		return nil
	}
	return f
}

func truthy(v any) bool { return v != nil && v != false }

// known reports whether v is of a type the fast path knows: not a
// json.Number nor a big integer, which gojq reads in its own ways (the
// decoder makes json.Number of long numbers).
func known(v any) bool {
	switch v.(type) {
	case nil, bool, int, float64, string, []any, map[string]any:
		return true
	}
	return false
}

func fastConst(c any) fastFn { return func(any) (any, fastStatus) { return c, fastOK } }

func fastIdentity(v any) (any, fastStatus) { return v, fastOK }

func fastQuery(q *gojq.Query) (fastFn, bool) {
	if q == nil || len(q.FuncDefs) > 0 || len(q.Patterns) > 0 {
		return nil, false
	}
	if q.Term != nil {
		return fastTerm(q.Term)
	}
	switch q.Op {
	case gojq.OpAssign, gojq.OpModify, gojq.OpUpdateAdd, gojq.OpUpdateSub,
		gojq.OpUpdateMul, gojq.OpUpdateDiv, gojq.OpUpdateMod, gojq.OpUpdateAlt:
		return fastUpdate(q.Left, q.Right, q.Op)
	}
	l, ok := fastQuery(q.Left)
	if !ok {
		return nil, false
	}
	r, ok := fastQuery(q.Right)
	if !ok {
		return nil, false
	}
	switch q.Op {
	case gojq.OpPipe:
		return func(v any) (any, fastStatus) {
			x, st := l(v)
			if st != fastOK {
				return nil, st
			}
			return r(x)
		}, true
	case gojq.OpAlt:
		return func(v any) (any, fastStatus) {
			// gojq's // does not catch an error of its left side: the
			// error is an output, and the right side's outputs follow.
			// fastErr might be either, hence the bail.
			x, st := l(v)
			switch {
			case st == fastErr || st == fastBail:
				return nil, fastBail
			case st == fastOK && truthy(x):
				return x, fastOK
			}
			return r(v)
		}, true
	case gojq.OpAnd, gojq.OpOr:
		and := q.Op == gojq.OpAnd
		return func(v any) (any, fastStatus) {
			x, st := l(v)
			if st != fastOK {
				return nil, st
			}
			if truthy(x) != and {
				return !and, fastOK // false and ..., true or ...
			}
			y, st := r(v)
			if st != fastOK {
				return nil, st
			}
			return truthy(y), fastOK
		}, true
	case gojq.OpEq, gojq.OpNe, gojq.OpLt, gojq.OpLe, gojq.OpGt, gojq.OpGe:
		op := q.Op
		return fastBinary(l, r, func(x, y any) (any, fastStatus) {
			c := compare(x, y)
			switch op {
			case gojq.OpEq:
				return c == 0, fastOK
			case gojq.OpNe:
				return c != 0, fastOK
			case gojq.OpLt:
				return c < 0, fastOK
			case gojq.OpLe:
				return c <= 0, fastOK
			case gojq.OpGt:
				return c > 0, fastOK
			default:
				return c >= 0, fastOK
			}
		}), true
	case gojq.OpAdd, gojq.OpSub, gojq.OpMul, gojq.OpDiv, gojq.OpMod:
		op := arith(q.Op)
		return fastBinary(l, r, op), true
	}
	return nil, false // , and anything else
}

// compare is gojq.Compare, with numbers and strings compared here.
func compare(x, y any) int {
	switch x := x.(type) {
	case float64:
		switch y := y.(type) {
		case float64:
			return compareFloats(x, y)
		case int:
			return compareFloats(x, float64(y))
		}
	case int:
		switch y := y.(type) {
		case int:
			return cmp.Compare(x, y)
		case float64:
			return compareFloats(float64(x), y)
		}
	case string:
		if y, ok := y.(string); ok {
			return strings.Compare(x, y)
		}
	}
	return gojq.Compare(x, y)
}

// compareFloats is gojq's order of floats: NaN below any number.
func compareFloats(l, r float64) int {
	switch {
	case l < r || math.IsNaN(l):
		return -1
	case l == r:
		return 0
	}
	return 1
}

// fastBinary evaluates both sides (gojq's order does not matter: an error
// or a bail of either side wins, then no output of either side) and
// applies op.
func fastBinary(l, r fastFn, op func(x, y any) (any, fastStatus)) fastFn {
	return func(v any) (any, fastStatus) {
		x, sx := l(v)
		y, sy := r(v)
		if st := max(sx, sy); st != fastOK {
			return nil, st
		}
		return op(x, y)
	}
}

// arith returns the arithmetic operator op on numbers (int and float64, as
// gojq computes them), strings and null (+); anything else bails.
func arith(op gojq.Operator) func(x, y any) (any, fastStatus) {
	return func(x, y any) (any, fastStatus) {
		switch x := x.(type) {
		case int:
			switch y := y.(type) {
			case int:
				return arithInts(op, x, y)
			case float64:
				return arithFloats(op, float64(x), y)
			}
		case float64:
			switch y := y.(type) {
			case int:
				return arithFloats(op, x, float64(y))
			case float64:
				return arithFloats(op, x, y)
			}
		case string:
			if y, ok := y.(string); ok && op == gojq.OpAdd {
				return x + y, fastOK
			}
		}
		if op == gojq.OpAdd && known(x) && known(y) {
			switch {
			case x == nil:
				return y, fastOK
			case y == nil:
				return x, fastOK
			}
		}
		return nil, fastBail
	}
}

func arithInts(op gojq.Operator, l, r int) (any, fastStatus) {
	switch op {
	case gojq.OpAdd:
		if v := l + r; (v >= l) == (r >= 0) {
			return v, fastOK
		}
	case gojq.OpSub:
		if v := l - r; (v <= l) == (r >= 0) {
			return v, fastOK
		}
	case gojq.OpMul:
		if r == -1 {
			if l != math.MinInt {
				return -l, fastOK
			}
		} else if v := l * r; r == 0 || v/r == l {
			return v, fastOK
		}
	case gojq.OpDiv:
		switch r {
		case 0:
			return nil, fastErr
		case -1:
			if l != math.MinInt {
				return -l, fastOK
			}
		default:
			if l%r == 0 {
				return l / r, fastOK
			}
			return float64(l) / float64(r), fastOK
		}
	case gojq.OpMod:
		switch r {
		case 0:
			return nil, fastErr
		case -1:
			return 0, fastOK
		default:
			return l % r, fastOK
		}
	}
	return nil, fastBail // beyond int: gojq goes to big.Int
}

func arithFloats(op gojq.Operator, l, r float64) (any, fastStatus) {
	switch op {
	case gojq.OpAdd:
		return l + r, fastOK
	case gojq.OpSub:
		return l - r, fastOK
	case gojq.OpMul:
		return l * r, fastOK
	case gojq.OpDiv:
		if r == 0 {
			return nil, fastErr
		}
		return l / r, fastOK
	default: // OpMod
		if math.IsNaN(l) || math.IsNaN(r) {
			return math.NaN(), fastOK
		}
		ri := floatToInt(r)
		if ri == 0 {
			return nil, fastErr
		}
		return floatToInt(l) % ri, fastOK
	}
}

// floatToInt is gojq's conversion of a float to an int.
func floatToInt(x float64) int {
	if math.MinInt <= x && x < math.MaxInt {
		return int(x)
	}
	if x > 0 {
		return math.MaxInt
	}
	return math.MinInt
}

// parseNumber is gojq's reading of a number literal (and of tonumber's
// string): an int when it is one, else a float64; nil when gojq would make
// it a big integer.
func parseNumber(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return int(i)
	}
	if strings.ContainsAny(s, ".eE") {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	if _, ok := new(big.Int).SetString(s, 10); ok {
		return nil
	}
	if strings.HasPrefix(s, "-") {
		return math.Inf(-1)
	}
	return math.Inf(1)
}

func fastTerm(t *gojq.Term) (fastFn, bool) {
	f, ok := fastTermBase(t)
	if !ok {
		return nil, false
	}
	// The suffixes: .x, [n] and ?, which catches the errors of the index
	// before it (.a.b? is .a | try .b) or of the whole term so far.
	var last fastFn // the last index, not yet composed into f
	for _, s := range t.SuffixList {
		switch {
		case s.Index != nil:
			if last != nil {
				f = fastPipe(f, last)
			}
			k, ok := indexKey(s.Index)
			if !ok {
				return nil, false
			}
			last = fastIndex(k)
		case s.Optional:
			if last != nil {
				f, last = fastPipe(f, fastTry(last)), nil
			} else {
				f = fastTry(f)
			}
		default: // .[]
			return nil, false
		}
	}
	if last != nil {
		f = fastPipe(f, last)
	}
	return f, true
}

func fastPipe(l, r fastFn) fastFn {
	if l == nil {
		return r
	}
	return func(v any) (any, fastStatus) {
		x, st := l(v)
		if st != fastOK {
			return nil, st
		}
		return r(x)
	}
}

// fastTry is try without catch, and ?: an error is no output.
func fastTry(f fastFn) fastFn {
	return func(v any) (any, fastStatus) {
		x, st := f(v)
		if st == fastErr {
			return nil, fastEmpty
		}
		return x, st
	}
}

func fastTermBase(t *gojq.Term) (fastFn, bool) {
	switch t.Type {
	case gojq.TermTypeIdentity:
		return fastIdentity, true
	case gojq.TermTypeNull:
		return fastConst(nil), true
	case gojq.TermTypeTrue:
		return fastConst(true), true
	case gojq.TermTypeFalse:
		return fastConst(false), true
	case gojq.TermTypeNumber:
		if n := parseNumber(t.Number); n != nil {
			return fastConst(n), true
		}
	case gojq.TermTypeString:
		return fastString(t.Str)
	case gojq.TermTypeIndex:
		if k, ok := indexKey(t.Index); ok {
			return fastIndex(k), true
		}
	case gojq.TermTypeQuery:
		return fastQuery(t.Query)
	case gojq.TermTypeUnary:
		return fastUnary(t.Unary)
	case gojq.TermTypeIf:
		return fastIf(t.If)
	case gojq.TermTypeTry:
		if t.Try.Catch == nil {
			if f, ok := fastQuery(t.Try.Body); ok {
				return fastTry(f), true
			}
		}
	case gojq.TermTypeObject:
		return fastObject(t.Object)
	case gojq.TermTypeArray:
		if t.Array.Query == nil {
			return func(any) (any, fastStatus) { return []any{}, fastOK }, true
		}
		if f, ok := fastQuery(t.Array.Query); ok {
			return func(v any) (any, fastStatus) {
				x, st := f(v)
				switch st {
				case fastOK:
					return []any{x}, fastOK
				case fastEmpty:
					return []any{}, fastOK
				}
				return nil, st
			}, true
		}
	case gojq.TermTypeFunc:
		return fastFunc(t.Func)
	}
	return nil, false
}

// indexKey returns the constant key of an index: a string, or an int.
func indexKey(x *gojq.Index) (any, bool) {
	switch {
	case x.Name != "":
		return x.Name, true
	case x.Str != nil:
		if x.Str.Queries == nil {
			return x.Str.Str, true
		}
	case !x.IsSlice && x.Start != nil && x.Start.Term != nil && len(x.Start.Term.SuffixList) == 0 && len(x.Start.FuncDefs) == 0:
		t := x.Start.Term
		switch t.Type {
		case gojq.TermTypeString:
			if t.Str.Queries == nil {
				return t.Str.Str, true
			}
		case gojq.TermTypeNumber:
			if n, ok := parseNumber(t.Number).(int); ok {
				return n, true
			}
		case gojq.TermTypeUnary:
			if u := t.Unary; u.Term.Type == gojq.TermTypeNumber && len(u.Term.SuffixList) == 0 {
				if n, ok := parseNumber(u.Term.Number).(int); ok {
					switch {
					case u.Op == gojq.OpAdd:
						return n, true
					case u.Op == gojq.OpSub && n != math.MinInt:
						return -n, true
					}
				}
			}
		}
	}
	return nil, false
}

// index is gojq's .[k] for a constant key.
func index(v, k any) (any, fastStatus) {
	switch k := k.(type) {
	case string:
		switch v := v.(type) {
		case nil:
			return nil, fastOK
		case map[string]any:
			return v[k], fastOK
		case bool, int, float64, []any, string:
			return nil, fastErr
		}
	case int:
		switch v := v.(type) {
		case nil:
			return nil, fastOK
		case []any:
			i := k
			if i < 0 {
				i += len(v)
			}
			if 0 <= i && i < len(v) {
				return v[i], fastOK
			}
			return nil, fastOK
		case bool, int, float64, map[string]any:
			return nil, fastErr
		}
	}
	return nil, fastBail
}

func fastIndex(k any) fastFn {
	return func(v any) (any, fastStatus) { return index(v, k) }
}

func fastString(s *gojq.String) (fastFn, bool) {
	if s.Queries == nil {
		return fastConst(s.Str), true
	}
	// "a\(.x)b" is "a" + (.x | tostring) + "b".
	parts := make([]fastFn, len(s.Queries))
	for i, q := range s.Queries {
		if q.Term != nil && q.Term.Type == gojq.TermTypeString && q.Term.Str.Queries == nil && len(q.Term.SuffixList) == 0 {
			parts[i] = fastConst(q.Term.Str.Str)
			continue
		}
		if q.Term != nil && q.Term.Str != nil {
			return nil, false // as gojq: no tostring for a string term
		}
		f, ok := fastQuery(q)
		if !ok {
			return nil, false
		}
		parts[i] = fastPipe(f, func(v any) (any, fastStatus) { return tostring(v), fastOK })
	}
	return func(v any) (any, fastStatus) {
		var b strings.Builder
		worst := fastOK
		for _, p := range parts {
			x, st := p(v)
			worst = max(worst, st)
			if st == fastOK {
				b.WriteString(x.(string))
			}
		}
		if worst != fastOK {
			return nil, worst
		}
		return b.String(), fastOK
	}, true
}

func tostring(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := gojq.Marshal(v)
	return string(b)
}

func fastUnary(u *gojq.Unary) (fastFn, bool) {
	f, ok := fastTerm(u.Term)
	if !ok {
		return nil, false
	}
	if u.Term.Type == gojq.TermTypeNumber && len(u.Term.SuffixList) == 0 {
		x, _ := f(nil)
		if u.Op == gojq.OpSub {
			switch n := x.(type) {
			case int:
				if n == math.MinInt {
					return nil, false
				}
				return fastConst(-n), true
			case float64:
				return fastConst(-n), true
			}
			return nil, false
		}
		return f, true
	}
	neg := u.Op == gojq.OpSub
	return fastPipe(f, func(v any) (any, fastStatus) {
		switch n := v.(type) {
		case int:
			if !neg {
				return n, fastOK
			}
			if n != math.MinInt {
				return -n, fastOK
			}
		case float64:
			if neg {
				return -n, fastOK
			}
			return n, fastOK
		case nil, bool, string, []any, map[string]any:
			return nil, fastErr
		}
		return nil, fastBail
	}), true
}

func fastIf(e *gojq.If) (fastFn, bool) {
	cond, ok := fastQuery(e.Cond)
	if !ok {
		return nil, false
	}
	then, ok := fastQuery(e.Then)
	if !ok {
		return nil, false
	}
	var els fastFn = fastIdentity
	switch {
	case len(e.Elif) > 0:
		if els, ok = fastIf(&gojq.If{Cond: e.Elif[0].Cond, Then: e.Elif[0].Then, Elif: e.Elif[1:], Else: e.Else}); !ok {
			return nil, false
		}
	case e.Else != nil:
		if els, ok = fastQuery(e.Else); !ok {
			return nil, false
		}
	}
	return func(v any) (any, fastStatus) {
		c, st := cond(v)
		if st != fastOK {
			return nil, st
		}
		if truthy(c) {
			return then(v)
		}
		return els(v)
	}, true
}

func fastObject(o *gojq.Object) (fastFn, bool) {
	type kv struct {
		key string // when k is nil
		k   fastFn // a computed key
		v   fastFn
	}
	kvs := make([]kv, len(o.KeyVals))
	for i, e := range o.KeyVals {
		var ok bool
		switch {
		case e.Key != "":
			if e.Key[0] == '$' {
				return nil, false // variables
			}
			kvs[i].key = e.Key
		case e.KeyString != nil && e.KeyString.Queries == nil:
			kvs[i].key = e.KeyString.Str
		case e.KeyString != nil:
			if e.Val == nil {
				return nil, false // {"\(.a)"}
			}
			if kvs[i].k, ok = fastString(e.KeyString); !ok {
				return nil, false
			}
		case e.KeyQuery != nil:
			if kvs[i].k, ok = fastQuery(e.KeyQuery); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
		if e.Val == nil { // {a} is {a: .a}
			kvs[i].v = fastIndex(kvs[i].key)
		} else if kvs[i].v, ok = fastQuery(e.Val); !ok {
			return nil, false
		}
	}
	return func(v any) (any, fastStatus) {
		m := make(map[string]any, len(kvs))
		worst := fastOK
		for _, e := range kvs {
			key := e.key
			if e.k != nil {
				k, st := e.k(v)
				if st == fastOK {
					s, isString := k.(string)
					if !isString {
						st = fastErr // object keys must be strings
					}
					key = s
				}
				if st != fastOK {
					worst = max(worst, st)
					continue
				}
			}
			x, st := e.v(v)
			if st != fastOK {
				worst = max(worst, st)
				continue
			}
			m[key] = x
		}
		if worst != fastOK {
			return nil, worst
		}
		return m, fastOK
	}, true
}

// fastFunc compiles a call of a builtin. There are no definitions in the
// expression (fastQuery refuses them), so a name is gojq's builtin.
func fastFunc(f *gojq.Func) (fastFn, bool) {
	if strings.HasPrefix(f.Name, "$") {
		return nil, false
	}
	args := make([]fastFn, len(f.Args))
	for i, a := range f.Args {
		var ok bool
		if args[i], ok = fastQuery(a); !ok {
			return nil, false
		}
	}
	switch len(args) {
	case 0:
		if g := fastFuncs0[f.Name]; g != nil {
			return g, true
		}
	case 1:
		switch f.Name {
		case "select":
			cond := args[0]
			return func(v any) (any, fastStatus) {
				c, st := cond(v)
				if st != fastOK {
					return nil, st
				}
				if truthy(c) {
					return v, fastOK
				}
				return nil, fastEmpty
			}, true
		case "has":
			return fastBinary(fastIdentity, args[0], has), true
		case "startswith", "endswith", "ltrimstr", "rtrimstr", "split":
			return fastBinary(fastIdentity, args[0], strings2[f.Name]), true
		case "test":
			re, ok := constString(f.Args[0])
			if !ok {
				return nil, false
			}
			return fastTest(re, "")
		}
	case 2:
		if f.Name == "test" {
			re, ok := constString(f.Args[0])
			if !ok {
				return nil, false
			}
			flags, ok := constString(f.Args[1])
			if !ok {
				return nil, false
			}
			return fastTest(re, flags)
		}
	}
	return nil, false
}

// constString returns the string a query is, when it is a literal.
func constString(q *gojq.Query) (string, bool) {
	if q.Term != nil && q.Term.Type == gojq.TermTypeString && q.Term.Str.Queries == nil &&
		len(q.Term.SuffixList) == 0 && len(q.FuncDefs) == 0 {
		return q.Term.Str.Str, true
	}
	return "", false
}

// fastTest is test($re; $flags) with constant arguments, compiled as gojq
// compiles them.
func fastTest(re, flags string) (fastFn, bool) {
	if strings.ContainsFunc(flags, func(r rune) bool { return r != 'g' && r != 'i' && r != 'm' }) {
		return nil, false
	}
	if strings.ContainsRune(flags, 'i') {
		re = "(?i)" + re
	}
	if strings.ContainsRune(flags, 'm') {
		re = "(?s)" + re
	}
	r, err := regexp.Compile(re)
	if err != nil {
		return nil, false
	}
	return func(v any) (any, fastStatus) {
		s, ok := v.(string)
		if !ok {
			return nil, fastErr
		}
		return r.MatchString(s), fastOK
	}, true
}

func has(v, k any) (any, fastStatus) {
	switch v := v.(type) {
	case map[string]any:
		if k, ok := k.(string); ok {
			_, ok := v[k]
			return ok, fastOK
		}
	case []any:
		switch k := k.(type) {
		case int:
			return 0 <= k && k < len(v), fastOK
		case float64:
			i := floatToInt(k)
			return 0 <= i && i < len(v), fastOK
		}
	case nil:
		return false, fastOK
	}
	return nil, fastBail
}

// strings2 are the functions of a string and a string argument: anything
// else is an error in gojq.
var strings2 = map[string]func(v, x any) (any, fastStatus){
	"startswith": stringFunc(func(s, t string) any { return strings.HasPrefix(s, t) }),
	"endswith":   stringFunc(func(s, t string) any { return strings.HasSuffix(s, t) }),
	"ltrimstr":   stringFunc(func(s, t string) any { return strings.TrimPrefix(s, t) }),
	"rtrimstr":   stringFunc(func(s, t string) any { return strings.TrimSuffix(s, t) }),
	"split": stringFunc(func(s, t string) any {
		if s == "" {
			return []any{}
		}
		ss := strings.Split(s, t)
		xs := make([]any, len(ss))
		for i, s := range ss {
			xs[i] = s
		}
		return xs
	}),
}

func stringFunc(f func(s, t string) any) func(v, x any) (any, fastStatus) {
	return func(v, x any) (any, fastStatus) {
		s, ok1 := v.(string)
		t, ok2 := x.(string)
		switch {
		case ok1 && ok2:
			return f(s, t), fastOK
		case known(v) && known(x):
			return nil, fastErr
		}
		return nil, fastBail
	}
}

var fastFuncs0 = map[string]fastFn{
	"tojson": func(v any) (any, fastStatus) {
		if !known(v) {
			return nil, fastBail
		}
		b, _ := gojq.Marshal(v)
		return string(b), fastOK
	},
	"empty":    func(any) (any, fastStatus) { return nil, fastEmpty },
	"nan":      func(any) (any, fastStatus) { return math.NaN(), fastOK },
	"infinite": func(any) (any, fastStatus) { return math.Inf(1), fastOK },
	"not":      func(v any) (any, fastStatus) { return !truthy(v), fastOK },
	"length": func(v any) (any, fastStatus) {
		switch v := v.(type) {
		case nil:
			return 0, fastOK
		case int:
			if v >= 0 {
				return v, fastOK
			}
			if v != math.MinInt {
				return -v, fastOK
			}
		case float64:
			return math.Abs(v), fastOK
		case string:
			return utf8.RuneCountInString(v), fastOK
		case []any:
			return len(v), fastOK
		case map[string]any:
			return len(v), fastOK
		case bool:
			return nil, fastErr
		}
		return nil, fastBail
	},
	"keys": func(v any) (any, fastStatus) {
		switch v := v.(type) {
		case []any:
			w := make([]any, len(v))
			for i := range v {
				w[i] = i
			}
			return w, fastOK
		case map[string]any:
			ks := make([]string, 0, len(v))
			for k := range v {
				ks = append(ks, k)
			}
			slices.Sort(ks)
			w := make([]any, len(ks))
			for i, k := range ks {
				w[i] = k
			}
			return w, fastOK
		case nil, bool, int, float64, string:
			return nil, fastErr
		}
		return nil, fastBail
	},
	"type": func(v any) (any, fastStatus) {
		switch v.(type) {
		case nil:
			return "null", fastOK
		case bool:
			return "boolean", fastOK
		case int, float64:
			return "number", fastOK
		case string:
			return "string", fastOK
		case []any:
			return "array", fastOK
		case map[string]any:
			return "object", fastOK
		}
		return nil, fastBail
	},
	"tostring": func(v any) (any, fastStatus) {
		switch v.(type) {
		case nil, bool, int, float64, string, []any, map[string]any:
			return tostring(v), fastOK
		}
		return nil, fastBail
	},
	"tonumber": func(v any) (any, fastStatus) {
		switch v := v.(type) {
		case int, float64:
			return v, fastOK
		case string:
			if simpleNumber(v) {
				if n := parseNumber(v); n != nil {
					return n, fastOK
				}
			}
			return nil, fastBail // gojq's lexer says whether it is a number
		case nil, bool, []any, map[string]any:
			return nil, fastErr
		}
		return nil, fastBail
	},
	"ascii_downcase": asciiCase('A', 'Z', 'a'-'A'),
	"ascii_upcase":   asciiCase('a', 'z', 'A'-'a'),
}

// asciiCase shifts the letters lo..hi of a string by d, as gojq's
// ascii_downcase and ascii_upcase do.
func asciiCase(lo, hi byte, d int) fastFn {
	return func(v any) (any, fastStatus) {
		s, ok := v.(string)
		if !ok {
			switch v.(type) {
			case nil, bool, int, float64, []any, map[string]any:
				return nil, fastErr
			}
			return nil, fastBail
		}
		i := 0
		for i < len(s) && !(lo <= s[i] && s[i] <= hi) {
			i++
		}
		if i == len(s) {
			return s, fastOK
		}
		if !utf8.ValidString(s) {
			return nil, fastBail // strings.Map would replace bad bytes
		}
		b := []byte(s)
		for ; i < len(b); i++ {
			if lo <= b[i] && b[i] <= hi {
				b[i] = byte(int(b[i]) + d)
			}
		}
		return string(b), fastOK
	}
}

// simpleNumber reports whether s is -?digits(.digits)?([eE][+-]?digits)?,
// which gojq's tonumber reads as a number.
func simpleNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > j
	}
	if !digits() {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}

// fastUpdate compiles path = f, path |= f and path op= f for a constant
// path (.a.b[0]).
func fastUpdate(lhs, rhs *gojq.Query, op gojq.Operator) (fastFn, bool) {
	path, ok := constPath(lhs)
	if !ok {
		return nil, false
	}
	f, ok := fastQuery(rhs)
	if !ok {
		return nil, false
	}
	switch op {
	case gojq.OpAssign: // setpath(path; f), f on .
		return func(v any) (any, fastStatus) {
			x, st := f(v)
			if st != fastOK {
				return nil, st
			}
			return setPath(v, path, x)
		}, true
	case gojq.OpModify: // f on the value at the path; no output deletes it (bail)
		return func(v any) (any, fastStatus) {
			old, st := getPath(v, path)
			if st != fastOK {
				return nil, st
			}
			x, st := f(old)
			switch st {
			case fastOK:
				return setPath(v, path, x)
			case fastEmpty:
				return nil, fastBail
			}
			return nil, st
		}, true
	}
	// path op= f: $x = f on ., then path |= . op $x.
	var combine func(x, y any) (any, fastStatus)
	switch op {
	case gojq.OpUpdateAlt:
		combine = func(x, y any) (any, fastStatus) {
			if truthy(x) {
				return x, fastOK
			}
			return y, fastOK
		}
	case gojq.OpUpdateAdd:
		combine = arith(gojq.OpAdd)
	case gojq.OpUpdateSub:
		combine = arith(gojq.OpSub)
	case gojq.OpUpdateMul:
		combine = arith(gojq.OpMul)
	case gojq.OpUpdateDiv:
		combine = arith(gojq.OpDiv)
	case gojq.OpUpdateMod:
		combine = arith(gojq.OpMod)
	default:
		return nil, false
	}
	return func(v any) (any, fastStatus) {
		y, st := f(v)
		if st != fastOK {
			return nil, st
		}
		old, st := getPath(v, path)
		if st != fastOK {
			return nil, st
		}
		x, st := combine(old, y)
		if st != fastOK {
			return nil, st
		}
		return setPath(v, path, x)
	}, true
}

// constPath returns the keys of a path such as .a.b[0]: an index term with
// constant keys and nothing else.
func constPath(q *gojq.Query) ([]any, bool) {
	if q == nil || q.Term == nil || len(q.FuncDefs) > 0 || q.Term.Type != gojq.TermTypeIndex {
		return nil, false
	}
	k, ok := indexKey(q.Term.Index)
	if !ok {
		return nil, false
	}
	path := []any{k}
	for _, s := range q.Term.SuffixList {
		if s.Index == nil {
			return nil, false
		}
		if k, ok = indexKey(s.Index); !ok {
			return nil, false
		}
		path = append(path, k)
	}
	return path, true
}

func getPath(v any, path []any) (any, fastStatus) {
	for _, k := range path {
		var st fastStatus
		if v, st = index(v, k); st != fastOK {
			return nil, st
		}
	}
	return v, fastOK
}

// maxFastGrowth is the most nulls an update of an array index beyond its
// end adds on the fast path.
const maxFastGrowth = 1 << 12

// setPath is gojq's setpath(path; x) for a constant path: a copy of v with x
// at the path, the maps and arrays along it copied, never modified.
func setPath(v any, path []any, x any) (any, fastStatus) {
	if len(path) == 0 {
		return x, fastOK
	}
	switch k := path[0].(type) {
	case string:
		switch m := v.(type) {
		case nil, map[string]any:
			m0, _ := m.(map[string]any)
			u, st := setPath(m0[k], path[1:], x)
			if st != fastOK {
				return nil, st
			}
			var w map[string]any
			if m0 == nil {
				w = make(map[string]any, 1)
			} else {
				w = maps.Clone(m0)
			}
			w[k] = u
			return w, fastOK
		case bool, int, float64, string, []any:
			return nil, fastErr
		}
	case int:
		switch a := v.(type) {
		case nil, []any:
			a0, _ := a.([]any)
			i := k
			if i < 0 {
				i += len(a0)
				if i < 0 {
					return nil, fastErr
				}
			}
			if i >= len(a0) && i >= 0x20000000 {
				return nil, fastErr
			}
			if i >= len(a0)+maxFastGrowth {
				return nil, fastBail // gojq, under --transform-timeout
			}
			var old any
			if i < len(a0) {
				old = a0[i]
			}
			u, st := setPath(old, path[1:], x)
			if st != fastOK {
				return nil, st
			}
			w := make([]any, max(len(a0), i+1))
			copy(w, a0)
			w[i] = u
			return w, fastOK
		case bool, int, float64, string, map[string]any:
			return nil, fastErr
		}
	}
	return nil, fastBail
}

// setKey is a map step .key = expr whose value is a top-level object that
// nothing else holds: setting the key in place gives what setpath's copy
// would, without the copy, when expr's output is a scalar (a container
// might hold the object itself).
type setKey struct {
	key string
	rhs fastFn
}

// compileSetKey returns q as a setKey, or nil when it is no .key = expr
// that the fast path takes.
func compileSetKey(q *gojq.Query) *setKey {
	if q == nil || q.Op != gojq.OpAssign || q.Meta != nil || len(q.Imports) > 0 || len(q.FuncDefs) > 0 {
		return nil
	}
	path, ok := constPath(q.Left)
	if !ok || len(path) != 1 {
		return nil
	}
	key, ok := path[0].(string)
	if !ok {
		return nil
	}
	rhs, ok := fastQuery(q.Right)
	if !ok {
		return nil
	}
	return &setKey{key: key, rhs: rhs}
}

// apply sets the key of m when expr gives m a scalar, and reports whether it
// did; otherwise m is unchanged and the step runs the ordinary way.
func (s *setKey) apply(m map[string]any) bool {
	x, st := s.rhs(m)
	if st != fastOK {
		return false
	}
	switch x.(type) {
	case nil, bool, int, float64, string:
		m[s.key] = x
		return true
	}
	return false
}
