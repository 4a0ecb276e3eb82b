package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// session runs statements on one connection, in the transaction the
// statements BEGIN and COMMIT make.
type session interface {
	// exec runs a statement that returns no rows; without args, it may
	// hold several statements (PostgreSQL).
	exec(ctx context.Context, query string, args ...any) error
	// copyIn runs COPY ... FROM STDIN with data in the text format
	// (PostgreSQL only).
	copyIn(ctx context.Context, query string, data []byte) error
}

type pgSession struct{ c *pgx.Conn }

func (s pgSession) exec(ctx context.Context, query string, args ...any) error {
	if len(args) == 0 {
		_, err := s.c.PgConn().Exec(ctx, query).ReadAll()
		return err
	}
	_, err := s.c.Exec(ctx, query, args...)
	return err
}

func (s pgSession) copyIn(ctx context.Context, query string, data []byte) error {
	_, err := s.c.PgConn().CopyFrom(ctx, bytes.NewReader(data), query)
	return err
}

// copyStream is a COPY ... FROM STDIN whose rows are written as they are
// made (PostgreSQL): the server parses them meanwhile. It is in the
// binary format when every column's type has one (see binary.go).
type copyStream struct {
	op     *op
	binary bool
	pw     *io.PipeWriter
	done   chan error
	buf    []byte
}

var errCopyEnded = errors.New("the COPY ended")

func (s pgSession) stream(ctx context.Context, o *op, buf []byte) *copyStream {
	pr, pw := io.Pipe()
	cs := &copyStream{op: o, pw: pw, done: make(chan error, 1), buf: buf[:0]}
	cs.binary = !o.t.textOnly.Load() && binaryColumns(o.cols)
	q := "COPY " + o.t.quoted + " " + columnList(o.cols) + " FROM STDIN"
	if cs.binary {
		q += " (FORMAT binary)"
		cs.buf = append(cs.buf, copyHeader...)
	}
	go func() {
		_, err := s.c.PgConn().CopyFrom(ctx, pr, q)
		pr.CloseWithError(errCopyEnded)
		cs.done <- err
	}()
	return cs
}

// add adds a row; the rows go to the server 64 KiB at a time.
func (cs *copyStream) add(o *op) error {
	if cs.binary {
		var err error
		if cs.buf, err = appendBinaryRow(cs.buf, o); err != nil {
			// The COPY is abandoned, and the table written in the text
			// format from now on.
			o.t.textOnly.Store(true)
			cs.pw.CloseWithError(err)
			<-cs.done
			return fmt.Errorf("table %s, %w", o.t.name, err)
		}
	} else {
		for i, v := range o.vals {
			if i > 0 {
				cs.buf = append(cs.buf, '\t')
			}
			cs.buf = appendCopy(cs.buf, v)
		}
		cs.buf = append(cs.buf, '\n')
	}
	if len(cs.buf) < 64<<10 {
		return nil
	}
	return cs.flush()
}

func (cs *copyStream) flush() error {
	_, err := cs.pw.Write(cs.buf)
	cs.buf = cs.buf[:0]
	if err != nil {
		return cs.close()
	}
	return nil
}

// close ends the COPY and returns its outcome.
func (cs *copyStream) close() error {
	if cs.binary {
		cs.buf = append(cs.buf, copyTrailer...)
	}
	if len(cs.buf) > 0 {
		cs.pw.Write(cs.buf)
		cs.buf = cs.buf[:0]
	}
	cs.pw.Close()
	return <-cs.done
}

type sqlSession struct{ c *sql.Conn }

func (s sqlSession) exec(ctx context.Context, query string, args ...any) error {
	_, err := s.c.ExecContext(ctx, query, args...)
	return err
}

func (sqlSession) copyIn(context.Context, string, []byte) error {
	return errors.New("COPY is PostgreSQL's")
}

// rowError is an error that the database tied to one row of a statement:
// item is the index of that row's item among those the statement ran.
type rowError struct {
	err  error
	item int
}

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// rejection is an item the database refused, and why.
type rejection struct {
	item item
	err  error
}

// writeItems writes items in one transaction. When the database refuses
// some (a constraint, a bad value), the transaction starts over and
// isolates them by splitting the items (see isolate): they are returned,
// and the others commit. Any other error is returned as it is.
func (s *sink) writeItems(ctx context.Context, sess session, items []item) ([]rejection, error) {
	if err := s.begin(ctx, sess); err != nil {
		return nil, err
	}
	err := s.run(ctx, sess, items)
	if err == nil {
		return nil, s.end(ctx, sess, "COMMIT")
	}
	if rerr := s.end(ctx, sess, "ROLLBACK"); rerr != nil || !s.rowLevel(err) {
		return nil, err
	}
	if err := s.begin(ctx, sess); err != nil {
		return nil, err
	}
	s.attempts = 0
	rej, err := s.isolate(ctx, sess, items, err)
	if err != nil {
		s.end(ctx, sess, "ROLLBACK")
		return nil, err
	}
	s.log.Debug().Int("records", len(items)).Int("refused", len(rej)).Int("attempts", s.attempts).
		Msg("the database refused rows of the batch: isolated them under savepoints")
	return rej, s.end(ctx, sess, "COMMIT")
}

// begin begins a transaction.
func (s *sink) begin(ctx context.Context, sess session) error {
	begin := "BEGIN"
	if s.db.Dialect == sqldb.SQLite {
		begin = "BEGIN IMMEDIATE" // takes the write lock now, not halfway
	}
	if s.db.Dialect == sqldb.MySQL {
		// DATETIME has no zone: times are written in UTC (see mysqlArg),
		// and TIMESTAMP columns read them as UTC.
		if err := sess.exec(ctx, "SET time_zone = '+00:00'"); err != nil {
			return err
		}
	}
	return sess.exec(ctx, begin)
}

// end commits or rolls back.
func (s *sink) end(ctx context.Context, sess session, stmt string) error {
	return sess.exec(ctx, stmt)
}

// isolate finds the items that the database refuses, within the open
// transaction: it tries parts of items, each under a savepoint, and
// splits a part that fails, around the row the error names when it names
// one, else in halves, down to single items, which are rejected. With k
// refused items of n, that is O(k log n) statements. cause is the error
// items as a whole failed with.
func (s *sink) isolate(ctx context.Context, sess session, items []item, cause error) ([]rejection, error) {
	if len(items) == 1 {
		return []rejection{{items[0], cause}}, nil
	}
	var parts [][]item
	var re *rowError
	if errors.As(cause, &re) && re.item < len(items) {
		h := re.item
		parts = [][]item{items[:h], items[h : h+1], items[h+1:]}
	} else {
		m := len(items) / 2
		parts = [][]item{items[:m], items[m:]}
	}
	var rejected []rejection
	for _, part := range parts {
		if len(part) == 0 {
			continue
		}
		if err := sess.exec(ctx, "SAVEPOINT culvert"); err != nil {
			return nil, err
		}
		s.attempts++
		err := s.run(ctx, sess, part)
		if err == nil {
			if err := sess.exec(ctx, "RELEASE SAVEPOINT culvert"); err != nil {
				return nil, err
			}
			continue
		}
		if sqldb.Transient(s.db.Err(err)) {
			// A deadlock, a lock wait timeout, a serialization failure or
			// a lost connection: InnoDB rolls back the whole transaction
			// on a deadlock, savepoints included (ROLLBACK TO SAVEPOINT
			// would fail with error 1305 and hide the deadlock), and
			// PostgreSQL's 40001/40P01 ask for the transaction to be
			// tried again. The write fails as transient (see failed) and
			// the runner writes the batch again.
			return nil, err
		}
		if rerr := sess.exec(ctx, "ROLLBACK TO SAVEPOINT culvert"); rerr != nil {
			return nil, rerr
		}
		if rerr := sess.exec(ctx, "RELEASE SAVEPOINT culvert"); rerr != nil {
			return nil, rerr
		}
		if !s.rowLevel(err) {
			return nil, err
		}
		r, err := s.isolate(ctx, sess, part, err)
		if err != nil {
			return nil, err
		}
		rejected = append(rejected, r...)
	}
	return rejected, nil
}

// rowLevel reports whether err is the database refusing rows (a
// constraint, a value of the wrong type, a trigger's exception), which
// isolating them deals with; not a lost connection, a missing table or
// a statement the database refuses whatever the rows.
func (s *sink) rowLevel(err error) bool {
	return !sqldb.Transient(err) && !fatal(err) && !missing(err)
}

// fatal reports whether err is about the statement or the setup rather
// than the rows: syntax, access rules (no privilege, no unique key that
// matches --key-columns), authentication, a feature the database lacks.
func fatal(err error) bool {
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff {
		case 18, 19, 20, 25: // too big, constraint, mismatch, range
			return false
		}
		return true
	}
	code := sqldb.Code(err)
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "42", "28", "3D", "3F", "0A", "XX":
		return true
	}
	return false
}

// missing reports whether err says that a table or a column the sink
// knew of is not there (dropped or altered meanwhile).
func missing(err error) bool {
	switch sqldb.Code(err) {
	case "42P01", "42703", "42S02", "42S22":
		return true
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		m := lite.Error()
		return strings.Contains(m, "no such table") || strings.Contains(m, "no such column") || strings.Contains(m, "has no column named")
	}
	return false
}

// flatOp is an op with the index of its item.
type flatOp struct {
	item int
	op   *op
}

// run runs the ops of items in order: consecutive ops of the same kind on
// the same columns of a table make one statement (or a few, within the
// database's limits).
func (s *sink) run(ctx context.Context, sess session, items []item) error {
	flat := s.flat[:0]
	for i := range items {
		for j := range items[i].ops {
			flat = append(flat, flatOp{i, &items[i].ops[j]})
		}
	}
	s.flat = flat
	for i := 0; i < len(flat); {
		j := i + 1
		for j < len(flat) && sameStatement(flat[i].op, flat[j].op) {
			j++
		}
		if err := s.group(ctx, sess, flat[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// runStreaming is run for pipelined writes on PostgreSQL: rows to insert
// go into one COPY stream, *cs, across calls while they are for the same
// table and columns; the caller closes the last stream.
func (s *sink) runStreaming(ctx context.Context, sess pgSession, items []item, cs **copyStream) error {
	flat := s.flat[:0]
	for i := range items {
		for j := range items[i].ops {
			flat = append(flat, flatOp{i, &items[i].ops[j]})
		}
	}
	s.flat = flat
	end := func() error {
		if *cs == nil {
			return nil
		}
		err := (*cs).close()
		s.buf, *cs = (*cs).buf, nil
		return err
	}
	for i := 0; i < len(flat); {
		o := flat[i].op
		if o.kind == opInsert {
			if *cs != nil && !sameStatement((*cs).op, o) {
				if err := end(); err != nil {
					return err
				}
			}
			if *cs == nil {
				*cs = sess.stream(ctx, o, s.buf)
			}
			if err := (*cs).add(o); err != nil {
				*cs = nil
				return err
			}
			i++
			continue
		}
		if err := end(); err != nil {
			return err
		}
		j := i + 1
		for j < len(flat) && sameStatement(o, flat[j].op) {
			j++
		}
		if err := s.group(ctx, sess, flat[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func sameStatement(a, b *op) bool {
	if a.t != b.t || a.kind != b.kind || len(a.cols) != len(b.cols) || len(a.keys) != len(b.keys) {
		return false
	}
	for i := range a.cols {
		if a.cols[i] != b.cols[i] {
			return false
		}
	}
	for i := range a.keys {
		if a.keys[i] != b.keys[i] {
			return false
		}
	}
	return true
}

// group runs ops that make one statement.
func (s *sink) group(ctx context.Context, sess session, ops []flatOp) error {
	first := ops[0].op
	var err error
	switch {
	case first.kind == opTruncate:
		q := "DELETE FROM " + first.t.quoted
		if s.db.Dialect == sqldb.Postgres {
			q = "TRUNCATE " + first.t.quoted
		}
		err = sess.exec(ctx, q)
	case first.kind == opDelete:
		err = s.delete(ctx, sess, ops)
	case first.kind == opUpsert:
		// Multi-row INSERT ... ON CONFLICT on PostgreSQL too: COPY into
		// a temporary table, then INSERT ... SELECT ... ON CONFLICT, took
		// 1.3 times as long (200,000 orders in chunks of 1,024).
		err = s.insertRows(ctx, sess, lastPerKey(ops))
	case s.db.Dialect == sqldb.Postgres:
		err = s.copyInsert(ctx, sess, ops)
	default:
		err = s.insertRows(ctx, sess, ops)
	}
	if err != nil {
		var re *rowError
		if errors.As(err, &re) && re.item >= 0 && re.item < len(ops) {
			re.item = ops[re.item].item
			return re
		}
		return fmt.Errorf("writing to table %s: %w", first.t.name, err)
	}
	return nil
}

// lastPerKey keeps, of upserts with the same key, the last: PostgreSQL
// refuses a statement that updates a row twice, and the last one is what
// the row ends up as anyway (the rows have the same columns).
func lastPerKey(ops []flatOp) []flatOp {
	if len(ops) < 2 {
		return ops
	}
	keyIdx := make([]int, len(ops[0].op.keys))
	for i, k := range ops[0].op.keys {
		for j, c := range ops[0].op.cols {
			if c == k {
				keyIdx[i] = j
			}
		}
	}
	seen := make(map[string]bool, len(ops))
	var b []byte
	out := make([]flatOp, 0, len(ops))
	for i := len(ops) - 1; i >= 0; i-- {
		b = b[:0]
		for _, j := range keyIdx {
			v := ops[i].op.vals[j]
			b = append(b, byte(v.kind))
			b = strconv.AppendInt(b, int64(len(v.raw)), 10)
			b = append(b, ':')
			b = append(b, v.raw...)
		}
		if seen[string(b)] {
			continue
		}
		seen[string(b)] = true
		out = append(out, ops[i])
	}
	if len(out) == len(ops) {
		return ops
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// columnList is "(a, b, c)" of the quoted columns.
func columnList(cols []*column) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.quoted)
	}
	b.WriteByte(')')
	return b.String()
}

// copyData is the rows of ops in COPY's text format.
func (s *sink) copyData(ops []flatOp) []byte {
	b := s.buf[:0]
	for _, o := range ops {
		for i, v := range o.op.vals {
			if i > 0 {
				b = append(b, '\t')
			}
			b = appendCopy(b, v)
		}
		b = append(b, '\n')
	}
	s.buf = b
	return b
}

var copyLine = regexp.MustCompile(`COPY .*, line (\d+)`)

// copyErr ties a COPY's error to the row it names (CONTEXT: COPY t, line n).
func copyErr(err error, rows int) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		if m := copyLine.FindStringSubmatch(pg.Where); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= rows {
				return &rowError{err: err, item: n - 1}
			}
		}
	}
	return err
}

// copyInsert inserts the rows with COPY (PostgreSQL, --mode insert).
func (s *sink) copyInsert(ctx context.Context, sess session, ops []flatOp) error {
	first := ops[0].op
	q := "COPY " + first.t.quoted + " " + columnList(first.cols) + " FROM STDIN"
	return copyErr(sess.copyIn(ctx, q, s.copyData(ops)), len(ops))
}

// onConflict is the clause that makes an INSERT of op's columns an
// upsert by its keys.
func (s *sink) onConflict(o *op) string {
	var b strings.Builder
	var set []*column
	for _, c := range o.cols {
		isKey := false
		for _, k := range o.keys {
			isKey = isKey || k == c
		}
		if !isKey {
			set = append(set, c)
		}
	}
	if s.db.Dialect == sqldb.MySQL {
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
		if len(set) == 0 {
			set = o.keys[:1] // a no-op update: the row is there already
		}
		for i, c := range set {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c.quoted + " = VALUES(" + c.quoted + ")")
		}
		return b.String()
	}
	b.WriteString(" ON CONFLICT ")
	b.WriteString(columnList(o.keys))
	if len(set) == 0 {
		b.WriteString(" DO NOTHING")
		return b.String()
	}
	b.WriteString(" DO UPDATE SET ")
	for i, c := range set {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.quoted + " = excluded." + c.quoted)
	}
	return b.String()
}

// Limits of one statement: the parameters every database takes (SQLite's
// default is 32,766) and the bytes of values, well within MySQL's default
// max_allowed_packet of 16 MiB.
const (
	maxParams      = 65535
	maxSQLiteParam = 32766
	maxStmtBytes   = 4 << 20
)

func (s *sink) maxParams() int {
	if s.db.Dialect == sqldb.SQLite {
		return maxSQLiteParam
	}
	return maxParams
}

// placeholder writes the n-th (from 1) query parameter: $n for
// PostgreSQL, ? for the others.
func (s *sink) placeholder(b *strings.Builder, n int) {
	if s.db.Dialect != sqldb.Postgres {
		b.WriteByte('?')
		return
	}
	b.WriteByte('$')
	b.WriteString(strconv.Itoa(n))
}

// arg is v as the dialect's query argument for column c.
func (s *sink) arg(v jval, c *column) any {
	switch s.db.Dialect {
	case sqldb.MySQL:
		return mysqlArg(v, c)
	case sqldb.SQLite:
		return sqliteArg(v)
	}
	return pgArg(v)
}

var mysqlRow = regexp.MustCompile(` at row (\d+)`)

// insertRows inserts (or upserts) the rows with multi-row INSERT
// statements: MySQL and SQLite, and upserts on PostgreSQL.
func (s *sink) insertRows(ctx context.Context, sess session, ops []flatOp) error {
	first := ops[0].op
	head := "INSERT INTO " + first.t.quoted + " " + columnList(first.cols) + " VALUES "
	tail := ""
	if first.kind == opUpsert {
		tail = s.onConflict(first)
	}
	n := len(first.cols)
	for start := 0; start < len(ops); {
		var b strings.Builder
		b.WriteString(head)
		args := s.args[:0]
		size, end := 0, start
		for ; end < len(ops) && (end == start || (len(args)+n <= s.maxParams() && size < maxStmtBytes)); end++ {
			if end > start {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for i, v := range ops[end].op.vals {
				if i > 0 {
					b.WriteByte(',')
				}
				s.placeholder(&b, len(args)+1)
				args = append(args, s.arg(v, first.cols[i]))
				size += len(v.raw)
			}
			b.WriteByte(')')
		}
		b.WriteString(tail)
		s.args = args
		if err := sess.exec(ctx, b.String(), args...); err != nil {
			var my *mysql.MySQLError
			if errors.As(err, &my) {
				if m := mysqlRow.FindStringSubmatch(my.Message); m != nil {
					if r, _ := strconv.Atoi(m[1]); r >= 1 && start+r-1 < end {
						return &rowError{err: err, item: start + r - 1}
					}
				}
			}
			if end-start == 1 {
				return &rowError{err: err, item: start}
			}
			return err
		}
		start = end
	}
	return nil
}

// delete deletes rows by their keys: WHERE k IN (...), or with several key
// columns (k1 = ? AND k2 = ?) OR ...
func (s *sink) delete(ctx context.Context, sess session, ops []flatOp) error {
	first := ops[0].op
	keys := first.cols
	n := len(keys)
	for start := 0; start < len(ops); {
		var b strings.Builder
		b.WriteString("DELETE FROM " + first.t.quoted + " WHERE ")
		if n == 1 {
			b.WriteString(keys[0].quoted + " IN (")
		}
		args := s.args[:0]
		end := start
		for ; end < len(ops) && (end == start || len(args)+n <= s.maxParams()); end++ {
			if end > start {
				if n == 1 {
					b.WriteByte(',')
				} else {
					b.WriteString(" OR ")
				}
			}
			if n > 1 {
				b.WriteByte('(')
			}
			for i, v := range ops[end].op.vals {
				if n > 1 {
					if i > 0 {
						b.WriteString(" AND ")
					}
					b.WriteString(keys[i].quoted + " = ")
				}
				s.placeholder(&b, len(args)+1)
				args = append(args, s.arg(v, keys[i]))
			}
			if n > 1 {
				b.WriteByte(')')
			}
		}
		if n == 1 {
			b.WriteByte(')')
		}
		s.args = args
		if err := sess.exec(ctx, b.String(), args...); err != nil {
			if end-start == 1 {
				return &rowError{err: err, item: start}
			}
			return err
		}
		start = end
	}
	return nil
}
