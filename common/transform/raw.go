package transform

import (
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/itchyny/gojq"

	"github.com/culvert-dev/culvert/common/jsontext"
	"github.com/culvert-dev/culvert/common/record"
)

// The raw path runs a chain on a JSON object without decoding all of it,
// when every step reads the value only through constant top-level keys
// (.amount, .user.name, {id: .order_id}: never . itself, keys, length,
// .[] or a function of the whole value). Such a step sees the same thing
// in a map that holds only the keys it reads as in the whole object, so
// the raw path scans the object once, finds its members, decodes only the
// values of the keys read and evaluates the steps' fast paths on a map of
// those. A record the filters drop is never decoded further, one they keep
// goes on as it came, and a .key = expr map writes the object's members
// back in gojq's order (sorted keys) with the new value, copying the text
// of every member that gojq would print as it is written (canonical:
// strings without escapes, plain numbers such as 12 or 73.09, literals)
// and encoding the others. That is the orders pipeline: a filter on
// .amount and a map setting .priority.
//
// Which chains it takes is decided at compile time (compileRaw): any number
// of --filter steps and --map .key = expr steps reading top-level keys only,
// then at most one --map, --filter-map or --arraymap step of that kind as
// the last. At run time anything unusual (not an object, a key with an
// escape, a key twice, a long number that decode would read as a
// json.Number, a step whose fast path does not give its answer) sends the
// record down the ordinary path from the start, which gives the reference
// output or error. TestRawPath, TestFastPathChains and FuzzFastPath hold it
// to gojq.

// rawPlan is a chain the raw path runs.
type rawPlan struct {
	steps []rawStep
	keys  []string // the top-level keys the steps read
}

type rawStep struct {
	kind  Kind
	fn    fastFn // the step's fast path, or the right side of a set
	set   string // the key a --map .key = expr sets
	isSet bool
}

// compileRaw returns the raw plan of steps, or nil when the raw path does
// not take the chain.
func compileRaw(steps []step) *rawPlan {
	p := &rawPlan{}
	for i := range steps {
		s := &steps[i]
		q, err := gojq.Parse(s.Expr)
		if err != nil {
			return nil
		}
		last := i == len(steps)-1
		switch {
		case s.Kind == Filter && s.fast != nil:
			if !rootKeys(q, &p.keys) {
				return nil
			}
			p.steps = append(p.steps, rawStep{kind: Filter, fn: s.fast})
		case s.Kind == Map && s.set != nil:
			if !rootKeys(q.Right, &p.keys) {
				return nil
			}
			p.steps = append(p.steps, rawStep{kind: Map, fn: s.set.rhs, set: s.set.key, isSet: true})
		case last && s.fast != nil:
			if !rootKeys(q, &p.keys) {
				return nil
			}
			p.steps = append(p.steps, rawStep{kind: s.Kind, fn: s.fast})
		default:
			return nil
		}
	}
	slices.Sort(p.keys)
	p.keys = slices.Compact(p.keys)
	return p
}

// rootKeys reports whether q, evaluated on an object, reads it only through
// constant top-level keys, and appends those keys to keys. It knows the
// forms the fast path takes; anything else is false.
func rootKeys(q *gojq.Query, keys *[]string) bool {
	if q == nil || len(q.FuncDefs) > 0 || len(q.Patterns) > 0 || q.Meta != nil || len(q.Imports) > 0 {
		return false
	}
	if q.Term != nil {
		return termKeys(q.Term, keys)
	}
	switch q.Op {
	case gojq.OpPipe:
		// The right side reads what the left one gives, which is never the
		// object itself: the left side only reads keys of it.
		return rootKeys(q.Left, keys)
	case gojq.OpAlt, gojq.OpAnd, gojq.OpOr,
		gojq.OpEq, gojq.OpNe, gojq.OpLt, gojq.OpLe, gojq.OpGt, gojq.OpGe,
		gojq.OpAdd, gojq.OpSub, gojq.OpMul, gojq.OpDiv, gojq.OpMod:
		return rootKeys(q.Left, keys) && rootKeys(q.Right, keys)
	}
	return false // updates give the object itself; , and the rest
}

func termKeys(t *gojq.Term, keys *[]string) bool {
	suffixes := t.SuffixList
	// Suffixes read what the term gives; .[] is refused here as fastTerm
	// refuses it, so that this check does not lean on that one (bindings,
	// as $x | body, are a query's Patterns, refused by rootKeys).
	for _, s := range suffixes {
		if s.Iter {
			return false
		}
	}
	switch t.Type {
	case gojq.TermTypeIdentity:
		// . only as .["k"]: the first suffix is a constant string index.
		if len(suffixes) == 0 || suffixes[0].Index == nil {
			return false
		}
		k, ok := indexKey(suffixes[0].Index)
		if s, isString := k.(string); ok && isString {
			*keys = append(*keys, s)
			return true
		}
		return false
	case gojq.TermTypeIndex:
		k, ok := indexKey(t.Index)
		if s, isString := k.(string); ok && isString {
			*keys = append(*keys, s)
			return true
		}
		return false
	case gojq.TermTypeNull, gojq.TermTypeTrue, gojq.TermTypeFalse, gojq.TermTypeNumber:
		return true
	case gojq.TermTypeString:
		return stringKeys(t.Str, keys)
	case gojq.TermTypeQuery:
		return rootKeys(t.Query, keys)
	case gojq.TermTypeUnary:
		return termKeys(t.Unary.Term, keys)
	case gojq.TermTypeIf:
		return ifKeys(t.If, keys)
	case gojq.TermTypeTry:
		return t.Try.Catch == nil && rootKeys(t.Try.Body, keys)
	case gojq.TermTypeArray:
		return t.Array.Query == nil || rootKeys(t.Array.Query, keys)
	case gojq.TermTypeObject:
		for _, e := range t.Object.KeyVals {
			switch {
			case strings.HasPrefix(e.Key, "$"):
				return false // {$x}, {$__loc__}: variables
			case e.Key != "" && e.Val == nil:
				*keys = append(*keys, e.Key) // {a} is {a: .a}
				continue
			case e.KeyString != nil && !stringKeys(e.KeyString, keys):
				return false
			case e.KeyQuery != nil && !rootKeys(e.KeyQuery, keys):
				return false
			}
			if e.Val == nil || !rootKeys(e.Val, keys) {
				return false
			}
		}
		return true
	case gojq.TermTypeFunc:
		// Only the builtins that do not read their input.
		switch t.Func.Name {
		case "empty", "nan", "infinite":
			return len(t.Func.Args) == 0
		}
	}
	return false
}

func stringKeys(s *gojq.String, keys *[]string) bool {
	for _, q := range s.Queries {
		if !rootKeys(q, keys) {
			return false
		}
	}
	return true
}

func ifKeys(e *gojq.If, keys *[]string) bool {
	if e.Else == nil || !rootKeys(e.Cond, keys) || !rootKeys(e.Then, keys) || !rootKeys(e.Else, keys) {
		return false // if without else gives the object itself
	}
	for _, ei := range e.Elif {
		if !rootKeys(ei.Cond, keys) || !rootKeys(ei.Then, keys) {
			return false
		}
	}
	return true
}

// member is a member of the object the raw path scans.
type member struct {
	key string
	raw string // the value's text
	// v is the decoded value when decoded is true; canon says whether raw
	// is the value as gojq prints it.
	v              any
	decoded, canon bool
}

// override is a key a set step gave a value.
type override struct {
	key string
	v   any
}

// applyRaw runs the raw plan on r. It returns false when the record must go
// the ordinary way.
func (c *Chain) applyRaw(out []record.Record, r record.Record, sc *scratch) ([]record.Record, bool) {
	if hasLongNumber(r.Value) {
		return out, false
	}
	if sc.part == nil {
		sc.part = make(map[string]any, len(c.raw.keys))
	}
	out, ok := c.applyRawTo(out, r, sc)
	// Nothing of the record is kept: its strings are parts of r.Value.
	clear(sc.members)
	clear(sc.part)
	clear(sc.overs)
	sc.overs = sc.overs[:0]
	return out, ok
}

func (c *Chain) applyRawTo(out []record.Record, r record.Record, sc *scratch) ([]record.Record, bool) {
	p := c.raw
	s := unsafe.String(unsafe.SliceData(r.Value), len(r.Value))
	ms, ok := scanObject(s, sc.members[:0])
	sc.members = ms
	if !ok {
		return out, false
	}
	part := sc.part
	for _, k := range p.keys {
		i, found := slices.BinarySearchFunc(ms, k, func(m member, k string) int { return strings.Compare(m.key, k) })
		if !found {
			continue
		}
		m := &ms[i]
		if !m.decoded {
			d := fastDecoder{s: m.raw}
			if m.v, m.decoded = d.value(1); !m.decoded {
				return out, false
			}
		}
		part[k] = m.v
	}
	overs := sc.overs[:0]
	for _, st := range p.steps {
		x, status := st.fn(part)
		switch {
		case st.isSet:
			if status != fastOK {
				return out, false
			}
			part[st.set] = x
			overs = append(overs, override{st.set, x})
			sc.overs = overs
		case st.kind == Filter:
			switch {
			case status == fastOK && truthy(x):
			case status == fastOK || status == fastEmpty:
				return out, true // dropped
			default:
				return out, false
			}
		default: // the last step, a new value
			switch {
			case status == fastOK:
				o := r
				o.Value = sc.encode(x)
				return append(out, o), true
			case status == fastEmpty && st.kind != Map:
				return out, true
			}
			return out, false
		}
	}
	if len(overs) == 0 {
		return append(out, r), true // only filters: the record as it came
	}
	// Every value that goes out as it is printed must be valid as decode
	// would read it; the others are decoded to be encoded.
	for i := range ms {
		m := &ms[i]
		if !m.canon && !m.decoded {
			d := fastDecoder{s: m.raw}
			if m.v, m.decoded = d.value(1); !m.decoded {
				return out, false
			}
		}
	}
	// The last value set for a key wins; then the keys in order.
	slices.SortStableFunc(overs, func(a, b override) int { return strings.Compare(a.key, b.key) })
	b := append(sc.buf[:0], '{')
	i, j := 0, 0
	for i < len(ms) || j < len(overs) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		if j < len(overs) && (i == len(ms) || overs[j].key <= ms[i].key) {
			k := overs[j].key
			for j+1 < len(overs) && overs[j+1].key == k {
				j++
			}
			b = jsontext.AppendString(b, k)
			b = append(b, ':')
			b = appendJSON(b, overs[j].v, &sc.keys)
			if i < len(ms) && ms[i].key == k {
				i++
			}
			j++
			continue
		}
		m := &ms[i]
		b = append(b, '"')
		b = append(b, m.key...)
		b = append(b, '"', ':')
		if m.canon {
			b = append(b, m.raw...)
		} else {
			b = appendJSON(b, m.v, &sc.keys)
		}
		i++
	}
	b = append(b, '}')
	sc.buf = b
	o := r
	o.Value = sc.keep(b)
	return append(out, o), true
}

// scanObject finds the members of the JSON object s, sorted by key, in ms.
// It returns false when s is not an object that the raw path takes: a key
// with an escape or not as gojq prints it, a key twice, text after the
// object, or anything fastDecode would decline.
func scanObject(s string, ms []member) ([]member, bool) {
	d := fastDecoder{s: s}
	d.space()
	if d.i >= len(s) || s[d.i] != '{' {
		return ms, false
	}
	d.i++
	d.space()
	if d.i < len(s) && s[d.i] == '}' {
		d.i++
	} else {
		for {
			d.space()
			if d.i >= len(s) || s[d.i] != '"' {
				return ms, false
			}
			end, canon := plainString(s, d.i)
			if !canon {
				return ms, false // an escape, or a key gojq prints otherwise
			}
			k := s[d.i+1 : end-1]
			d.i = end
			d.space()
			if d.i >= len(s) || s[d.i] != ':' {
				return ms, false
			}
			d.i++
			d.space()
			m, ok := scanValue(&d)
			if !ok {
				return ms, false
			}
			m.key = k
			ms = append(ms, m)
			d.space()
			if d.i >= len(s) {
				return ms, false
			}
			if s[d.i] == '}' {
				d.i++
				break
			}
			if s[d.i] != ',' {
				return ms, false
			}
			d.i++
		}
	}
	d.space()
	if d.i != len(s) {
		return ms, false
	}
	// Insertion sort: objects have a few keys, often in order already.
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].key < ms[j-1].key; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].key == ms[i-1].key {
			return ms, false // as fastDecode: a key twice is left to the decoders
		}
	}
	return ms, true
}

// scanValue reads the value at d.i. Strings without escapes, plain
// numbers and literals are only scanned (and marked canonical when gojq
// prints them as they are written); objects, arrays and the other strings
// and numbers are decoded.
func scanValue(d *fastDecoder) (member, bool) {
	start := d.i
	if d.i >= len(d.s) {
		return member{}, false
	}
	switch c := d.s[d.i]; {
	case c == '"':
		if end, canon := plainString(d.s, start); canon {
			d.i = end
			return member{raw: d.s[start:end], canon: true}, true
		}
		v, ok := d.string()
		return member{raw: d.s[start:d.i], v: v, decoded: true}, ok
	case c == '-' || '0' <= c && c <= '9':
		if end, canon := plainNumber(d.s, start); canon {
			d.i = end
			return member{raw: d.s[start:end], canon: true}, true
		}
		v, ok := d.number()
		return member{raw: d.s[start:d.i], v: v, decoded: true}, ok
	case c == 't' || c == 'f' || c == 'n':
		v, ok := d.value(1)
		return member{raw: d.s[start:d.i], v: v, decoded: true, canon: true}, ok
	}
	v, ok := d.value(1)
	return member{raw: d.s[start:d.i], v: v, decoded: true}, ok
}

// plainString reads the string at s[i:] (a quote) when gojq prints it as
// it is written (jsontext.AppendString): valid UTF-8 with no escape and
// nothing to escape. It returns the string's end (after its closing quote)
// and true, or false for any other string.
func plainString(s string, i int) (int, bool) {
	ascii := true
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return j + 1, ascii || utf8.ValidString(s[i+1:j])
		case c < ' ' || c == '\\' || c == 0x7f:
			return 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, false
}

// plainNumber reads the number at s[i:] when it is one that gojq prints as
// it is written (jsontext.AppendFloat of its float64): no exponent, no
// trailing zero after a point, at most 15 significant digits (so that its
// shortest form is itself), and not below 1e-6. It returns the number's
// end and true, or false for any other number.
func plainNumber(s string, i int) (int, bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := 0 // significant digits
	intStart := i
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	switch n := i - intStart; {
	case n == 0:
		return 0, false
	case s[intStart] == '0' && n > 1:
		return 0, false // a leading zero: not JSON
	case s[intStart] != '0':
		digits = n
	}
	if i < len(s) && s[i] == '.' {
		i++
		fracStart := i
		zeros := 0 // leading zeros of the fraction of 0.x
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			if digits == 0 && s[i] == '0' {
				zeros++
			} else {
				digits++
			}
			i++
		}
		if i == fracStart || s[i-1] == '0' || digits == 0 || zeros > 5 {
			return 0, false // 1., 1.50, 0.0, 0.0000001
		}
	}
	if digits > 15 || i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		return 0, false
	}
	return i, true
}
