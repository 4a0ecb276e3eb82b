package main

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// database runs the source's queries: pgx for PostgreSQL (the exact types
// of its binary protocol, and the speed), database/sql for the others.
type database interface {
	// query runs a query and returns its rows, to read one at a time.
	query(ctx context.Context, q string, args ...any) (resultRows, error)
	// reconnect replaces a connection that failed (PostgreSQL; database/sql
	// reconnects by itself).
	reconnect(ctx context.Context) error
	close()
}

// resultRows is the result of a query, read row by row.
type resultRows interface {
	columns() []string
	next() bool
	// appendJSON appends the JSON of column i of the current row.
	appendJSON(dst []byte, i int) ([]byte, error)
	// content is column i's content as it is, for --value-column: the
	// text of a text or json column, the bytes of a binary one; ok is
	// false for other types, which are written as JSON.
	content(i int) (b []byte, ok bool)
	// cursor is column i's value as a cursor; nil for NULL.
	cursor(i int) (*cursor, error)
	// posKey appends the bytes of columns cols of the current row, such
	// that two rows' bytes are equal exactly when their values are;
	// posDecoder turns those bytes back into a position. posDecoder is nil
	// when the columns' types do not allow it (then cursor decodes each).
	posKey(dst []byte, cols []int) []byte
	posDecoder(cols []int) func(key []byte) (*position, error)
	// integer is column i's value if it is an integer.
	integer(i int) (int64, bool)
	err() error
	close()
}

// pgDatabase is PostgreSQL through one pgx connection.
type pgDatabase struct {
	cfg  *pgx.ConnConfig
	t    *sqldb.Target
	opts *Options
	log  zerolog.Logger
	conn *pgx.Conn
}

func openPostgres(ctx context.Context, o *Options, t *sqldb.Target, log zerolog.Logger) (*pgDatabase, error) {
	d := &pgDatabase{cfg: t.PgConfig, t: t, opts: o, log: log}
	if err := d.connect(ctx); err != nil {
		return nil, err
	}
	log.Info().Str("database", t.Display).Msg("connected to the database")
	return d, nil
}

// connect connects, retrying with --max-retries' backoff while the server
// cannot be reached; refused credentials and the like are not retried.
func (d *pgDatabase) connect(ctx context.Context) error {
	b := d.opts.Limit.Backoff()
	for attempt := 1; ; attempt++ {
		c, err := pgx.ConnectConfig(ctx, d.cfg)
		if err == nil {
			d.conn = c
			return nil
		}
		err = d.t.Err(err)
		if !sqldb.Transient(err) || ctx.Err() != nil {
			return fmt.Errorf("connecting to %s: %w", d.t.Display, err)
		}
		if err := b.Failed(ctx, d.log, "connecting to "+d.t.Display, attempt, err, nil); err != nil {
			return fmt.Errorf("connecting to %s: %w", d.t.Display, err)
		}
	}
}

func (d *pgDatabase) reconnect(ctx context.Context) error {
	d.close()
	return d.connect(ctx)
}

// query runs q. pgx prepares a query with arguments once and runs the
// statement it cached at each poll after. Once the columns of the table
// changed (ALTER TABLE), PostgreSQL refuses to run it, before any row
// (sqldb.StalePlan); and a statement prepared before the cursor column was
// retyped (int to bigint) may refuse, in pgx, an argument of the new type
// that another query (--delay's MAX, prepared since) returned. Either
// way, every statement cached is dropped and the query run once more,
// prepared anew with the table's columns as they are now: the other
// queries on the table are stale as well. An error that comes again is
// the query's.
func (d *pgDatabase) query(ctx context.Context, q string, args ...any) (resultRows, error) {
	r, err := d.query1(ctx, q, args...)
	if err == nil || ctx.Err() != nil || d.conn == nil {
		return r, err
	}
	var pg *pgconn.PgError
	client := !errors.As(err, &pg) && !sqldb.Transient(err) // refused by pgx, not sent
	if !sqldb.StalePlan(err) && !client {
		return r, err
	}
	d.log.Info().Str("error", sqldb.Describe(err)).Msg("the query's statement is stale (the table's columns changed?): preparing the queries again")
	if err := d.conn.DeallocateAll(ctx); err != nil {
		return nil, d.t.Err(err)
	}
	return d.query1(ctx, q, args...)
}

func (d *pgDatabase) query1(ctx context.Context, q string, args ...any) (resultRows, error) {
	if d.conn == nil {
		if err := d.connect(ctx); err != nil {
			return nil, err
		}
	}
	rows, err := d.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, d.t.Err(err)
	}
	if len(rows.FieldDescriptions()) == 0 {
		// pgx reports some errors (a connection lost while idle) only
		// once the rows are read.
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, d.t.Err(err)
		}
		return nil, fmt.Errorf("the query returns no columns")
	}
	r := &pgRows{rows: rows, m: d.conn.TypeMap(), t: d.t}
	// The first row is read here: an error that comes before any row (a
	// stale statement, a bad argument) is the query's.
	if r.next() {
		r.first = true
	} else if err := rows.Err(); err != nil {
		return nil, d.t.Err(err)
	}
	for _, fd := range rows.FieldDescriptions() {
		r.names = append(r.names, fd.Name)
	}
	return r, nil
}

func (d *pgDatabase) close() {
	if d.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5e9)
		d.conn.Close(ctx)
		cancel()
		d.conn = nil
	}
}

type pgRows struct {
	rows  pgx.Rows
	m     *pgtype.Map
	t     *sqldb.Target
	names []string
	raw   [][]byte
	first bool // raw is the first row, read by query and not yet by next
}

func (r *pgRows) columns() []string { return r.names }

func (r *pgRows) next() bool {
	if r.first {
		r.first = false
		return true
	}
	if !r.rows.Next() {
		return false
	}
	r.raw = r.rows.RawValues()
	return true
}

func (r *pgRows) appendJSON(dst []byte, i int) ([]byte, error) {
	fd := r.rows.FieldDescriptions()[i]
	return sqldb.AppendPg(dst, r.m, fd.DataTypeOID, fd.Format, r.raw[i])
}

func (r *pgRows) content(i int) ([]byte, bool) {
	fd := r.rows.FieldDescriptions()[i]
	src := r.raw[i]
	if src == nil {
		return nil, false
	}
	switch fd.DataTypeOID {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.JSONOID, pgtype.XMLOID, pgtype.ByteaOID:
		if fd.DataTypeOID == pgtype.ByteaOID && fd.Format == pgtype.TextFormatCode {
			return nil, false
		}
		return src, true
	case pgtype.JSONBOID:
		if fd.Format == pgtype.BinaryFormatCode && len(src) > 0 && src[0] == 1 {
			return src[1:], true
		}
		return src, true
	}
	if _, known := r.m.TypeForOID(fd.DataTypeOID); !known && fd.Format == pgtype.TextFormatCode {
		return src, true // an enum or a type pgx does not know: its text
	}
	return nil, false
}

func (r *pgRows) cursor(i int) (*cursor, error) {
	fd := r.rows.FieldDescriptions()[i]
	src := r.raw[i]
	if src == nil {
		return nil, nil
	}
	t, ok := r.m.TypeForOID(fd.DataTypeOID)
	if !ok {
		return &cursor{"string", string(src)}, nil
	}
	v, err := t.Codec.DecodeValue(r.m, fd.DataTypeOID, fd.Format, src)
	if err != nil {
		return nil, fmt.Errorf("decoding the cursor column %q: %w", fd.Name, err)
	}
	return cursorOf(v, "")
}

// exactOIDs are the types whose binary values are equal exactly when
// their bytes are (not numeric, 1.0 = 1.00, nor floats, 0 = -0).
var exactOIDs = map[uint32]bool{
	pgtype.Int2OID: true, pgtype.Int4OID: true, pgtype.Int8OID: true, pgtype.TextOID: true, pgtype.VarcharOID: true,
	pgtype.BPCharOID: true, pgtype.NameOID: true, pgtype.TimestampOID: true, pgtype.TimestamptzOID: true,
	pgtype.DateOID: true, pgtype.UUIDOID: true, pgtype.ByteaOID: true, pgtype.BoolOID: true,
}

func (r *pgRows) posKey(dst []byte, cols []int) []byte {
	for _, i := range cols {
		v := r.raw[i]
		if v == nil {
			dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func (r *pgRows) posDecoder(cols []int) func([]byte) (*position, error) {
	all := r.rows.FieldDescriptions()
	fds := make([]pgconn.FieldDescription, len(cols))
	for j, i := range cols {
		fds[j] = all[i]
		if !exactOIDs[fds[j].DataTypeOID] {
			return nil
		}
	}
	m := r.m
	return func(key []byte) (*position, error) {
		var p position
		for j, fd := range fds {
			if len(key) < 4 {
				return nil, fmt.Errorf("a damaged position key")
			}
			n := binary.BigEndian.Uint32(key)
			key = key[4:]
			var c *cursor
			if n != math.MaxUint32 {
				if uint32(len(key)) < n {
					return nil, fmt.Errorf("a damaged position key")
				}
				t, _ := m.TypeForOID(fd.DataTypeOID)
				v, err := t.Codec.DecodeValue(m, fd.DataTypeOID, fd.Format, key[:n])
				if err != nil {
					return nil, fmt.Errorf("decoding column %q: %w", fd.Name, err)
				}
				if c, err = cursorOf(v, ""); err != nil {
					return nil, err
				}
				key = key[n:]
			}
			if j == 0 {
				p.Cursor = c
			} else {
				p.Keys = append(p.Keys, c)
			}
		}
		return &p, nil
	}
}

func (r *pgRows) integer(i int) (int64, bool) {
	fd := r.rows.FieldDescriptions()[i]
	v := r.raw[i]
	if fd.Format != pgtype.BinaryFormatCode {
		return 0, false
	}
	switch {
	case fd.DataTypeOID == pgtype.Int8OID && len(v) == 8:
		return int64(binary.BigEndian.Uint64(v)), true
	case fd.DataTypeOID == pgtype.Int4OID && len(v) == 4:
		return int64(int32(binary.BigEndian.Uint32(v))), true
	case fd.DataTypeOID == pgtype.Int2OID && len(v) == 2:
		return int64(int16(binary.BigEndian.Uint16(v))), true
	}
	return 0, false
}

func (r *pgRows) err() error { return r.t.Err(r.rows.Err()) }
func (r *pgRows) close()     { r.rows.Close() }

// sqlDatabase is MySQL, MariaDB or SQLite through database/sql, whose pool
// reconnects by itself.
type sqlDatabase struct {
	db *sqldb.DB
}

func (d *sqlDatabase) query(ctx context.Context, q string, args ...any) (resultRows, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, d.db.Err(err)
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		rows.Close()
		return nil, d.db.Err(err)
	}
	r := &sqlRows{rows: rows, db: d.db, vals: make([]any, len(types)), ptrs: make([]any, len(types))}
	for i, ct := range types {
		r.names = append(r.names, ct.Name())
		r.types = append(r.types, ct.DatabaseTypeName())
		r.ptrs[i] = &r.vals[i]
	}
	return r, nil
}

func (d *sqlDatabase) reconnect(context.Context) error { return nil }
func (d *sqlDatabase) close()                          { d.db.Close() }

type sqlRows struct {
	rows  *sql.Rows
	db    *sqldb.DB
	names []string
	types []string
	vals  []any
	ptrs  []any
	scan  error
}

func (r *sqlRows) columns() []string { return r.names }

func (r *sqlRows) next() bool {
	if !r.rows.Next() {
		return false
	}
	clear(r.vals)
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.scan = err
		return false
	}
	return true
}

func (r *sqlRows) appendJSON(dst []byte, i int) ([]byte, error) {
	return sqldb.AppendJSON(dst, sqldb.ColumnValue(r.db.Dialect, r.types[i], r.vals[i])), nil
}

func (r *sqlRows) content(i int) ([]byte, bool) {
	switch v := r.vals[i].(type) {
	case []byte:
		return v, true
	case string:
		return []byte(v), true
	}
	return nil, false
}

func (r *sqlRows) cursor(i int) (*cursor, error) {
	return cursorOf(r.vals[i], r.types[i])
}

func (r *sqlRows) posKey(dst []byte, _ []int) []byte                    { return dst }
func (r *sqlRows) posDecoder([]int) func(key []byte) (*position, error) { return nil }

func (r *sqlRows) integer(i int) (int64, bool) {
	n, ok := r.vals[i].(int64)
	return n, ok
}

func (r *sqlRows) err() error {
	if r.scan != nil {
		return r.scan
	}
	return r.db.Err(r.rows.Err())
}

func (r *sqlRows) close() { r.rows.Close() }
