package main

import (
	"bytes"
	"encoding/json"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// appendValue appends the JSON form of a column's value, given in
// PostgreSQL's text format (pgoutput's and the snapshot's), for a column
// of type oid: sqldb.PgValue's, which decodes it with pgx's type map as
// sql-source does its rows, so that a column has the same JSON from both
// (README, Types). A value PgValue cannot decode (none of PostgreSQL's own
// types should fail) is kept as its text, a JSON string: a change is never
// dropped for its form.
//
// sqldb.AppendPg writes it (text types straight from their bytes, the
// others through PgValue); the most common other types take a shortcut
// that writes, straight from the text, exactly what PgValue and
// sqldb.AppendJSON would (TestShortcutsAreSqldbs checks it): decoding into
// a Go value and formatting it again was a third of the connector's CPU
// time.
func (d *decoder) appendValue(buf []byte, oid uint32, text []byte) []byte {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		return append(buf, text...)
	case pgtype.NumericOID:
		if bytes.ContainsAny(text, "NI") { // NaN, Infinity, -Infinity
			break
		}
		return append(buf, text...)
	case pgtype.BoolOID:
		if len(text) > 0 && text[0] == 't' {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	case pgtype.JSONOID, pgtype.JSONBOID:
		if json.Valid(text) {
			return append(buf, text...)
		}
		return sqldb.AppendJSON(buf, string(text)) // never from PostgreSQL: kept as a string
	case pgtype.TimestamptzOID:
		// 2026-12-07 10:00:00.123+00 (DateStyle ISO, TimeZone UTC).
		if n := len(text) - 3; n >= 19 && string(text[n:]) == "+00" && isTimestamp(text[:n]) {
			return appendRFC3339(buf, text[:n])
		}
	case pgtype.TimestampOID:
		if isTimestamp(text) {
			return appendRFC3339(buf, text)
		}
	case pgtype.DateOID:
		if len(text) == 10 && isDate(text) {
			return append(append(append(buf, '"'), text...), '"')
		}
	case pgtype.UUIDOID:
		if isUUID(text) {
			return append(append(append(buf, '"'), text...), '"')
		}
	}
	out, err := sqldb.AppendPg(buf, d.types, oid, pgtype.TextFormatCode, text)
	if err != nil {
		return sqldb.AppendJSON(buf, string(text))
	}
	return out
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isDate says b is YYYY-MM-DD.
func isDate(b []byte) bool {
	return len(b) == 10 && digits(b[0:4]) && b[4] == '-' && digits(b[5:7]) && b[7] == '-' && digits(b[8:10])
}

// isTimestamp says b is YYYY-MM-DD HH:MM:SS with 1 to 6 digits of a
// fraction or none.
func isTimestamp(b []byte) bool {
	if len(b) < 19 || !isDate(b[:10]) || b[10] != ' ' || !digits(b[11:13]) || b[13] != ':' || !digits(b[14:16]) || b[16] != ':' || !digits(b[17:19]) {
		return false
	}
	if len(b) == 19 {
		return true
	}
	return b[19] == '.' && len(b) >= 21 && len(b) <= 26 && digits(b[20:])
}

// appendRFC3339 writes a timestamp isTimestamp accepted as RFC 3339 in
// UTC, as time.RFC3339Nano does: the fraction without its trailing zeros.
func appendRFC3339(buf, b []byte) []byte {
	buf = append(buf, '"')
	buf = append(buf, b[:10]...)
	buf = append(buf, 'T')
	buf = append(buf, b[11:19]...)
	if len(b) > 19 {
		frac := bytes.TrimRight(b[20:], "0")
		if len(frac) > 0 {
			buf = append(append(buf, '.'), frac...)
		}
	}
	return append(buf, 'Z', '"')
}

// isUUID says b is a UUID in the canonical lower-case form.
func isUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// appendQuoted appends s as a JSON string.
func appendQuoted(buf []byte, s string) []byte { return sqldb.AppendJSON(buf, s) }
