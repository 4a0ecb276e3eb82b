package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendJSON appends the JSON of v to b exactly as gojq.Marshal writes it
// (keys sorted, NaN as null, infinities as ±math.MaxFloat64, \b and \f,
// '<', '>', '&', U+2028 and U+2029 unescaped, bad UTF-8 as \ufffd), without
// its allocations: keys is scratch space for sorting object keys.
// TestAppendJSON and FuzzFastPath hold it to gojq.Marshal.
func appendJSON(b []byte, v any, keys *[]string) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		if v {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case float64:
		return appendFloat(b, v)
	case *big.Int:
		return v.Append(b, 10)
	case json.Number:
		return append(b, v.String()...)
	case string:
		return appendString(b, v)
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, x, keys)
		}
		return append(b, ']')
	case map[string]any:
		// The keys of this object are sorted at the end of keys, which the
		// objects inside it use beyond them.
		base := len(*keys)
		for k := range v {
			*keys = append(*keys, k)
		}
		slices.Sort((*keys)[base:])
		b = append(b, '{')
		for i := base; i < len(*keys); i++ {
			if i > base {
				b = append(b, ',')
			}
			k := (*keys)[i]
			b = appendString(b, k)
			b = append(b, ':')
			b = appendJSON(b, v[k], keys)
		}
		clear((*keys)[base:])
		*keys = (*keys)[:base]
		return append(b, '}')
	default:
		panic(fmt.Sprintf("invalid type: %[1]T (%[1]v)", v))
	}
}

// appendFloat is gojq's encoding of a float64.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) {
		return append(b, "null"...)
	}
	f = min(max(f, -math.MaxFloat64), math.MaxFloat64)
	format := byte('f')
	if x := math.Abs(f); x != 0 && x < 1e-6 || x >= 1e21 {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b) - start; n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

// appendString is gojq's encoding of a string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if ' ' <= c && c <= '~' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, `\"`...)
			case '\\':
				b = append(b, `\\`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
