package main

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	// buf is reused for each record's value and key, which are then
	// copied into arena.
	buf []byte
	// arena holds the values and keys of the records made, one
	// allocation for many records; a full one is left to the records
	// that use it.
	arena []byte
	// old and new are reused for the rows of each change.
	old, new row
	// ts and tsText: the last commit time and its text.
	ts     time.Time
	tsText []byte
}

func newDecoder() *decoder { return &decoder{types: pgtype.NewMap()} }

// keep copies b into the arena.
func (d *decoder) keep(b []byte) []byte {
	if len(b) > cap(d.arena)-len(d.arena) {
		d.arena = make([]byte, 0, max(64<<10, len(b)))
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)]
}

// meta is what the source object says of a change.
type meta struct {
	lsn  pglogrepl.LSN
	txid uint32 // 0 for a snapshot row: null
	ts   time.Time
}

// row is one tuple: a column's value is vals[i], nil for NULL; toast[i]
// says it is an unchanged TOASTed value, not sent (toast is nil when none
// is); set says the row is there at all.
type row struct {
	vals  [][]byte
	toast []bool
	set   bool
}

func (r row) ok() bool { return r.set }

// parseTuple reads pgoutput's TupleData at b[i:] into r, reusing its
// slices; the values point into b. It returns the index after the tuple.
func parseTuple(b []byte, i int, r *row) (int, error) {
	if len(b) < i+2 {
		return 0, errors.New("truncated tuple")
	}
	n := int(binary.BigEndian.Uint16(b[i:]))
	i += 2
	r.vals, r.toast, r.set = r.vals[:0], r.toast[:0], true
	toast := false
	for range n {
		if i >= len(b) {
			return 0, errors.New("truncated tuple")
		}
		kind := b[i]
		i++
		var v []byte
		t := false
		switch kind {
		case 'n':
		case 'u':
			t, toast = true, true
		case 't', 'b':
			if len(b) < i+4 {
				return 0, errors.New("truncated tuple")
			}
			l := int(binary.BigEndian.Uint32(b[i:]))
			i += 4
			if l < 0 || len(b) < i+l {
				return 0, errors.New("truncated tuple")
			}
			v = b[i : i+l : i+l]
			i += l
		default:
			return 0, fmt.Errorf("unknown tuple column kind %q", kind)
		}
		r.vals = append(r.vals, v)
		r.toast = append(r.toast, t)
	}
	if !toast {
		r.toast = r.toast[:0]
	}
	return i, nil
}

// record makes the record of one change. before and after are the old
// and new rows (either may be absent); keyOnly says before holds only the
// replica identity's columns (REPLICA IDENTITY other than FULL): the
// others are left out of it.
func (d *decoder) record(rel *relation, op string, before, after row, keyOnly bool, m meta) record.Record {
	// An unchanged TOASTed value is not sent in the new row: with
	// REPLICA IDENTITY FULL the old row has it.
	if len(after.toast) > 0 && before.ok() && !keyOnly {
		for i, t := range after.toast {
			if t && i < len(before.vals) && (len(before.toast) == 0 || !before.toast[i]) {
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
		key = d.keep(b[kb:])
		b = b[:kb]
	}
	b = d.appendSource(b, rel, m)
	d.buf = b
	return record.Record{Key: key, Value: d.keep(b), Time: m.ts}
}

// hasKey says whether r holds every column of the primary key: the old
// row of a table whose REPLICA IDENTITY is an index other than the
// primary key has only that index's columns (keyOnly), and a key column
// whose TOASTed value did not change is not sent.
func hasKey(rel *relation, r row, keyOnly bool) bool {
	for _, i := range rel.pk {
		if i >= len(r.vals) || (keyOnly && !rel.cols[i].key) || (len(r.toast) > 0 && r.toast[i]) {
			return false
		}
	}
	return true
}

// appendSource appends the source object and closes the value.
func (d *decoder) appendSource(b []byte, rel *relation, m meta) []byte {
	b = append(b, `,"source":{"lsn":"`...)
	b = appendLSN(b, m.lsn)
	b = append(b, `",`...)
	b = append(b, rel.source...)
	b = append(b, `,"txid":`...)
	if m.txid == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, uint64(m.txid), 10)
	}
	b = append(b, `,"ts":"`...)
	if !m.ts.Equal(d.ts) || d.tsText == nil {
		d.ts, d.tsText = m.ts, m.ts.UTC().AppendFormat(d.tsText[:0], "2006-01-02T15:04:05.000Z07:00")
	}
	b = append(b, d.tsText...)
	return append(b, `"}}`...)
}

// appendLSN appends an LSN as PostgreSQL writes it: 0/16B3748.
func appendLSN(b []byte, l pglogrepl.LSN) []byte {
	b = appendHex(b, uint32(l>>32))
	b = append(b, '/')
	return appendHex(b, uint32(l))
}

func appendHex(b []byte, v uint32) []byte {
	const hex = "0123456789ABCDEF"
	if v == 0 {
		return append(b, '0')
	}
	var tmp [8]byte
	i := len(tmp)
	for v > 0 {
		i--
		tmp[i] = hex[v&0xf]
		v >>= 4
	}
	return append(b, tmp[i:]...)
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
		if (keyOnly && !c.key) || (len(r.toast) > 0 && r.toast[i]) {
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
	b = d.appendSource(b, rel, m)
	d.buf = b
	return record.Record{Value: d.keep(b), Time: m.ts}
}
