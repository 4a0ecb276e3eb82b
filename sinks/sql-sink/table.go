package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/format"
)

// table is a table the sink writes to, as the database describes it.
type table struct {
	name   string // as the records or --table name it: name or schema.name
	quoted string // quoted for the dialect
	cols   []*column
	byName map[string]*column
	byFold map[string]*column // lower-cased name -> the one column of that name, nil when several
	// textOnly: a value did not fit the binary format (see binary.go), so
	// COPYs to the table are in the text format.
	textOnly atomic.Bool
	// described is the batch (sink.batch) in which the database was last
	// asked for the table's columns: a record with a field the table
	// lacks has it asked again, once a batch (see refresh).
	described int
	// last are the columns of the fields of the last record written to
	// the table, by position: tried before byName.
	last []struct {
		name string
		col  *column
	}
}

// column is a column of a table.
type column struct {
	name   string
	quoted string
	typ    string // the database's type name, lower case
	oid    uint32 // PostgreSQL: the type's OID
	ord    int    // position in the table, from 0
	// datetime marks a MySQL DATETIME or TIMESTAMP column, whose RFC 3339
	// values are converted (see mysqlArg).
	datetime bool
}

// columnAt is column for the field at position pos of a record.
func (t *table) columnAt(name string, pos int) *column {
	if pos < len(t.last) && t.last[pos].name == name {
		return t.last[pos].col
	}
	c := t.column(name)
	if c != nil && pos < 64 {
		for len(t.last) <= pos {
			t.last = append(t.last, struct {
				name string
				col  *column
			}{})
		}
		t.last[pos].name, t.last[pos].col = name, c
	}
	return c
}

// column returns the column a field of that name goes to: the column of
// that name, else the one column whose name differs only in case; nil if
// none.
func (t *table) column(name string) *column {
	if c := t.byName[name]; c != nil {
		return c
	}
	return t.byFold[strings.ToLower(name)]
}

func newTable(d sqldb.Dialect, name string, cols []*column) *table {
	t := &table{name: name, quoted: d.QuoteName(name), cols: cols, byName: map[string]*column{}, byFold: map[string]*column{}}
	seen := map[string]bool{}
	for i, c := range cols {
		c.ord = i
		c.quoted = d.Quote(c.name)
		t.byName[c.name] = c
		f := strings.ToLower(c.name)
		if seen[f] {
			t.byFold[f] = nil
		} else {
			t.byFold[f] = c
		}
		seen[f] = true
	}
	return t
}

// describe reads the columns of table name; nil when there is no such
// table.
func describe(ctx context.Context, db *sqldb.DB, name string) (*table, error) {
	schemaName, tbl := splitName(name)
	var rows *sql.Rows
	var err error
	switch db.Dialect {
	case sqldb.Postgres:
		var oid sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT to_regclass($1)::oid", db.Dialect.QuoteName(name)).Scan(&oid); err != nil {
			return nil, fmt.Errorf("looking up table %s: %w", name, db.Err(err))
		}
		if !oid.Valid {
			return nil, nil
		}
		rows, err = db.QueryContext(ctx, `SELECT attname, format_type(atttypid, atttypmod), atttypid FROM pg_attribute
			WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, oid.Int64)
	case sqldb.MySQL:
		var s any
		if schemaName != "" {
			s = schemaName
		}
		rows, err = db.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE) FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, s, tbl)
	default:
		if schemaName == "" {
			schemaName = "main"
		}
		rows, err = db.QueryContext(ctx, "SELECT name, LOWER(type) FROM pragma_table_info(?, ?) ORDER BY cid", tbl, schemaName)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up table %s: %w", name, db.Err(err))
	}
	defer rows.Close()
	var cols []*column
	for rows.Next() {
		c := &column{}
		dest := []any{&c.name, &c.typ}
		if db.Dialect == sqldb.Postgres {
			dest = append(dest, &c.oid)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("looking up table %s: %w", name, db.Err(err))
		}
		c.datetime = db.Dialect == sqldb.MySQL && (c.typ == "datetime" || c.typ == "timestamp")
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up table %s: %w", name, db.Err(err))
	}
	if len(cols) == 0 && db.Dialect != sqldb.Postgres {
		return nil, nil // MySQL and SQLite tables have at least one column
	}
	return newTable(db.Dialect, name, cols), nil
}

// kinds is the set of JSON types seen for a field.
type kinds uint8

func (k kinds) with(x kind) kinds { return k | 1<<x }

// colSpec is a column to create: its name and the JSON types it takes.
type colSpec struct {
	name     string
	kinds    kinds
	format   string // --schema's format of a string, such as date-time
	notNull  bool
	fromJSON bool // typed by --schema
}

// sqlType returns the column type for the dialect (README, Auto-create).
func (c colSpec) sqlType(d sqldb.Dialect, key bool) string {
	k := c.kinds &^ (1 << kNull)
	pick := func(pg, my, lite string) string {
		switch d {
		case sqldb.Postgres:
			return pg
		case sqldb.MySQL:
			return my
		}
		return lite
	}
	text := pick("TEXT", "TEXT", "TEXT")
	if d == sqldb.MySQL && key {
		text = "VARCHAR(255)" // a TEXT column cannot be a key
	}
	switch k {
	case 1 << kInt:
		return pick("BIGINT", "BIGINT", "INTEGER")
	case 1 << kNum, 1<<kInt | 1<<kNum:
		return pick("DOUBLE PRECISION", "DOUBLE", "REAL")
	case 1 << kBool:
		return pick("BOOLEAN", "BOOLEAN", "INTEGER")
	case 1 << kObject, 1 << kArray, 1<<kObject | 1<<kArray:
		if key {
			return text
		}
		return pick("JSONB", "JSON", "TEXT")
	case 1 << kString:
		switch c.format {
		case "date-time":
			return pick("TIMESTAMPTZ", "DATETIME(6)", "TEXT")
		case "date":
			return pick("DATE", "DATE", "TEXT")
		}
	}
	return text
}

// specsFromSchema returns the columns --schema gives: one per top-level
// property, typed by its types and format, NOT NULL when required and
// not nullable.
func specsFromSchema(s *format.Schema) []colSpec {
	var out []colSpec
	for _, p := range s.Properties() {
		c := colSpec{name: p.Name, format: p.Format, fromJSON: true}
		nullable := p.Types == nil
		for _, t := range p.Types {
			switch t {
			case "null":
				nullable = true
			case "string":
				c.kinds = c.kinds.with(kString)
			case "integer":
				c.kinds = c.kinds.with(kInt)
			case "number":
				c.kinds = c.kinds.with(kNum)
			case "boolean":
				c.kinds = c.kinds.with(kBool)
			case "object":
				c.kinds = c.kinds.with(kObject)
			case "array":
				c.kinds = c.kinds.with(kArray)
			}
		}
		c.notNull = p.Required && !nullable
		out = append(out, c)
	}
	return out
}

// createTable creates table name (if it still does not exist) with cols,
// keys as its primary key.
func createTable(ctx context.Context, db *sqldb.DB, name string, cols []colSpec, keys []string) error {
	if len(cols) == 0 {
		return fmt.Errorf("creating table %s: no field to make a column of", name)
	}
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(db.Dialect.QuoteName(name))
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		key := slices.Contains(keys, c.name)
		b.WriteString(db.Dialect.Quote(c.name))
		b.WriteByte(' ')
		b.WriteString(c.sqlType(db.Dialect, key))
		if c.notNull || key {
			b.WriteString(" NOT NULL")
		}
	}
	if len(keys) > 0 {
		b.WriteString(", PRIMARY KEY (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(db.Dialect.Quote(k))
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
	if _, err := db.ExecContext(ctx, b.String()); err != nil {
		return fmt.Errorf("creating table %s: %w", name, db.Err(err))
	}
	return nil
}

// addColumn adds a column to table t; a column of that name added in
// the meantime (by another sink) is no error.
func addColumn(ctx context.Context, db *sqldb.DB, t *table, c colSpec) error {
	q := "ALTER TABLE " + t.quoted + " ADD COLUMN " + db.Dialect.Quote(c.name) + " " + c.sqlType(db.Dialect, false)
	if _, err := db.ExecContext(ctx, q); err != nil && !duplicateColumn(err) {
		return fmt.Errorf("adding column %q to %s: %w", c.name, t.name, db.Err(err))
	}
	return nil
}

// duplicateColumn reports whether err says the column exists already.
func duplicateColumn(err error) bool {
	switch sqldb.Code(err) {
	case "42701": // PostgreSQL duplicate_column
		return true
	case "42S21": // MySQL ER_DUP_FIELDNAME
		return true
	}
	return strings.Contains(err.Error(), "duplicate column name") // SQLite
}

// orderSpecs orders the columns of a table to create: the key columns
// first, then the others in the order the records first had them, then
// those of --schema that no record had, by name.
func orderSpecs(specs []colSpec, keys []string, seen []string) []colSpec {
	rank := func(name string) int {
		if i := slices.Index(keys, name); i >= 0 {
			return i
		}
		if i := slices.Index(seen, name); i >= 0 {
			return len(keys) + i
		}
		return len(keys) + len(seen)
	}
	sort.SliceStable(specs, func(i, j int) bool {
		ri, rj := rank(specs[i].name), rank(specs[j].name)
		if ri != rj {
			return ri < rj
		}
		return specs[i].name < specs[j].name
	})
	return specs
}
