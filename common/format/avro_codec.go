package format

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/hamba/avro/v2"

	"github.com/culvert-dev/culvert/common/jsontext"
)

// The JSON forms of Avro values (the README's Formats section and the
// package doc say the same):
//
//	null, boolean, int, long, float, double  JSON null, true/false, numbers (NaN and ±Inf do not decode)
//	string, enum                             JSON strings
//	bytes, fixed                             base64 strings (standard alphabet, padded)
//	array, map, record                       JSON arrays and objects (a record's fields in schema order)
//	union                                    null for its null branch; the value itself for a union of
//	                                         null and one other type; else {"<type name>": value}, as
//	                                         Avro's JSON encoding (a named type by its full name)
//	timestamp-millis                         "2024-05-01T12:30:00.123Z" (RFC 3339, UTC, 3 decimals)
//	timestamp-micros                         "2024-05-01T12:30:00.123456Z" (6 decimals)
//	date                                     "2024-05-01"
//	decimal (bytes or fixed)                 "12.50": a string with exactly the scale's decimals
//	uuid                                     "5f0c6ab1-...": the string as it is
//	time-millis, time-micros, local-timestamp-*, duration: as their underlying type
//
// Encoding takes these forms back, exactly: a timestamp in any RFC 3339
// offset, or as a number of milliseconds (microseconds) since the epoch;
// a decimal as a string or a JSON number, refused when it has more
// decimals than the scale (nothing is rounded); a date as "YYYY-MM-DD".
// A record field missing from the object takes its default (a nullable
// field without one, null); a key the record does not have is an error.

// appendAvroJSON reads one datum of schema s and appends its JSON form.
// A problem is reported in r.Error.
func appendAvroJSON(b []byte, r *avroIn, s avro.Schema) []byte {
	return appendAvroValue(b, r, s, 0)
}

// appendAvroValue appends the JSON of a value depth values deep.
func appendAvroValue(b []byte, r *avroIn, s avro.Schema, depth int) []byte {
	if r.Error != nil {
		return b
	}
	var lt avro.LogicalType
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		lt = ls.Logical().Type()
	}
	switch s.Type() {
	case avro.Array, avro.Map, avro.Record, avro.Union:
		if depth >= avroMaxDepth {
			r.fail(string(s.Type()), "values nested deeper than %d", avroMaxDepth)
			return b
		}
		if len(b) > r.limit {
			r.fail(string(s.Type()), "its JSON form is larger than %d MiB", avroMaxJSON>>20)
			return b
		}
	}
	switch s.Type() {
	case avro.Null:
		return append(b, "null"...)
	case avro.Boolean:
		return strconv.AppendBool(b, r.readBool())
	case avro.Int:
		i := r.readInt()
		if lt == avro.Date {
			return time.Unix(int64(i)*86400, 0).UTC().AppendFormat(append(b, '"'), "2006-01-02\"")
		}
		return strconv.AppendInt(b, int64(i), 10)
	case avro.Long:
		i := r.readLong()
		switch lt {
		case avro.TimestampMillis:
			t := time.UnixMilli(i).UTC()
			return t.AppendFormat(append(b, '"'), "2006-01-02T15:04:05.000Z07:00\"")
		case avro.TimestampMicros:
			t := time.UnixMicro(i).UTC()
			return t.AppendFormat(append(b, '"'), "2006-01-02T15:04:05.000000Z07:00\"")
		}
		return strconv.AppendInt(b, i, 10)
	case avro.Float:
		return appendFloat(b, r, float64(r.readFloat()), 32)
	case avro.Double:
		return appendFloat(b, r, r.readDouble(), 64)
	case avro.String:
		v := r.readBytes("string")
		if r.Error != nil {
			return b
		}
		if !isUTF8(v) {
			r.fail("string", "not UTF-8 text")
			return b
		}
		return jsontext.AppendString(b, string(v))
	case avro.Bytes:
		v := r.readBytes("bytes")
		if r.Error != nil {
			return b
		}
		if lt == avro.Decimal {
			return appendDecimal(b, r, v, s.(avro.LogicalTypeSchema).Logical().(*avro.DecimalLogicalSchema))
		}
		return appendBase64(b, v)
	case avro.Fixed:
		v := r.fixed(s.(*avro.FixedSchema).Size())
		if r.Error != nil {
			return b
		}
		if lt == avro.Decimal {
			return appendDecimal(b, r, v, s.(avro.LogicalTypeSchema).Logical().(*avro.DecimalLogicalSchema))
		}
		return appendBase64(b, v)
	case avro.Enum:
		symbols := s.(*avro.EnumSchema).Symbols()
		i := int(r.readInt())
		if r.Error != nil {
			return b
		}
		if i < 0 || i >= len(symbols) {
			r.fail("enum", "symbol index %d out of range (%d symbols)", i, len(symbols))
			return b
		}
		return jsontext.AppendString(b, symbols[i])
	case avro.Array:
		items := s.(*avro.ArraySchema).Items()
		minItem := 0
		if avroTakesBytes(items) {
			minItem = 1
		}
		b = append(b, '[')
		n := 0
		for r.Error == nil {
			count := r.blockCount("array", minItem)
			if count == 0 || r.Error != nil {
				break
			}
			for ; count > 0 && r.Error == nil; count-- {
				if n > 0 {
					b = append(b, ',')
				}
				if len(b) > r.limit {
					r.fail("array", "its JSON form is larger than %d MiB", avroMaxJSON>>20)
					return b
				}
				b = appendAvroValue(b, r, items, depth+1)
				n++
			}
		}
		return append(b, ']')
	case avro.Map:
		values := s.(*avro.MapSchema).Values()
		b = append(b, '{')
		n := 0
		for r.Error == nil {
			// A key takes at least its length's byte.
			count := r.blockCount("map", 1)
			if count == 0 || r.Error != nil {
				break
			}
			for ; count > 0 && r.Error == nil; count-- {
				if n > 0 {
					b = append(b, ',')
				}
				if len(b) > r.limit {
					r.fail("map", "its JSON form is larger than %d MiB", avroMaxJSON>>20)
					return b
				}
				k := r.readBytes("map key")
				if r.Error != nil {
					return b
				}
				if !isUTF8(k) {
					r.fail("map", "a key is not UTF-8 text")
					return b
				}
				b = append(jsontext.AppendString(b, string(k)), ':')
				b = appendAvroValue(b, r, values, depth+1)
				n++
			}
		}
		return append(b, '}')
	case avro.Record:
		b = append(b, '{')
		for i, f := range s.(*avro.RecordSchema).Fields() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(jsontext.AppendString(b, f.Name()), ':')
			b = appendAvroValue(b, r, f.Type(), depth+1)
		}
		return append(b, '}')
	case avro.Ref:
		// A ref is a record, which counts the depth.
		return appendAvroValue(b, r, s.(*avro.RefSchema).Schema(), depth)
	case avro.Union:
		u := s.(*avro.UnionSchema)
		types := u.Types()
		i := r.readLong()
		if r.Error != nil {
			return b
		}
		if i < 0 || i >= int64(len(types)) {
			r.fail("union", "branch %d out of range (%d branches)", i, len(types))
			return b
		}
		t := types[i]
		if t.Type() == avro.Null {
			return append(b, "null"...)
		}
		if u.Nullable() {
			// No nesting in JSON; a record in it counts.
			return appendAvroValue(b, r, t, depth)
		}
		b = append(jsontext.AppendString(append(b, '{'), unionName(t)), ':')
		return append(appendAvroValue(b, r, t, depth+1), '}')
	}
	r.fail("read", "unexpected schema type %s", s.Type())
	return b
}

func isUTF8(b []byte) bool { return utf8.Valid(b) }

func appendFloat(b []byte, r *avroIn, f float64, bits int) []byte {
	if r.Error != nil {
		return b
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		r.fail("float", "%v has no JSON form", f)
		return b
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

func appendBase64(b []byte, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendDecimal appends the two's-complement big-endian unscaled value v
// with d's scale decimals, as a JSON string. A precision or scale beyond
// avroMaxDecimalDigits, or a value of more than avroMaxDecimalBytes, is
// refused.
func appendDecimal(b []byte, r *avroIn, v []byte, d *avro.DecimalLogicalSchema) []byte {
	if err := checkDecimal(d.Precision(), d.Scale()); err != nil {
		r.fail("decimal", "%v", err)
		return b
	}
	if len(v) > avroMaxDecimalBytes {
		r.fail("decimal", "a value of %d bytes (more than %d digits)", len(v), avroMaxDecimalDigits)
		return b
	}
	scale := d.Scale()
	n := new(big.Int).SetBytes(v)
	if len(v) > 0 && v[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(v))*8))
	}
	digits := n.Text(10)
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	b = append(b, '"')
	if neg {
		b = append(b, '-')
	}
	b = append(b, digits...)
	return append(b, '"')
}

// checkDecimal refuses a decimal's precision or scale beyond
// avroMaxDecimalDigits.
func checkDecimal(precision, scale int) error {
	if precision > avroMaxDecimalDigits || scale > avroMaxDecimalDigits || scale < 0 {
		return fmt.Errorf("a decimal of precision %d and scale %d: more than %d digits are not read or written", precision, scale, avroMaxDecimalDigits)
	}
	return nil
}

// unionName is a union branch's name in the JSON form of a union.
func unionName(s avro.Schema) string {
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema().FullName()
	}
	return string(s.Type())
}

// parseJSONValue reads a value as JSON, numbers kept exact (goccy/go-json,
// as package transform, with json.Number).
func parseJSONValue(v []byte) (any, error) {
	d := gojson.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return nil, fmt.Errorf("the value is not JSON: %v", err)
	}
	if len(bytes.TrimLeft(v[d.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("the value is not one JSON value")
	}
	return x, nil
}

// pathError is an encoding error at a path of the value ($.items[2].price).
func pathError(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// writeAvro writes v, a JSON value as parseJSONValue returns it, as a
// datum of schema s.
func writeAvro(w *avro.Writer, s avro.Schema, v any, path string) error {
	return writeAvroValue(w, s, v, path, 0)
}

// writeAvroValue writes v, depth values deep (refused beyond avroMaxDepth).
func writeAvroValue(w *avro.Writer, s avro.Schema, v any, path string, depth int) error {
	if depth >= avroMaxDepth {
		return pathError(path, "values nested deeper than %d", avroMaxDepth)
	}
	var lt avro.LogicalType
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		lt = ls.Logical().Type()
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			return pathError(path, "expected null, got %s", jsonKind(v))
		}
		return nil
	case avro.Boolean:
		x, ok := v.(bool)
		if !ok {
			return pathError(path, "expected a boolean, got %s", jsonKind(v))
		}
		w.WriteBool(x)
		return nil
	case avro.Int:
		if lt == avro.Date {
			str, ok := v.(string)
			if !ok {
				return pathError(path, "expected a date \"YYYY-MM-DD\", got %s", jsonKind(v))
			}
			t, err := time.Parse("2006-01-02", str)
			if err != nil {
				return pathError(path, "not a date \"YYYY-MM-DD\": %q", str)
			}
			days := t.Unix() / 86400
			if days < math.MinInt32 || days > math.MaxInt32 {
				return pathError(path, "date %q out of range", str)
			}
			w.WriteInt(int32(days))
			return nil
		}
		i, err := jsonInt(v, 32, path)
		if err != nil {
			return err
		}
		w.WriteInt(int32(i))
		return nil
	case avro.Long:
		if str, ok := v.(string); ok && (lt == avro.TimestampMillis || lt == avro.TimestampMicros) {
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return pathError(path, "not an RFC 3339 timestamp: %q", str)
			}
			unit := time.Millisecond
			if lt == avro.TimestampMicros {
				unit = time.Microsecond
			}
			if t.Nanosecond()%int(unit) != 0 {
				return pathError(path, "%q is more precise than %s", str, lt)
			}
			if lt == avro.TimestampMicros {
				w.WriteLong(t.UnixMicro())
			} else {
				w.WriteLong(t.UnixMilli())
			}
			return nil
		}
		i, err := jsonInt(v, 64, path)
		if err != nil {
			return err
		}
		w.WriteLong(i)
		return nil
	case avro.Float, avro.Double:
		n, ok := v.(json.Number)
		if !ok {
			return pathError(path, "expected a number, got %s", jsonKind(v))
		}
		bits := 64
		if s.Type() == avro.Float {
			bits = 32
		}
		f, err := strconv.ParseFloat(string(n), bits)
		if err != nil {
			return pathError(path, "%s out of range of %s", n, s.Type())
		}
		if bits == 32 {
			w.WriteFloat(float32(f))
		} else {
			w.WriteDouble(f)
		}
		return nil
	case avro.String:
		str, ok := v.(string)
		if !ok {
			return pathError(path, "expected a string, got %s", jsonKind(v))
		}
		if lt == avro.UUID && !uuidRE.MatchString(str) {
			return pathError(path, "not a UUID: %q", str)
		}
		w.WriteString(str)
		return nil
	case avro.Bytes, avro.Fixed:
		size := -1
		if f, ok := s.(*avro.FixedSchema); ok {
			size = f.Size()
		}
		var raw []byte
		if lt == avro.Decimal {
			d := s.(avro.LogicalTypeSchema).Logical().(*avro.DecimalLogicalSchema)
			var err error
			if raw, err = decimalBytes(v, d.Precision(), d.Scale(), size, path); err != nil {
				return err
			}
		} else {
			str, ok := v.(string)
			if !ok {
				return pathError(path, "expected a base64 string, got %s", jsonKind(v))
			}
			var err error
			if raw, err = base64.StdEncoding.DecodeString(str); err != nil {
				return pathError(path, "not base64: %v", err)
			}
			if size >= 0 && len(raw) != size {
				return pathError(path, "expected %d bytes for fixed %s, got %d", size, s.(*avro.FixedSchema).FullName(), len(raw))
			}
		}
		if size >= 0 {
			w.Write(raw)
		} else {
			w.WriteBytes(raw)
		}
		return nil
	case avro.Enum:
		str, ok := v.(string)
		if !ok {
			return pathError(path, "expected a symbol string, got %s", jsonKind(v))
		}
		for i, sym := range s.(*avro.EnumSchema).Symbols() {
			if sym == str {
				w.WriteInt(int32(i))
				return nil
			}
		}
		return pathError(path, "%q is not a symbol of enum %s (%s)", str, s.(*avro.EnumSchema).FullName(), strings.Join(s.(*avro.EnumSchema).Symbols(), ", "))
	case avro.Array:
		arr, ok := v.([]any)
		if !ok {
			return pathError(path, "expected an array, got %s", jsonKind(v))
		}
		if len(arr) > 0 {
			w.WriteLong(int64(len(arr)))
			items := s.(*avro.ArraySchema).Items()
			for i, x := range arr {
				if err := writeAvroValue(w, items, x, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
					return err
				}
			}
		}
		w.WriteLong(0)
		return nil
	case avro.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return pathError(path, "expected an object, got %s", jsonKind(v))
		}
		if len(obj) > 0 {
			w.WriteLong(int64(len(obj)))
			values := s.(*avro.MapSchema).Values()
			for k, x := range obj {
				w.WriteString(k)
				if err := writeAvroValue(w, values, x, keyPath(path, k), depth+1); err != nil {
					return err
				}
			}
		}
		w.WriteLong(0)
		return nil
	case avro.Record:
		obj, ok := v.(map[string]any)
		if !ok {
			return pathError(path, "expected an object (record %s), got %s", s.(*avro.RecordSchema).FullName(), jsonKind(v))
		}
		fields := s.(*avro.RecordSchema).Fields()
		present := 0
		for _, f := range fields {
			x, ok := obj[f.Name()]
			if ok {
				present++
			} else {
				switch {
				case f.HasDefault():
					w.WriteVal(f.Type(), f.Default())
					if w.Error != nil {
						return pathError(keyPath(path, f.Name()), "writing the default: %v", w.Error)
					}
					continue
				case f.Type().Type() == avro.Union && f.Type().(*avro.UnionSchema).Nullable():
					// null, below
				default:
					return pathError(keyPath(path, f.Name()), "missing (the field has no default)")
				}
			}
			if err := writeAvroValue(w, f.Type(), x, keyPath(path, f.Name()), depth+1); err != nil {
				return err
			}
		}
		if present != len(obj) {
			for k := range obj {
				if !hasField(fields, k) {
					return pathError(keyPath(path, k), "not a field of record %s", s.(*avro.RecordSchema).FullName())
				}
			}
		}
		return nil
	case avro.Ref:
		return writeAvroValue(w, s.(*avro.RefSchema).Schema(), v, path, depth)
	case avro.Union:
		u := s.(*avro.UnionSchema)
		types := u.Types()
		if v == nil {
			for i, t := range types {
				if t.Type() == avro.Null {
					w.WriteLong(int64(i))
					return nil
				}
			}
			return pathError(path, "null is not a branch of the union")
		}
		if u.Nullable() {
			_, typ := u.Indices()
			w.WriteLong(int64(typ))
			return writeAvroValue(w, types[typ], v, path, depth)
		}
		obj, ok := v.(map[string]any)
		if ok && len(obj) == 1 {
			for k, x := range obj {
				for i, t := range types {
					if unionName(t) == k {
						w.WriteLong(int64(i))
						return writeAvroValue(w, t, x, keyPath(path, k), depth+1)
					}
				}
			}
		}
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = unionName(t)
		}
		return pathError(path, "expected {\"<branch>\": value} for the union of %s", strings.Join(names, ", "))
	}
	return pathError(path, "unexpected schema type %s", s.Type())
}

func hasField(fields []*avro.Field, name string) bool {
	for _, f := range fields {
		if f.Name() == name {
			return true
		}
	}
	return false
}

func keyPath(path, k string) string {
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return path + "[" + strconv.Quote(k) + "]"
		}
	}
	return path + "." + k
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + string(x)
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func jsonInt(v any, bits int, path string) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, pathError(path, "expected an integer, got %s", jsonKind(v))
	}
	i, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		return 0, pathError(path, "%s is not an integer within %d bits", n, bits)
	}
	return i, nil
}

// decimalBytes turns a decimal string or JSON number into the two's
// complement big-endian unscaled value of scale, refusing one that needs
// rounding or more digits than precision.
func decimalBytes(v any, precision, scale, size int, path string) ([]byte, error) {
	var text string
	switch x := v.(type) {
	case string:
		text = x
	case json.Number:
		text = string(x)
	default:
		return nil, pathError(path, "expected a decimal string, got %s", jsonKind(v))
	}
	if err := checkDecimal(precision, scale); err != nil {
		return nil, pathError(path, "%v", err)
	}
	if len(text) > 2*avroMaxDecimalDigits+8 {
		return nil, pathError(path, "a decimal of %d characters (more than %d digits)", len(text), avroMaxDecimalDigits)
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok || strings.ContainsAny(text, "/") {
		return nil, pathError(path, "not a decimal number: %q", text)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !r.IsInt() {
		return nil, pathError(path, "%s has more than %d decimals (the scale); it is not rounded", text, scale)
	}
	n := r.Num()
	if precision > 0 && len(new(big.Int).Abs(n).Text(10)) > precision {
		return nil, pathError(path, "%s has more than %d digits (the precision)", text, precision)
	}
	// Two's complement, big-endian, minimal length (or size for fixed).
	length := (n.BitLen() + 8) / 8
	if size >= 0 {
		if length > size {
			return nil, pathError(path, "%s does not fit in %d bytes", text, size)
		}
		length = size
	}
	out := make([]byte, length)
	if n.Sign() >= 0 {
		n.FillBytes(out)
	} else {
		m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(length)*8), n)
		m.FillBytes(out)
	}
	return out, nil
}
