package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The binary format of PostgreSQL's COPY, for the streamed COPY of
// pipelined writes when every column is of a type below. The server then
// parses no text: on the orders of bench sql-sink (bigint, text,
// numeric, timestamptz) a COPY in the binary format takes about 0.7 of
// the time of the same rows in the text format, most of it the parsing
// of timestamps. Each value is encoded from its JSON as PostgreSQL's
// *_send functions lay it out (the layout pgx's codecs write): pgx's
// codecs would need a Go value for each (a big.Int for a numeric), which
// costs as much on this side as the server saves.
//
// Only a value plainly of its column's type is encoded: a JSON integer
// for an integer column, an RFC 3339 time with at most microseconds for
// a timestamptz. Any other (a string for a number, a time written
// another way, NaN) is errNotPlain: the batch is then written in the
// text format, where the server decides and says why it refuses a value,
// and so is every later batch of the table (table.textOnly).

// PostgreSQL type OIDs.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// binaryColumns reports whether every column of cols has a type that
// appendBinary encodes.
func binaryColumns(cols []*column) bool {
	for _, c := range cols {
		switch c.oid {
		case oidBool, oidInt2, oidInt4, oidInt8, oidFloat4, oidFloat8, oidNumeric,
			oidText, oidVarchar, oidBPChar, oidJSON, oidJSONB, oidTimestamptz:
		default:
			return false
		}
	}
	return true
}

// copyHeader begins a COPY in the binary format: the signature, no flags,
// no header extension.
var copyHeader = []byte("PGCOPY\n\377\r\n\000\000\000\000\000\000\000\000\000")

// copyTrailer ends it.
var copyTrailer = []byte{0xff, 0xff}

// errNotPlain says a value is not plainly of its column's type.
var errNotPlain = errors.New("a value not plainly of the column's type, for the text format")

// appendBinaryRow appends the row of o: the number of fields, then each
// field's length (-1 for NULL) and bytes.
func appendBinaryRow(b []byte, o *op) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.vals)))
	for i, v := range o.vals {
		if v.kind == kNull {
			b = binary.BigEndian.AppendUint32(b, math.MaxUint32)
			continue
		}
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		var ok bool
		if b, ok = appendBinary(b, v, o.cols[i].oid); !ok {
			return b[:at], fmt.Errorf("column %s: %w", o.cols[i].name, errNotPlain)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	return b, nil
}

// appendBinary appends v in the binary format of type oid; ok is false
// when v is not plainly of that type.
func appendBinary(b []byte, v jval, oid uint32) (_ []byte, ok bool) {
	switch oid {
	case oidBool:
		if v.kind != kBool {
			return b, false
		}
		if v.raw[0] == 't' {
			return append(b, 1), true
		}
		return append(b, 0), true
	case oidInt2, oidInt4, oidInt8:
		if v.kind != kInt {
			return b, false
		}
		bits := 64
		switch oid {
		case oidInt2:
			bits = 16
		case oidInt4:
			bits = 32
		}
		n, err := strconv.ParseInt(string(v.raw), 10, bits)
		if err != nil {
			return b, false
		}
		switch bits {
		case 16:
			return binary.BigEndian.AppendUint16(b, uint16(n)), true
		case 32:
			return binary.BigEndian.AppendUint32(b, uint32(n)), true
		}
		return binary.BigEndian.AppendUint64(b, uint64(n)), true
	case oidFloat4, oidFloat8:
		if v.kind != kInt && v.kind != kNum {
			return b, false
		}
		if oid == oidFloat4 {
			f, err := strconv.ParseFloat(string(v.raw), 32)
			if err != nil {
				return b, false
			}
			return binary.BigEndian.AppendUint32(b, math.Float32bits(float32(f))), true
		}
		f, err := strconv.ParseFloat(string(v.raw), 64)
		if err != nil {
			return b, false
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(f)), true
	case oidNumeric:
		if v.kind != kInt && v.kind != kNum {
			return b, false
		}
		return appendNumeric(b, v.raw)
	case oidTimestamptz:
		// At most microseconds, as PostgreSQL keeps them: more would be
		// rounded by its parser, which the text format leaves to it.
		if v.kind != kString || len(v.raw) < 20 || len(v.raw) > 32 || v.raw[10] != 'T' {
			return b, false
		}
		t, err := time.Parse(time.RFC3339Nano, string(v.raw))
		if err != nil || t.Nanosecond()%1000 != 0 || t.Year() < 1 || t.Year() > 9999 {
			return b, false
		}
		// Microseconds since 2000-01-01 00:00:00 UTC.
		return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()-946684800000000)), true
	case oidJSONB:
		b = append(b, 1) // the version of jsonb's binary format
		fallthrough
	case oidText, oidVarchar, oidBPChar, oidJSON:
		// As in the text format: a string's contents, the JSON text of
		// the rest.
		if v.kind == kString {
			s, _ := v.text()
			return append(b, s...), true
		}
		return append(b, v.raw...), true
	}
	return b, false
}

// appendNumeric appends the JSON number num as a numeric (numeric_send's
// layout): the count of base-10,000 digits, the weight of the first, the
// sign, the display scale (the decimal digits after the point, as
// written), then the digits.
func appendNumeric(b []byte, num []byte) ([]byte, bool) {
	neg := len(num) > 0 && num[0] == '-'
	if neg {
		num = num[1:]
	}
	mant, exp := num, 0
	if i := bytes.IndexAny(num, "eE"); i >= 0 {
		e, err := strconv.Atoi(string(num[i+1:]))
		if err != nil || e > 1000 || e < -1000 {
			return b, false
		}
		mant, exp = num[:i], e
	}
	intPart, frac := mant, []byte(nil)
	if i := bytes.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	// The value is digits × 10^-scale.
	var scratch [64]byte
	digits := append(append(scratch[:0], intPart...), frac...)
	scale := len(frac) - exp
	if len(digits) == 0 || scale > 16383 || len(digits) > 1000 {
		return b, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return b, false
		}
	}
	for ; scale < 0; scale++ {
		digits = append(digits, '0')
	}
	// Base-10,000 digits, in groups of four aligned on the point: the
	// first group begins at p0, zeros stand for the positions outside
	// digits. intLen is where the point is (negative: zeros come first
	// after it).
	intLen := len(digits) - scale
	p0 := (intLen%4 + 4) % 4
	if p0 > 0 {
		p0 -= 4
	}
	weight := (intLen-p0)/4 - 1
	var gscratch [32]uint16
	groups := gscratch[:0]
	for pos := p0; pos < len(digits); pos += 4 {
		g := uint16(0)
		for p := pos; p < pos+4; p++ {
			g *= 10
			if p >= 0 && p < len(digits) {
				g += uint16(digits[p] - '0')
			}
		}
		groups = append(groups, g)
	}
	for len(groups) > 0 && groups[0] == 0 {
		groups, weight = groups[1:], weight-1
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	sign := uint16(0)
	if len(groups) == 0 {
		weight = 0
	} else if neg {
		sign = 0x4000
	}
	if weight > math.MaxInt16 || weight < math.MinInt16 {
		return b, false
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(groups)))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(scale))
	for _, g := range groups {
		b = binary.BigEndian.AppendUint16(b, g)
	}
	return b, true
}
