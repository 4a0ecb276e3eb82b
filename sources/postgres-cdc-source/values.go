package main

import (
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// appendValue appends the JSON form of a column's value, given in
// PostgreSQL's text format (pgoutput's and the snapshot's), for a column
// of type oid: sqldb.PgValue decodes it with pgx's type map, as
// sql-source does its rows, so that a column has the same JSON from both
// (README, Types). A value PgValue cannot decode (none of PostgreSQL's
// own types should fail) is kept as its text, a JSON string: a change is
// never dropped for its form.
func (d *decoder) appendValue(buf []byte, oid uint32, text []byte) []byte {
	v, err := sqldb.PgValue(d.types, oid, pgtype.TextFormatCode, text)
	if err != nil {
		v = string(text)
	}
	return sqldb.AppendJSON(buf, v)
}

// appendQuoted appends s as a JSON string.
func appendQuoted(buf []byte, s string) []byte { return sqldb.AppendJSON(buf, s) }
