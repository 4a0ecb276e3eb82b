package transform

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"github.com/culvert-dev/culvert/common/jsontext"
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
		return jsontext.AppendFloat(b, v)
	case *big.Int:
		return v.Append(b, 10)
	case json.Number:
		return append(b, v.String()...)
	case string:
		return jsontext.AppendString(b, v)
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
			b = jsontext.AppendString(b, k)
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
