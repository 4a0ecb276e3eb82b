package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/buger/jsonparser"

	"github.com/culvert-dev/culvert/common/record"
)

// opKind is what an op does to its table.
type opKind uint8

const (
	opInsert opKind = iota
	opUpsert
	opDelete
	opTruncate
)

// op is one statement's worth of work for one record: a row to insert or
// upsert (cols and vals, sorted by column position), a row to delete (by
// its key: cols are the key columns), or a truncate.
type op struct {
	t    *table
	kind opKind
	cols []*column
	vals []jval
	keys []*column // upsert: the columns rows are matched on
}

// item is what one record makes: usually one op; a change event that
// changes the row's key makes two (delete the old row, upsert the new);
// one for a table that does not exist, none.
type item struct {
	rec int
	ops []op
}

// pending is a record read, before its table is known to the database.
type pending struct {
	rec      int
	table    string
	kind     opKind
	fields   []field  // insert and upsert: the row
	keyNames []string // upsert and delete: the key columns, as named by the options or the record key
	keyVals  []jval   // delete: the key's values, in keyNames' order
	oldKey   []jval   // update: the key before the update, when it changed
}

// plan turns records into items, making and widening tables as the
// options allow. A record that cannot be written is rejected with why (an
// error without SQLSTATE); an error is a database error (the write is
// retried or stops the sink).
//
// With noDDL, plan makes no table and adds no column (a transaction of
// the sink may hold the table): it returns errNeedsDDL instead.
func (s *sink) plan(ctx context.Context, recs []record.Record, noDDL bool) ([]item, []rejection, error) {
	var rejected []rejection
	reject := func(i int, format string, a ...any) {
		rejected = append(rejected, rejection{item: item{rec: i}, err: fmt.Errorf(format, a...)})
	}
	pend := make([]pending, 0, len(recs))
	for i := range recs {
		p, err := s.read(ctx, recs[i], i)
		if err != nil {
			reject(i, "%v", err)
			continue
		}
		pend = append(pend, p)
	}

	// The tables, each looked up (or made) once.
	tables := map[string]*table{}
	var order []string
	byTable := map[string][]*pending{}
	for i := range pend {
		p := &pend[i]
		if _, ok := byTable[p.table]; !ok {
			order = append(order, p.table)
		}
		byTable[p.table] = append(byTable[p.table], p)
	}
	missing := map[string]string{} // table -> why its records are rejected
	for _, name := range order {
		t, why, err := s.tableFor(ctx, name, byTable[name], noDDL)
		if err != nil {
			return nil, nil, err
		}
		if t == nil {
			missing[name] = why
			continue
		}
		if !s.opts.AutoEvolve && t.described != s.batch && lacksColumn(t, byTable[name]) {
			if t, err = s.refresh(ctx, t); err != nil {
				return nil, nil, err
			}
		}
		if s.opts.AutoEvolve {
			if t, err = s.evolve(ctx, t, byTable[name], noDDL); err != nil {
				return nil, nil, err
			}
		}
		tables[name] = t
	}

	items := make([]item, 0, len(pend))
	for i := range pend {
		p := &pend[i]
		t := tables[p.table]
		if t == nil {
			if why := missing[p.table]; why != "" {
				reject(p.rec, "%s", why)
			} else {
				items = append(items, item{rec: p.rec}) // a delete or truncate of a table that does not exist: nothing to do
			}
			continue
		}
		ops, err := s.ops(p, t)
		if err != nil {
			reject(p.rec, "%v", err)
			continue
		}
		items = append(items, item{rec: p.rec, ops: ops})
	}
	return items, rejected, nil
}

// stopped is an error that stops the sink: not the database's, and
// not worth retrying.
type stopped struct{ error }

func (e stopped) Unwrap() error { return e.error }

func stop(err error) error { return stopped{err} }

// errNeedsDDL says that plan, told not to, would have made a table or
// added a column.
var errNeedsDDL = errors.New("a table to make or a column to add")

// read reads one record: its table, what to do, the fields.
func (s *sink) read(ctx context.Context, r record.Record, i int) (pending, error) {
	p := pending{rec: i, kind: opInsert, keyNames: s.p.keyColumns}
	if s.p.upsert {
		p.kind = opUpsert
	}
	var err error
	if s.opts.CDC {
		return s.readChange(ctx, r, p)
	}
	if p.table, err = s.tableName(ctx, r, ""); err != nil {
		return p, err
	}
	start := len(s.fields)
	if s.fields, err = s.names.parseObject(r.Value, s.fields); err != nil {
		return p, err
	}
	p.fields = s.pick(s.fields[start:], true)
	return p, nil
}

// pick applies --columns to the fields of a record: those columns in
// their order. A missing field is null with nulls (README, Columns: a
// record, in --mode insert or upsert), else left out (--cdc: a column
// absent from a change event's after keeps its stored value on an
// update, and takes its default on an insert).
func (s *sink) pick(fields []field, nulls bool) []field {
	if s.p.columns == nil {
		return fields
	}
	out := make([]field, 0, len(s.p.columns))
	for _, c := range s.p.columns {
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == c })
		switch {
		case i >= 0:
			out = append(out, field{name: c, v: fields[i].v})
		case nulls:
			out = append(out, field{name: c})
		}
	}
	return out
}

// tableName is the table of record r: --table, its jq expression's
// output, or else def (--cdc: the table of the change).
func (s *sink) tableName(ctx context.Context, r record.Record, def string) (string, error) {
	switch {
	case s.p.table != "":
		return s.p.table, nil
	case s.p.tableExpr != nil:
		out, err := s.p.tableExpr.Apply(ctx, r)
		if err != nil {
			return "", fmt.Errorf("--table: %v", err)
		}
		var name string
		if len(out) != 1 || json.Unmarshal(out[0].Value, &name) != nil {
			shown := "no output"
			if len(out) > 0 {
				shown = truncate(string(out[0].Value))
			}
			return "", fmt.Errorf("--table %s gave %s, want one string, the table's name", s.opts.Table, shown)
		}
		if why := checkTableName(name); why != "" {
			return "", fmt.Errorf("--table %s gave %q: %s", s.opts.Table, truncate(name), why)
		}
		return name, nil
	}
	return def, nil
}

// readChange reads a change event (--cdc).
func (s *sink) readChange(ctx context.Context, r record.Record, p pending) (pending, error) {
	v := r.Value
	if !json.Valid(v) {
		return p, fmt.Errorf("not a change event: the value is not JSON")
	}
	op, err := jsonparser.GetString(v, "op")
	switch {
	case err != nil:
		return p, fmt.Errorf("not a change event: no op")
	case len(op) != 1 || !strings.Contains("crudt", op):
		return p, fmt.Errorf("not a change event: op %q (want c, r, u, d or t)", truncate(op))
	}
	src, _ := jsonparser.GetString(v, "source", "table")
	if i := strings.LastIndexByte(src, '.'); i >= 0 {
		src = src[i+1:]
	}
	if p.table, err = s.tableName(ctx, r, src); err != nil {
		return p, err
	}
	if p.table == "" {
		return p, fmt.Errorf("change event without source.table: give --table")
	}
	// The key: --key-columns, else the fields of the record key.
	var keyObj []field
	if r.Key != nil {
		keyObj, _ = s.names.parseObject(r.Key, nil)
	}
	if p.keyNames == nil {
		for _, f := range keyObj {
			p.keyNames = append(p.keyNames, f.name)
		}
	}
	object := func(name string) ([]field, bool, error) {
		b, t, _, err := jsonparser.Get(v, name)
		switch {
		case err != nil || t == jsonparser.Null:
			return nil, false, nil
		case t != jsonparser.Object:
			return nil, false, fmt.Errorf("change event: %s is a %s, not an object", name, t)
		}
		start := len(s.fields)
		s.fields, err = s.names.parseObject(b, s.fields)
		return s.fields[start:], true, err
	}
	after, hasAfter, err := object("after")
	if err != nil {
		return p, err
	}
	before, hasBefore, err := object("before")
	if err != nil {
		return p, err
	}
	keyOf := func(fields []field) ([]jval, bool) {
		vals := make([]jval, len(p.keyNames))
		for i, k := range p.keyNames {
			found := false
			for _, f := range fields {
				if f.name == k {
					vals[i], found = f.v, true
				}
			}
			if !found {
				return nil, false
			}
		}
		return vals, true
	}
	switch op {
	case "c", "r", "u":
		if !hasAfter {
			return p, fmt.Errorf("change event %q without after", op)
		}
		if len(p.keyNames) == 0 {
			return p, fmt.Errorf("change event without a key object as record key: give --key-columns")
		}
		// A column absent from after (an unchanged TOAST value that
		// postgres-cdc-source left out) is left out of the upsert, also
		// with --columns: the row keeps its stored value.
		p.kind, p.fields = opUpsert, s.pick(after, false)
		if op == "u" && hasBefore {
			old, okOld := keyOf(before)
			cur, okCur := keyOf(after)
			if okOld && okCur && !sameVals(old, cur) {
				p.oldKey = old
			}
		}
	case "d":
		if len(p.keyNames) == 0 {
			return p, fmt.Errorf("change event without a key object as record key: give --key-columns")
		}
		vals, ok := keyOf(before)
		if !ok {
			vals, ok = keyOf(keyObj)
		}
		if !ok {
			return p, fmt.Errorf("delete without the key columns %s in before or in the record key", strings.Join(p.keyNames, ", "))
		}
		p.kind, p.keyVals = opDelete, vals
	case "t":
		p.kind = opTruncate
	default:
		return p, fmt.Errorf("not a change event: op %q (want c, r, u, d or t)", truncate(op))
	}
	return p, nil
}

func sameVals(a, b []jval) bool {
	for i := range a {
		if a[i].kind != b[i].kind || string(a[i].raw) != string(b[i].raw) {
			return false
		}
	}
	return true
}

// tableFor returns the table name, from the cache, the database, or
// made with --auto-create from the records ps going to it. A nil table
// with a reason rejects the records; a nil table without one means that
// the records only delete from a table that does not exist.
func (s *sink) tableFor(ctx context.Context, name string, ps []*pending, noDDL bool) (*table, string, error) {
	if t := s.tables[name]; t != nil {
		return t, "", nil
	}
	t, err := describe(ctx, s.db, name)
	if err != nil {
		return nil, "", err
	}
	if t == nil {
		writes := false
		for _, p := range ps {
			writes = writes || p.kind == opInsert || p.kind == opUpsert
		}
		switch {
		case !writes:
			return nil, "", nil
		case !s.opts.AutoCreate && name == s.p.table:
			// It was there at start.
			return nil, "", stop(fmt.Errorf("table %s does not exist (any more): create it, or give --auto-create", name))
		case !s.opts.AutoCreate:
			return nil, fmt.Sprintf("table %s does not exist (create it, or give --auto-create)", name), nil
		}
		if noDDL {
			return nil, "", errNeedsDDL
		}
		specs, keys := s.specsFor(ps)
		if len(specs) == 0 {
			return nil, fmt.Sprintf("table %s does not exist, and the records have no field to make a column of", name), nil
		}
		if err := createTable(ctx, s.db, name, specs, keys); err != nil {
			return nil, "", err
		}
		s.log.Info().Str("table", name).Int("columns", len(specs)).Strs("primary_key", keys).Msg("created the table")
		if t, err = describe(ctx, s.db, name); err != nil {
			return nil, "", err
		}
		if t == nil {
			return nil, "", stop(fmt.Errorf("table %s was created, then not found", name))
		}
	}
	t.described = s.batch
	s.tables[name] = t
	return t, "", nil
}

// lacksColumn reports whether a record of ps has a field, or names a key
// column, that table t has no column for.
func lacksColumn(t *table, ps []*pending) bool {
	for _, p := range ps {
		for _, f := range p.fields {
			if t.column(f.name) == nil {
				return true
			}
		}
		if p.kind != opInsert {
			for _, k := range p.keyNames {
				if t.column(k) == nil {
					return true
				}
			}
		}
	}
	return false
}

// refresh asks the database for the columns of t again: a column may
// have been added since the sink described the table (ALTER TABLE while
// it runs). Called when a record has a field t lacks, before it is
// dead-lettered for that, at most once a batch for each table, so that a
// stream of fields that are no column costs one lookup a batch, not one
// a record.
func (s *sink) refresh(ctx context.Context, t *table) (*table, error) {
	nt, err := describe(ctx, s.db, t.name)
	if err != nil {
		return nil, err
	}
	t.described = s.batch
	if nt == nil {
		return t, nil // dropped: the write says so (see failed)
	}
	nt.described = s.batch
	nt.textOnly.Store(t.textOnly.Load())
	var added []string
	for _, c := range nt.cols {
		if t.byName[c.name] == nil {
			added = append(added, c.name)
		}
	}
	if len(added) == 0 && len(nt.cols) == len(t.cols) {
		s.log.Debug().Str("table", t.name).Msg("looked the table up again for a field it has no column for: no new column")
		return t, nil
	}
	s.log.Info().Str("table", t.name).Strs("new_columns", added).Msg("looked the table up again for a field it had no column for: it has new columns")
	s.tables[t.name] = nt
	return nt, nil
}

// specsFor returns the columns and the primary key of a table to create
// for the records ps: --schema's properties, and the fields of the
// records typed by their values.
func (s *sink) specsFor(ps []*pending) ([]colSpec, []string) {
	var specs []colSpec
	if sc := s.env.Format.Schema(); sc != nil {
		specs = specsFromSchema(sc)
	}
	var seen []string
	add := func(name string, v jval) {
		if !slices.Contains(seen, name) {
			seen = append(seen, name)
		}
		for i := range specs {
			if specs[i].name == name {
				if !specs[i].fromJSON {
					specs[i].kinds = specs[i].kinds.with(v.kind)
				}
				return
			}
		}
		specs = append(specs, colSpec{name: name, kinds: kinds(0).with(v.kind)})
	}
	// Every --columns column, also one that no record of the batch has
	// (a change event's after may lack it), in the order of --columns.
	for _, c := range s.p.columns {
		add(c, jval{})
	}
	var keys []string
	for _, p := range ps {
		if keys == nil && len(p.keyNames) > 0 && p.kind != opInsert {
			keys = p.keyNames
		}
		for _, f := range p.fields {
			add(f.name, f.v)
		}
		for i, k := range p.keyNames {
			if i < len(p.keyVals) {
				add(k, p.keyVals[i])
			}
		}
	}
	if keys == nil {
		keys = s.p.keyColumns
	}
	for _, k := range keys {
		if !slices.Contains(seen, k) && !slices.ContainsFunc(specs, func(c colSpec) bool { return c.name == k }) {
			specs = append(specs, colSpec{name: k})
		}
	}
	return orderSpecs(specs, keys, seen), keys
}

// evolve adds to t a column for each field of ps it has not (--auto-evolve).
func (s *sink) evolve(ctx context.Context, t *table, ps []*pending, noDDL bool) (*table, error) {
	var add []colSpec
	var schemaSpecs []colSpec
	if sc := s.env.Format.Schema(); sc != nil {
		schemaSpecs = specsFromSchema(sc)
	}
	for _, p := range ps {
		for _, f := range p.fields {
			if t.column(f.name) != nil {
				continue
			}
			i := slices.IndexFunc(add, func(c colSpec) bool { return c.name == f.name })
			if i < 0 {
				c := colSpec{name: f.name}
				if j := slices.IndexFunc(schemaSpecs, func(c colSpec) bool { return c.name == f.name }); j >= 0 {
					c = schemaSpecs[j]
					c.notNull = false // rows written before have none
				}
				add = append(add, c)
				i = len(add) - 1
			}
			if !add[i].fromJSON {
				add[i].kinds = add[i].kinds.with(f.v.kind)
			}
		}
	}
	if len(add) == 0 {
		return t, nil
	}
	if noDDL {
		return nil, errNeedsDDL
	}
	for _, c := range add {
		if err := addColumn(ctx, s.db, t, c); err != nil {
			return nil, err
		}
		s.log.Info().Str("table", t.name).Str("column", c.name).Str("type", c.sqlType(s.db.Dialect, false)).Msg("added a column")
	}
	nt, err := describe(ctx, s.db, t.name)
	if err != nil {
		return nil, err
	}
	if nt == nil {
		return nil, stop(fmt.Errorf("table %s was altered, then not found", t.name))
	}
	nt.described = s.batch
	s.tables[t.name] = nt
	return nt, nil
}

// ops makes the ops of a record whose table is t.
func (s *sink) ops(p *pending, t *table) ([]op, error) {
	keyCols := func() ([]*column, error) {
		cols := make([]*column, len(p.keyNames))
		for i, k := range p.keyNames {
			if cols[i] = t.column(k); cols[i] == nil {
				return nil, fmt.Errorf("key column %q is not a column of table %s", k, t.name)
			}
		}
		return cols, nil
	}
	switch p.kind {
	case opTruncate:
		return []op{{t: t, kind: opTruncate}}, nil
	case opDelete:
		keys, err := keyCols()
		if err != nil {
			return nil, err
		}
		return []op{{t: t, kind: opDelete, cols: keys, vals: p.keyVals, keys: keys}}, nil
	}
	// The columns and values of the batch's rows share two arrays.
	c0, v0 := len(s.colSlab), len(s.valSlab)
	for i, f := range p.fields {
		c := t.columnAt(f.name, i)
		if c == nil {
			s.colSlab, s.valSlab = s.colSlab[:c0], s.valSlab[:v0]
			return nil, fmt.Errorf("field %q is not a column of table %s (--auto-evolve adds it; --columns or --map can leave it out)", truncate(f.name), t.name)
		}
		s.colSlab = append(s.colSlab, c)
		s.valSlab = append(s.valSlab, f.v)
	}
	row := op{t: t, kind: p.kind, cols: s.colSlab[c0:len(s.colSlab):len(s.colSlab)], vals: s.valSlab[v0:len(s.valSlab):len(s.valSlab)]}
	if len(row.cols) == 0 {
		return nil, fmt.Errorf("no field to write to table %s", t.name)
	}
	sortRow(&row)
	for i := 1; i < len(row.cols); i++ {
		if row.cols[i] == row.cols[i-1] {
			return nil, fmt.Errorf("two fields go to column %q of table %s (their names differ only in case)", row.cols[i].name, t.name)
		}
	}
	// The ops of the batch share an array too.
	o0 := len(s.opSlab)
	if p.kind == opUpsert {
		keys, err := keyCols()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if !slices.Contains(row.cols, k) {
				return nil, fmt.Errorf("no field for the key column %q", k.name)
			}
		}
		row.keys = keys
		if p.oldKey != nil {
			s.opSlab = append(s.opSlab, op{t: t, kind: opDelete, cols: keys, vals: p.oldKey, keys: keys})
		}
	}
	s.opSlab = append(s.opSlab, row)
	return s.opSlab[o0:len(s.opSlab):len(s.opSlab)], nil
}

// sortRow sorts a row's columns (and their values) by their position in
// the table, so that rows of the same columns make one statement.
func sortRow(o *op) {
	for i := 1; i < len(o.cols); i++ {
		for j := i; j > 0 && o.cols[j].ord < o.cols[j-1].ord; j-- {
			o.cols[j], o.cols[j-1] = o.cols[j-1], o.cols[j]
			o.vals[j], o.vals[j-1] = o.vals[j-1], o.vals[j]
		}
	}
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
