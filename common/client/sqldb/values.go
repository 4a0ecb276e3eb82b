package sqldb

// values.go turns what the database drivers return into JSON, the same
// way for every SQL connector (sql-source's rows, postgres-cdc-source's
// changes), without losing what JSON can hold.

import (
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/jsontext"
)

// The JSON-ready values JSONValue, PgValue and ColumnValue return are
// nil, bool, int64, uint64, float64, string, json.Number (a number written
// as its exact text), json.RawMessage (JSON written as it is), []any and
// map[string]any of those. encoding/json and AppendJSON write them.

// DateLayout is how a date without a time of day is written.
const DateLayout = "2006-01-02"

// TimeLayout is how a time of day without a date is written: hours,
// minutes, seconds and the fraction of a second if any.
const TimeLayout = "15:04:05.999999999"

// JSONValue converts a value as a database driver returns it into a
// JSON-ready value, without loss:
//
//   - nil (SQL NULL) is nil (JSON null); integers and floats are numbers
//     (NaN, Infinity and -Infinity, which JSON has not, are the strings
//     "NaN", "Infinity", "-Infinity"); bool is a boolean; string is a string;
//   - []byte (bytea, BLOB, BINARY) is its base64 (standard, padded) string;
//   - time.Time is RFC 3339 in UTC with every digit of the fraction it has
//     (2024-05-01T10:00:00.123456Z); use PgValue or ColumnValue to have
//     dates as 2006-01-02;
//   - pgtype.Numeric is a number written with its exact digits (never
//     through a float); NaN and infinities are strings;
//   - [16]byte and pgtype.UUID (uuid) are the canonical lower-case form;
//   - pgtype.Interval is ISO 8601 (P1Y2M3DT4H5M6.5S), pgtype.Time is
//     15:04:05.999999, pgtype.Bits is a string of 0 and 1,
//     pgtype.InfinityModifier is "infinity" or "-infinity", netip.Prefix
//     and net.HardwareAddr are their text;
//   - json.RawMessage and json.Number are kept; []any and map[string]any
//     are converted element by element; other slices of the above (pgx
//     arrays) are []any;
//   - anything else with a text form (fmt.Stringer, pgx's geometric and
//     range types through their driver.Valuer) is that text.
func JSONValue(v any) any {
	switch v := v.(type) {
	case nil, bool, int64, uint64, string, json.Number, json.RawMessage:
		return v
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint:
		return uint64(v)
	case uint8:
		return uint64(v)
	case uint16:
		return uint64(v)
	case uint32:
		return uint64(v)
	case float64:
		return floatValue(v)
	case float32:
		// The shortest text that reads back as the same float32, not the
		// float64 digits of its binary value (1.1, not 1.100000023841858).
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return floatValue(f)
		}
		return json.Number(strconv.FormatFloat(float64(v), 'g', -1, 32))
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case *big.Int:
		if v == nil {
			return nil
		}
		return json.Number(v.String())
	case pgtype.Numeric:
		return numericValue(v)
	case [16]byte:
		return uuidString(v)
	case pgtype.UUID:
		if !v.Valid {
			return nil
		}
		return uuidString(v.Bytes)
	case pgtype.Interval:
		if !v.Valid {
			return nil
		}
		return intervalISO(v)
	case pgtype.Time:
		if !v.Valid {
			return nil
		}
		return timeOfDay(v.Microseconds)
	case pgtype.Bits:
		if !v.Valid {
			return nil
		}
		return bitsString(v)
	case pgtype.InfinityModifier:
		return infinityString(v)
	case netip.Prefix:
		return v.String()
	case netip.Addr:
		return v.String()
	case net.HardwareAddr:
		return v.String()
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = JSONValue(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = JSONValue(x)
		}
		return out
	case map[string]*string: // pgtype.Hstore's shape
		out := make(map[string]any, len(v))
		for k, x := range v {
			if x == nil {
				out[k] = nil
			} else {
				out[k] = *x
			}
		}
		return out
	case pgtype.Hstore:
		return JSONValue(map[string]*string(v))
	case fmt.Stringer:
		return v.String()
	case driver.Valuer:
		// pgx's geometric, range and other types give their PostgreSQL
		// text this way.
		x, err := v.Value()
		if err != nil {
			return fmt.Sprint(v)
		}
		if _, loop := x.(driver.Valuer); loop {
			return fmt.Sprint(x)
		}
		return JSONValue(x)
	}
	return reflectValue(v)
}

// floatValue is f, or the string naming it when JSON has no number for it.
func floatValue(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

func numericValue(n pgtype.Numeric) any {
	if !n.Valid {
		return nil
	}
	b, err := n.MarshalJSON() // "NaN", "Infinity", "-Infinity" or the exact digits
	if err != nil {
		return nil
	}
	if b[0] == '"' {
		return string(b[1 : len(b)-1])
	}
	return json.Number(b)
}

func uuidString(u [16]byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return string(b[:])
}

// intervalISO writes an interval as ISO 8601, as PostgreSQL's
// IntervalStyle iso_8601 does: P1Y2M3DT4H5M6.5S, each part signed on its
// own, PT0S for zero. PostgreSQL reads it back as an interval.
func intervalISO(v pgtype.Interval) string {
	var b strings.Builder
	b.WriteByte('P')
	years, months := v.Months/12, v.Months%12
	if years != 0 {
		b.WriteString(strconv.Itoa(int(years)) + "Y")
	}
	if months != 0 {
		b.WriteString(strconv.Itoa(int(months)) + "M")
	}
	if v.Days != 0 {
		b.WriteString(strconv.Itoa(int(v.Days)) + "D")
	}
	us := v.Microseconds
	if us != 0 {
		b.WriteByte('T')
		h, m := us/3_600_000_000, us/60_000_000%60
		s, frac := us/1_000_000%60, us%1_000_000
		if h != 0 {
			b.WriteString(strconv.FormatInt(h, 10) + "H")
		}
		if m != 0 {
			b.WriteString(strconv.FormatInt(m, 10) + "M")
		}
		if s != 0 || frac != 0 {
			if s == 0 && frac < 0 {
				b.WriteByte('-')
			}
			b.WriteString(strconv.FormatInt(s, 10))
			if frac != 0 {
				f := strconv.FormatInt(abs64(frac)+1_000_000, 10)[1:]
				b.WriteString("." + strings.TrimRight(f, "0"))
			}
			b.WriteByte('S')
		}
	}
	if b.Len() == 1 {
		return "PT0S"
	}
	return b.String()
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// timeOfDay writes microseconds since midnight as 15:04:05.999999
// (24:00:00 is a valid PostgreSQL time).
func timeOfDay(us int64) string {
	h, m, s, frac := us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if frac != 0 {
		out += "." + strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	}
	return out
}

func bitsString(v pgtype.Bits) string {
	b := make([]byte, v.Len)
	for i := range b {
		if v.Bytes[i/8]&(0x80>>(i%8)) != 0 {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
	}
	return string(b)
}

func infinityString(v pgtype.InfinityModifier) any {
	switch v {
	case pgtype.Infinity:
		return "infinity"
	case pgtype.NegativeInfinity:
		return "-infinity"
	}
	return nil
}

// reflectValue converts typed slices and pointers (pgx arrays decoded into
// []int32, []string, ...; *T) element by element; the rest is its text.
func reflectValue(v any) any {
	switch v := v.(type) {
	case []int32:
		return convertSlice(v)
	case []int64:
		return convertSlice(v)
	case []string:
		return convertSlice(v)
	case []float64:
		return convertSlice(v)
	case []bool:
		return convertSlice(v)
	case [][]byte:
		return convertSlice(v)
	case []time.Time:
		return convertSlice(v)
	}
	return fmt.Sprint(v)
}

func convertSlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = JSONValue(x)
	}
	return out
}

// PgValue decodes one PostgreSQL value into a JSON-ready value, exactly:
// src is the value's bytes as the server sent them (pgx's
// Rows.RawValues(), or a column of a pgoutput tuple), in format
// (pgtype.TextFormatCode or pgtype.BinaryFormatCode), of the type oid; nil
// src is NULL. m is the connection's type map (pgx.Conn.TypeMap(), or
// pgtype.NewMap()).
//
// On top of JSONValue's rules: json and jsonb are the JSON itself
// (embedded, with its numbers' exact digits), numeric is its exact
// digits, date is 2006-01-02, timestamp (without time zone) and
// timestamptz are RFC 3339 in UTC with microseconds when there are
// some (a timestamp without time zone is taken as UTC: 2024-05-01 10:00
// is 2024-05-01T10:00:00Z), time is 15:04:05.999999, infinite dates
// and timestamps are "infinity" and "-infinity", bytea is base64, uuid
// is canonical, interval is ISO 8601, arrays are JSON arrays (of their
// elements by these rules; a multi-dimensional array is nested arrays).
// Text types, enums and every type pgx does not know (timetz, money,
// xml, user types) are the text PostgreSQL sends for them.
func PgValue(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.XMLOID, pgtype.JSONPathOID:
		if format == pgtype.TextFormatCode || oid != pgtype.JSONPathOID {
			return string(src), nil
		}
	case pgtype.JSONOID:
		return rawJSON(src)
	case pgtype.JSONBOID:
		if format == pgtype.BinaryFormatCode {
			if len(src) == 0 || src[0] != 1 {
				return nil, fmt.Errorf("jsonb: unknown binary version")
			}
			src = src[1:]
		}
		return rawJSON(src)
	case pgtype.NumericOID:
		if format == pgtype.TextFormatCode {
			s := string(src)
			if strings.ContainsAny(s, "NI") { // NaN, Infinity, -Infinity
				return s, nil
			}
			return json.Number(s), nil
		}
		// The digits PostgreSQL writes, with its scale (0.0, 1.50).
		if b, ok := appendNumeric(nil, src); ok {
			return json.Number(b), nil
		}
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		if format == pgtype.TextFormatCode {
			return json.Number(src), nil
		}
	case pgtype.BoolOID:
		if format == pgtype.TextFormatCode {
			return len(src) > 0 && src[0] == 't', nil
		}
	}
	t, ok := m.TypeForOID(oid)
	if !ok {
		if format == pgtype.TextFormatCode {
			return string(src), nil
		}
		return base64.StdEncoding.EncodeToString(src), nil
	}
	switch codec := t.Codec.(type) {
	case *pgtype.ArrayCodec:
		var a pgtype.Array[any]
		if err := m.PlanScan(oid, format, &a).Scan(src, &a); err != nil {
			return nil, fmt.Errorf("decoding a %s value: %w", t.Name, err)
		}
		elems := pgArray(codec.ElementType, a.Elements)
		return shape(elems, a.Dims), nil
	case *pgtype.RangeCodec, *pgtype.MultirangeCodec:
		if format == pgtype.TextFormatCode {
			return string(src), nil
		}
		// PostgreSQL's text for it, [1,5): decoded, then written as text.
		v, err := t.Codec.DecodeValue(m, oid, format, src)
		if err != nil {
			return nil, fmt.Errorf("decoding a %s value: %w", t.Name, err)
		}
		text, err := m.Encode(oid, pgtype.TextFormatCode, v, nil)
		if err != nil {
			return nil, fmt.Errorf("writing a %s value as text: %w", t.Name, err)
		}
		return string(text), nil
	}
	v, err := t.Codec.DecodeValue(m, oid, format, src)
	if err != nil {
		return nil, fmt.Errorf("decoding a %s value: %w", t.Name, err)
	}
	return pgConverted(oid, v), nil
}

// pgConverted is JSONValue with the rules that need the type: dates are
// dates, times of day are times of day.
func pgConverted(oid uint32, v any) any {
	switch oid {
	case pgtype.DateOID:
		if t, ok := v.(time.Time); ok {
			return t.Format(DateLayout)
		}
	case pgtype.InetOID:
		// inet shows a host address without its /32 or /128, as PostgreSQL does.
		if p, ok := v.(netip.Prefix); ok && p.Bits() == p.Addr().BitLen() {
			return p.Addr().String()
		}
	}
	return JSONValue(v)
}

// pgArray converts an array's elements with their type's rules.
func pgArray(elem *pgtype.Type, s []any) []any {
	out := make([]any, len(s))
	for i, x := range s {
		switch {
		case x == nil:
		case elem == nil:
			out[i] = JSONValue(x)
		default:
			// json[] and jsonb[] elements were decoded by encoding/json
			// into float64s: numbers beyond 2^53 lose digits there, unlike
			// in a json column.
			out[i] = pgConverted(elem.OID, x)
		}
	}
	return out
}

// shape nests a multi-dimensional array's elements, given in row-major
// order, into arrays of arrays.
func shape(elems []any, dims []pgtype.ArrayDimension) []any {
	if len(dims) <= 1 {
		return elems
	}
	n := int(dims[0].Length)
	out := make([]any, n)
	size := len(elems) / max(n, 1)
	for i := range n {
		out[i] = shape(elems[i*size:(i+1)*size], dims[1:])
	}
	return out
}

func rawJSON(src []byte) (any, error) {
	if !json.Valid(src) {
		return nil, fmt.Errorf("json value is not valid JSON")
	}
	return json.RawMessage(slices.Clone(src)), nil
}

// ColumnValue converts v, a value database/sql scanned into an any for a
// column whose ColumnType.DatabaseTypeName() is typeName, for the dialect
// d (MySQL, MariaDB, SQLite; for PostgreSQL through database/sql too),
// into a JSON-ready value:
//
//   - MySQL DECIMAL is a number with its exact digits; BIGINT UNSIGNED is a
//     number; FLOAT and DOUBLE are numbers; TINYINT(1), which is BOOLEAN in
//     MySQL, is the number 0 or 1 (the driver cannot tell it from a
//     TINYINT); YEAR is a number;
//   - CHAR, VARCHAR, TEXT, ENUM, SET and TIME (838:59:59 is a valid one)
//     are strings; BINARY, VARBINARY, BLOB, BIT and GEOMETRY are base64;
//   - JSON (MySQL) is the JSON itself, embedded; MariaDB's JSON is a
//     LONGTEXT to its clients, so it is a string;
//   - DATE is 2006-01-02; DATETIME and TIMESTAMP are RFC 3339 in UTC
//     (the driver's loc, UTC by default, is taken for a DATETIME);
//     the zero date 0000-00-00 is null;
//   - SQLite: INTEGER, REAL, TEXT and BLOB storage are numbers, strings
//     and base64; a column declared DATETIME or TIMESTAMP whose text the
//     driver read as a time is RFC 3339, one declared DATE 2006-01-02.
//
// Everything else is JSONValue(v).
func ColumnValue(d Dialect, typeName string, v any) any {
	if v == nil {
		return nil
	}
	typeName = strings.ToUpper(typeName)
	if b, ok := v.([]byte); ok {
		switch typeName {
		case "DECIMAL", "NUMERIC":
			if s := string(b); isJSONNumber(s) {
				return json.Number(s)
			} else {
				return s
			}
		case "JSON":
			if json.Valid(b) {
				return json.RawMessage(slices.Clone(b))
			}
			return string(b)
		case "BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BIT", "GEOMETRY", "VECTOR", "":
			return base64.StdEncoding.EncodeToString(b)
		case "INT", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "YEAR",
			"UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED SMALLINT", "UNSIGNED TINYINT", "UNSIGNED MEDIUMINT",
			"FLOAT", "DOUBLE":
			if s := string(b); isJSONNumber(s) {
				return json.Number(s)
			}
		}
		if d == SQLite {
			// modernc returns TEXT storage as a string: bytes are a BLOB.
			return base64.StdEncoding.EncodeToString(b)
		}
		if utf8.Valid(b) {
			return string(b)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	if t, ok := v.(time.Time); ok {
		switch {
		case typeName == "DATE":
			if t.IsZero() {
				return nil
			}
			return t.Format(DateLayout)
		case d == MySQL && t.IsZero():
			return nil // 0000-00-00 00:00:00
		}
		return JSONValue(t)
	}
	return JSONValue(v)
}

// isJSONNumber reports whether s is a number as JSON writes one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// AppendJSON appends the JSON text of v, converted by JSONValue if it is
// not JSON-ready already, to dst. Object keys are sorted; strings are
// escaped as encoding/json does, without HTML escaping (invalid UTF-8 is
// U+FFFD).
func AppendJSON(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10)
	case int16:
		return strconv.AppendInt(dst, int64(v), 10)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return AppendJSON(dst, floatValue(v))
		}
		return jsontext.AppendFloat(dst, v)
	case string:
		return jsontext.AppendString(dst, v)
	case json.Number:
		return append(dst, v...)
	case json.RawMessage:
		return append(dst, v...)
	case []any:
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, x)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsontext.AppendString(dst, k)
			dst = append(dst, ':')
			dst = AppendJSON(dst, v[k])
		}
		return append(dst, '}')
	}
	return AppendJSON(dst, JSONValue(v))
}

// pgEpoch is PostgreSQL's epoch for dates and timestamps, 2000-01-01 UTC,
// in Unix microseconds and days.
const (
	pgEpochMicros = 946684800 * 1_000_000
	pgEpochDays   = 10957
)

// AppendPg appends the JSON of one PostgreSQL value, exactly as
// AppendJSON(dst, PgValue(m, oid, format, src)) does, faster: the common
// types in binary format (integers, floats, bool, text, numeric,
// timestamps, dates, uuid, bytea, json, jsonb) are written straight from
// their bytes, without allocating.
func AppendPg(dst []byte, m *pgtype.Map, oid uint32, format int16, src []byte) ([]byte, error) {
	if src == nil {
		return append(dst, "null"...), nil
	}
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		// The same bytes in text and binary format (pgx asks for text).
		return jsontext.AppendString(dst, unsafe.String(unsafe.SliceData(src), len(src))), nil
	case pgtype.JSONOID:
		return append(dst, src...), nil
	}
	if format == pgtype.BinaryFormatCode {
		switch oid {
		case pgtype.BoolOID:
			if len(src) == 1 {
				return strconv.AppendBool(dst, src[0] != 0), nil
			}
		case pgtype.Int2OID:
			if len(src) == 2 {
				return strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(src))), 10), nil
			}
		case pgtype.Int4OID:
			if len(src) == 4 {
				return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(src))), 10), nil
			}
		case pgtype.Int8OID:
			if len(src) == 8 {
				return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(src)), 10), nil
			}
		case pgtype.Float8OID:
			if len(src) == 8 {
				return AppendJSON(dst, math.Float64frombits(binary.BigEndian.Uint64(src))), nil
			}
		case pgtype.ByteaOID:
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, src)
			return append(dst, '"'), nil
		case pgtype.UUIDOID:
			if len(src) == 16 {
				return jsontext.AppendString(dst, uuidString([16]byte(src))), nil
			}
		case pgtype.NumericOID:
			if b, ok := appendNumeric(dst, src); ok {
				return b, nil
			}
		case pgtype.TimestamptzOID, pgtype.TimestampOID:
			if len(src) == 8 {
				us := int64(binary.BigEndian.Uint64(src))
				switch us {
				case math.MaxInt64:
					return append(dst, `"infinity"`...), nil
				case math.MinInt64:
					return append(dst, `"-infinity"`...), nil
				}
				return appendMicros(dst, us+pgEpochMicros), nil
			}
		case pgtype.DateOID:
			if len(src) == 4 {
				days := int32(binary.BigEndian.Uint32(src))
				switch days {
				case math.MaxInt32:
					return append(dst, `"infinity"`...), nil
				case math.MinInt32:
					return append(dst, `"-infinity"`...), nil
				}
				dst = append(dst, '"')
				dst = time.Unix((int64(days)+pgEpochDays)*86400, 0).UTC().AppendFormat(dst, DateLayout)
				return append(dst, '"'), nil
			}
		case pgtype.JSONBOID:
			if len(src) > 0 && src[0] == 1 {
				return append(dst, src[1:]...), nil
			}
		}
	}
	v, err := PgValue(m, oid, format, src)
	if err != nil {
		return dst, err
	}
	return AppendJSON(dst, v), nil
}

// appendNumeric writes a numeric in PostgreSQL's binary form as its
// digits, as PostgreSQL's numeric_out does (with dscale digits after the
// point); ok is false for NaN, infinities and what is not a numeric.
func appendNumeric(dst []byte, src []byte) (_ []byte, ok bool) {
	if len(src) < 8 {
		return dst, false
	}
	ndigits := int(binary.BigEndian.Uint16(src))
	weight := int(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := int(int16(binary.BigEndian.Uint16(src[6:])))
	if len(src) != 8+2*ndigits || dscale < 0 || (sign != 0 && sign != 0x4000) {
		return dst, false
	}
	digit := func(k int) int {
		if k < 0 || k >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(src[8+2*k:]))
	}
	if sign == 0x4000 {
		dst = append(dst, '-')
	}
	if weight < 0 {
		dst = append(dst, '0')
	} else {
		for p := weight; p >= 0; p-- {
			d := digit(weight - p)
			if p == weight {
				dst = strconv.AppendInt(dst, int64(d), 10)
			} else {
				dst = append(dst, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
			}
		}
	}
	if dscale > 0 {
		dst = append(dst, '.')
		for written, p := 0, -1; written < dscale; p-- {
			d := digit(weight - p)
			for _, c := range [4]byte{byte('0' + d/1000), byte('0' + d/100%10), byte('0' + d/10%10), byte('0' + d%10)} {
				if written < dscale {
					dst = append(dst, c)
					written++
				}
			}
		}
	}
	return dst, true
}

// appendMicros writes Unix microseconds as a quoted RFC 3339 time in UTC,
// as time.Time's RFC3339Nano layout does (the fraction without its
// trailing zeros), without time's general formatting.
func appendMicros(dst []byte, us int64) []byte {
	secs, frac := us/1_000_000, us%1_000_000
	if frac < 0 {
		secs, frac = secs-1, frac+1_000_000
	}
	days, sod := secs/86400, secs%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	y, m, d := civil(days)
	if y < 0 || y > 9999 {
		dst = append(dst, '"')
		dst = time.UnixMicro(us).UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	two := func(b []byte, v int64) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	dst = append(dst, '"', byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	dst = two(dst, m)
	dst = append(dst, '-')
	dst = two(dst, d)
	dst = append(dst, 'T')
	dst = two(dst, sod/3600)
	dst = append(dst, ':')
	dst = two(dst, sod/60%60)
	dst = append(dst, ':')
	dst = two(dst, sod%60)
	if frac != 0 {
		var f [7]byte
		f[0] = '.'
		for i := 6; i >= 1; i-- {
			f[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := 7
		for f[n-1] == '0' {
			n--
		}
		dst = append(dst, f[:n]...)
	}
	return append(dst, 'Z', '"')
}

// civil is the proleptic Gregorian date of days since 1970-01-01
// (Howard Hinnant's days_from_civil, inverted).
func civil(days int64) (y, m, d int64) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}
