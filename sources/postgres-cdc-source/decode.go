package main

import (
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/record"
)

// The ops of a change record.
const (
	opInsert   = "c"
	opUpdate   = "u"
	opDelete   = "d"
	opRead     = "r" // a snapshot row
	opTruncate = "t"
)

// relation is a table as pgoutput describes it (its Relation message) or
// as the snapshot reads it: its columns, and which of them are the
// primary key.
type relation struct {
	id     uint32
	schema string
	name   string
	// ident is the table's REPLICA IDENTITY: d (default: the primary
	// key), f (full), i (an index), n (nothing).
	ident byte
	cols  []column
	// pk are the indexes in cols of the primary key's columns, in the
	// key's order; nil for a table without one.
	pk []int
	// source is `"table":"schema.name","schema":"schema"`, for the source object.
	source []byte
}

type column struct {
	// field is the column's name as a JSON string and a colon.
	field []byte
	oid   uint32
	// key: the column is part of the replica identity (pgoutput's flag).
	key bool
}

func newRelation(id uint32, schema, name string, ident byte, names []string, oids []uint32, keyFlags []bool, pkNames []string) *relation {
	r := &relation{id: id, schema: schema, name: name, ident: ident}
	for i, n := range names {
		c := column{field: append(appendQuoted(nil, n), ':'), oid: oids[i]}
		if keyFlags != nil {
			c.key = keyFlags[i]
		}
		r.cols = append(r.cols, c)
	}
	for _, k := range pkNames {
		i := slices.Index(names, k)
		if i < 0 {
			// A key column the publication does not publish (a column
			// list): no key can be made.
			r.pk = nil
			break
		}
		r.pk = append(r.pk, i)
	}
	r.source = append(r.source, `"table":`...)
	r.source = appendQuoted(r.source, schema+"."+name)
	r.source = append(r.source, `,"schema":`...)
	r.source = appendQuoted(r.source, schema)
	return r
}

func (r *relation) qualified() string { return r.schema + "." + r.name }

// decoder turns rows into records.
type decoder struct {
	types *pgtype.Map
	// buf is reused for each record's value and key, which are copied out.
	buf []byte
}

func newDecoder() *decoder { return &decoder{types: pgtype.NewMap()} }

// meta is what the source object says of a change.
type meta struct {
	lsn  pglogrepl.LSN
	txid uint32 // 0 for a snapshot row: null
	ts   time.Time
}

// row is one tuple: a column's value is vals[i], nil for NULL; toast[i]
// says it is an unchanged TOASTed value, not sent.
type row struct {
	vals  [][]byte
	toast []bool
}

func tupleRow(t *pglogrepl.TupleData) row {
	if t == nil {
		return row{}
	}
	r := row{vals: make([][]byte, len(t.Columns))}
	for i, c := range t.Columns {
		switch c.DataType {
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			r.vals[i] = c.Data
			if r.vals[i] == nil {
				r.vals[i] = []byte{}
			}
		case pglogrepl.TupleDataTypeToast:
			if r.toast == nil {
				r.toast = make([]bool, len(t.Columns))
			}
			r.toast[i] = true
		}
	}
	return r
}

func (r row) ok() bool { return r.vals != nil }

// record makes the record of one change. before and after are the old
// and new rows (either may be absent); keyOnly says before holds only the
// replica identity's columns (REPLICA IDENTITY other than FULL): the
// others are left out of it.
func (d *decoder) record(rel *relation, op string, before, after row, keyOnly bool, m meta) record.Record {
	// An unchanged TOASTed value is not sent in the new row: with
	// REPLICA IDENTITY FULL the old row has it.
	if after.toast != nil && before.ok() && !keyOnly {
		for i, t := range after.toast {
			if t && i < len(before.vals) && (before.toast == nil || !before.toast[i]) {
				after.vals[i], after.toast[i] = before.vals[i], false
			}
		}
	}
	b := d.buf[:0]
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, `","before":`...)
	keyFrom := after
	if op == opDelete {
		keyFrom = before
	}
	if before.ok() {
		b = d.appendRow(b, rel, before, keyOnly)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"after":`...)
	if after.ok() {
		b = d.appendRow(b, rel, after, false)
	} else {
		b = append(b, "null"...)
	}
	var key []byte
	if rel.pk != nil && keyFrom.ok() && hasKey(rel, keyFrom, op == opDelete && keyOnly) {
		// The key's values are re-encoded from the row (small: a few
		// columns), after the value.
		kb := len(b)
		b = append(b, '{')
		for j, i := range rel.pk {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, rel.cols[i].field...)
			if i < len(keyFrom.vals) && keyFrom.vals[i] != nil {
				b = d.appendValue(b, rel.cols[i].oid, keyFrom.vals[i])
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, '}')
		key = slices.Clone(b[kb:])
		b = b[:kb]
	}
	b = appendSource(b, rel, m)
	d.buf = b
	return record.Record{Key: key, Value: slices.Clone(b), Time: m.ts}
}

// hasKey says whether r holds every column of the primary key: the old
// row of a table whose REPLICA IDENTITY is an index other than the
// primary key has only that index's columns (keyOnly), and a key column
// whose TOASTed value did not change is not sent.
func hasKey(rel *relation, r row, keyOnly bool) bool {
	for _, i := range rel.pk {
		if i >= len(r.vals) || (keyOnly && !rel.cols[i].key) || (r.toast != nil && r.toast[i]) {
			return false
		}
	}
	return true
}

// appendSource appends the source object and closes the value.
func appendSource(b []byte, rel *relation, m meta) []byte {
	b = append(b, `,"source":{"lsn":"`...)
	b = append(b, m.lsn.String()...)
	b = append(b, `",`...)
	b = append(b, rel.source...)
	b = append(b, `,"txid":`...)
	if m.txid == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, uint64(m.txid), 10)
	}
	b = append(b, `,"ts":"`...)
	b = m.ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, `"}}`...)
}

// appendRow appends a row as a JSON object: every column, or only the
// replica identity's when keyOnly; unchanged TOASTed values are left out.
func (d *decoder) appendRow(b []byte, rel *relation, r row, keyOnly bool) []byte {
	b = append(b, '{')
	first := true
	for i, v := range r.vals {
		if i >= len(rel.cols) {
			break
		}
		c := &rel.cols[i]
		if (keyOnly && !c.key) || (r.toast != nil && r.toast[i]) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, c.field...)
		if v == nil {
			b = append(b, "null"...)
		} else {
			b = d.appendValue(b, c.oid, v)
		}
	}
	return append(b, '}')
}

// truncateRecord is the record of a truncated table: no rows, no key.
func (d *decoder) truncateRecord(rel *relation, m meta) record.Record {
	b := append(d.buf[:0], `{"op":"t","before":null,"after":null`...)
	b = appendSource(b, rel, m)
	d.buf = b
	return record.Record{Value: slices.Clone(b), Time: m.ts}
}
