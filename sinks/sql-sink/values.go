package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/buger/jsonparser"
	gojson "github.com/goccy/go-json"
)

// kind is the JSON type of a value.
type kind uint8

const (
	kNull kind = iota
	kString
	kInt // a number without fraction or exponent
	kNum // any other number
	kBool
	kObject
	kArray
)

var kindNames = [...]string{kNull: "null", kString: "string", kInt: "integer", kNum: "number", kBool: "boolean", kObject: "object", kArray: "array"}

func (k kind) String() string { return kindNames[k] }

// jval is one JSON value of a record, not decoded: raw is the text of a
// number, a boolean, an object or an array, or the contents of a string
// between its quotes, still escaped.
type jval struct {
	kind kind
	raw  []byte
}

// field is one top-level field of a record's JSON object.
type field struct {
	name string
	v    jval
}

var errNotObject = errors.New("the value is not a JSON object")

// names interns field names: records of a topic repeat the same few, so
// that a field's name costs no allocation after the first record. The
// names of the last record, by position, are tried first: records of a
// topic mostly have the same fields in the same order.
type names struct {
	m    map[string]string
	last []string
}

// maxNames bounds the names interned; beyond, names are allocated.
const maxNames = 10000

func (n *names) intern(b []byte, pos int) string {
	if pos < len(n.last) && n.last[pos] == string(b) {
		return n.last[pos]
	}
	s, ok := n.m[string(b)]
	if !ok {
		s = string(b)
		if n.m == nil {
			n.m = map[string]string{}
		}
		if len(n.m) < maxNames {
			n.m[s] = s
		}
	}
	if pos < len(n.last) {
		n.last[pos] = s
	} else if pos == len(n.last) && pos < 64 {
		n.last = append(n.last, s)
	}
	return s
}

// parseObject appends the top-level fields of the JSON object b to dst,
// in their order; the values alias b. A field given twice is kept once,
// with its last value.
func (n *names) parseObject(b []byte, dst []field) ([]field, error) {
	if !gojson.Valid(b) {
		return dst, errors.New("the value is not JSON")
	}
	start := len(dst)
	err := jsonparser.ObjectEach(b, func(key, value []byte, t jsonparser.ValueType, _ int) error {
		v := jval{raw: value}
		switch t {
		case jsonparser.String:
			v.kind = kString
		case jsonparser.Number:
			v.kind = kInt
			if bytes.ContainsAny(value, ".eE") {
				v.kind = kNum
			}
		case jsonparser.Boolean:
			v.kind = kBool
		case jsonparser.Object:
			v.kind = kObject
		case jsonparser.Array:
			v.kind = kArray
		case jsonparser.Null:
			v.kind = kNull
		default:
			return fmt.Errorf("field %q: not a JSON value", key)
		}
		for i := start; i < len(dst); i++ {
			if dst[i].name == string(key) {
				dst[i].v = v
				return nil
			}
		}
		dst = append(dst, field{name: n.intern(key, len(dst)-start), v: v})
		return nil
	})
	if err != nil {
		if errors.Is(err, jsonparser.MalformedObjectError) {
			return dst[:start], errNotObject
		}
		return dst[:start], err
	}
	return dst, nil
}

// text returns the value as text, as a database parses it: a string's
// contents unescaped, JSON text for the rest; ok is false for null.
func (v jval) text() (s string, ok bool) {
	switch v.kind {
	case kNull:
		return "", false
	case kString:
		if bytes.IndexByte(v.raw, '\\') < 0 {
			return string(v.raw), true
		}
		s, err := jsonparser.ParseString(v.raw)
		if err != nil {
			return string(v.raw), true
		}
		return s, true
	}
	return string(v.raw), true
}

// appendCopy appends v as a field of PostgreSQL's COPY text format: \N
// for null, backslash, tab, newline and carriage return escaped.
func appendCopy(b []byte, v jval) []byte {
	switch v.kind {
	case kNull:
		return append(b, `\N`...)
	case kInt, kNum, kBool:
		return append(b, v.raw...)
	case kString:
		if bytes.IndexByte(v.raw, '\\') < 0 {
			// JSON strings hold no control characters: nothing to escape.
			return append(b, v.raw...)
		}
		s, _ := v.text()
		return appendCopyEscaped(b, s)
	}
	return appendCopyEscaped(b, string(v.raw))
}

func appendCopyEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}

// pgArg is v as a query argument for PostgreSQL: text (pgx sends strings
// in the text format and the server parses them as the column's type), or
// nil for null.
func pgArg(v jval) any {
	s, ok := v.text()
	if !ok {
		return nil
	}
	return s
}

// mysqlArg is v as a query argument for MySQL and MariaDB: booleans as
// booleans (MySQL's BOOLEAN is TINYINT(1), which does not parse "true"),
// the rest as text the server converts to the column's type (as []byte
// where the text is the JSON's own, not copied). For a DATETIME or
// TIMESTAMP column, an RFC 3339 time with a zone becomes the UTC time
// without zone that MySQL parses (it refuses the zone).
func mysqlArg(v jval, c *column) any {
	switch v.kind {
	case kNull:
		return nil
	case kBool:
		return v.raw[0] == 't'
	case kString:
		if c.datetime {
			return mysqlTime(v)
		}
		if bytes.IndexByte(v.raw, '\\') >= 0 {
			s, _ := v.text()
			return s
		}
	}
	return v.raw
}

// mysqlTime is a string for a DATETIME or TIMESTAMP column: an RFC 3339
// time in UTC (2026-12-07T10:00:00.123Z) with its T and Z dropped; one
// with another zone converted to UTC; anything else as it is.
func mysqlTime(v jval) any {
	r := v.raw
	if n := len(r); n >= 20 && n <= 27 && r[10] == 'T' && r[n-1] == 'Z' && bytes.IndexByte(r, '\\') < 0 &&
		!bytes.ContainsAny(r[11:n-1], "+-Zz") {
		b := make([]byte, n-1)
		copy(b, r[:n-1])
		b[10] = ' '
		return b
	}
	s, _ := v.text()
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format("2006-01-02 15:04:05.999999")
	}
	return s
}

// sqliteArg is v as a query argument for SQLite: integers as int64 and
// other numbers as float64 (SQLite stores what it is given in a column
// without a type), booleans as 1 and 0, null as nil, the rest as text.
func sqliteArg(v jval) any {
	switch v.kind {
	case kNull:
		return nil
	case kBool:
		if v.raw[0] == 't' {
			return int64(1)
		}
		return int64(0)
	case kInt:
		if n, err := strconv.ParseInt(string(v.raw), 10, 64); err == nil {
			return n
		}
		fallthrough
	case kNum:
		if f, err := strconv.ParseFloat(string(v.raw), 64); err == nil {
			return f
		}
	}
	s, _ := v.text()
	return s
}
