package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
)

// readMax is about the most records one Read returns (a group of rows
// sharing a cursor value is never split, so it may return more).
const readMax = 5000

// resultKind is what the open result is.
type resultKind int

const (
	// page: a --table query with LIMIT --batch-rows: when it is full, the
	// rows of its last cursor value may go on beyond it.
	page resultKind = iota
	// whole: a --query result, read to its end.
	whole
	// equal: every row of one cursor value, which filled a whole page.
	equal
)

type source struct {
	opts   Options
	env    connector.Env
	log    zerolog.Logger
	target *sqldb.Target
	d      sqldb.Dialect
	db     database
	table  string // quoted --table
	col    string // quoted --cursor-column
	tuples bool   // --table with --key-columns: rows are ordered by (cursor, keys)
	hidden int    // the result's last columns are the cursor's and keys' stored values (SQLite), not the row's
	// notNull tells, for each key column, that it is never NULL in a row
	// read (PostgreSQL: declared NOT NULL, or the cursor column itself).
	notNull []bool

	cur      *position // the position of the last row handed over (all of its cursor value's rows, without keys)
	rs       resultRows
	kind     resultKind
	lay      *layout
	page     int  // rows read from rs
	advanced bool // a cursor value was completed in rs
	held     []record.Record
	heldCur  *position // the position of held, the rows not yet handed over

	// Where the driver's bytes tell equal positions exactly (PostgreSQL's
	// integers, timestamps, text...), positions are compared as bytes and
	// decoded only when needed: curKey is cur's bytes while cur is not
	// decoded yet, heldKey held's (heldCur is then nil).
	decodePos func([]byte) (*position, error)
	curKey    []byte
	heldKey   []byte
	rowKey    []byte
	eqValue   *position // a position to read every row of (kind equal), next
	next      time.Time
	marks     []mark // --delay

	warnedTie bool
	failure   error // the transient error to retry after, before the next query
	attempt   int   // failed attempts in a row
	lost      bool  // the connection was lost: say when it is back
	buf       []byte
	readTime  time.Time
}

// mark is the highest cursor value of the table at a time (--delay).
type mark struct {
	at  time.Time
	max *cursor
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	o := *opts
	o.KeyColumns = splitColumns(o.KeyColumns)
	t, err := o.Target()
	if err != nil {
		return nil, err
	}
	s := &source{opts: o, env: env, log: env.Log, target: t, d: t.Dialect, kind: page}
	if o.Table != "" {
		s.table = t.Dialect.QuoteName(o.Table)
		s.col = t.Dialect.Quote(o.CursorColumn)
		s.tuples = len(o.KeyColumns) > 0
		// SQLite's driver turns the text of a column declared DATETIME
		// into a time.Time, which it would give back in another text: the
		// cursor and the keys are also read as the values stored (+col
		// has no declared type), and compared as them.
		if t.Dialect == sqldb.SQLite {
			s.hidden = 1
			if s.tuples {
				s.hidden += len(o.KeyColumns)
			}
		}
	}
	return s, nil
}

// PositionKey names what is read: the dialect, the table or a hash of the
// query, and the cursor column, so that another table or query (on the
// same topic) does not resume from this one's cursor.
func (s *source) PositionKey() string {
	in := "table/" + s.opts.Table
	if s.opts.Query != "" {
		h := sha256.Sum256([]byte(s.opts.Query))
		in = "query/" + hex.EncodeToString(h[:8])
	}
	return string(s.d) + "/" + in + "/" + s.opts.CursorColumn
}

// Open connects, resumes after the saved cursor, and checks that the
// table has the columns the options name.
func (s *source) Open(ctx context.Context, resume []byte) error {
	if resume != nil {
		var p position
		if err := json.Unmarshal(resume, &p); err != nil {
			return fmt.Errorf("the saved position %q is not sql-source's: %w", resume, err)
		}
		if p.Cursor != nil {
			s.cur = &p
		}
	}
	if s.d == sqldb.Postgres {
		db, err := openPostgres(ctx, &s.opts, s.target, s.log)
		if err != nil {
			return err
		}
		s.db = db
	} else {
		db, err := s.opts.Open(ctx, s.log)
		if err != nil {
			return err
		}
		s.db = &sqlDatabase{db: db}
	}
	ev := s.log.Info().Str("cursor_column", s.opts.CursorColumn)
	if s.opts.Table != "" {
		if err := s.describe(ctx); err != nil {
			s.Close()
			return err
		}
		ev = ev.Str("table", s.opts.Table)
	} else {
		ev = ev.Str("query", s.opts.Query)
	}
	switch {
	case s.cur != nil:
		ev.Str("after", s.cur.String()).Msg("resuming after the saved position")
	case s.opts.CursorStart != "":
		ev.Str("after", s.opts.CursorStart).Msg("reading the rows after --cursor-start")
	default:
		ev.Msg("reading every row, then the new ones")
	}
	return nil
}

// describe reads the table's columns (no rows) and checks the options'
// columns against them; an outage is retried.
func (s *source) describe(ctx context.Context) error {
	for {
		rs, err := s.db.query(ctx, s.selectFrom()+"1 = 0")
		if err == nil {
			_, err = s.layout(rs.columns())
			rs.close()
			if err != nil {
				return err
			}
			err = s.readNotNull(ctx)
			if err == nil || !sqldb.Transient(err) && ctx.Err() == nil {
				if err != nil {
					// The key columns are taken as possibly NULL: the
					// rows are read all the same.
					s.log.Debug().Str("error", sqldb.Describe(err)).Msg("the key columns' NOT NULL constraints could not be read")
				}
				return nil
			}
		}
		if !sqldb.Transient(err) || ctx.Err() != nil {
			return fmt.Errorf("reading the columns of table %s: %s", s.opts.Table, sqldb.Describe(err))
		}
		if err := s.retry(ctx, err); err != nil {
			return err
		}
	}
}

// readNotNull finds which key columns are declared NOT NULL (PostgreSQL,
// --table with --key-columns): where one may be NULL, the rows after a
// position are not found by a row comparison, which leaves out the NULLs
// PostgreSQL sorts after every value, but by the form nextQuery writes
// out for MySQL, with k > w OR k IS NULL.
func (s *source) readNotNull(ctx context.Context) error {
	s.notNull = make([]bool, len(s.opts.KeyColumns))
	for i, k := range s.opts.KeyColumns {
		s.notNull[i] = k == s.opts.CursorColumn // rows whose cursor is NULL are not read
	}
	if s.d != sqldb.Postgres || !s.tuples {
		return nil
	}
	rs, err := s.db.query(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attnotnull", s.table)
	if err != nil {
		return err
	}
	defer rs.close()
	for rs.next() {
		c, err := rs.cursor(0)
		if err != nil {
			return err
		}
		for i, k := range s.opts.KeyColumns {
			if c != nil && c.Text == k {
				s.notNull[i] = true
			}
		}
	}
	return rs.err()
}

// Read returns the rows read since the last call, with the cursor after
// them as the position: rows sharing a cursor value are handed over
// together, never split between two positions. It waits for --interval
// between polls that found everything, and retries a lost connection.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	out := make([]record.Record, 0, readMax)
	s.readTime = time.Now()
	for {
		if s.rs == nil {
			if len(out) > 0 {
				return s.batch(out, nil)
			}
			if err := s.query(ctx); err != nil {
				return s.batch(out, err)
			}
			if s.rs == nil {
				continue
			}
		}
		for len(out) < readMax && s.rs.next() {
			rec, c, err := s.record()
			if err != nil {
				return s.batch(out, err)
			}
			if s.decodePos != nil {
				if s.kind != equal {
					s.rowKey = s.rs.posKey(s.rowKey[:0], s.lay.pos)
					if len(s.heldKey) > 0 && bytes.Equal(s.rowKey, s.heldKey) {
						s.tie()
					}
					if len(s.heldKey) > 0 && !bytes.Equal(s.rowKey, s.heldKey) {
						// Every row of the held position has come.
						out = append(out, s.held...)
						s.held = s.held[:0]
						s.curKey, s.heldKey = s.heldKey, s.curKey[:0]
						s.cur, s.advanced = nil, true
					}
					if len(s.heldKey) == 0 {
						s.heldKey = append(s.heldKey, s.rowKey...)
					}
				}
			} else if c != nil && s.kind != equal {
				if s.heldCur != nil && c.equal(s.heldCur) {
					s.tie()
				}
				if s.heldCur != nil && !c.equal(s.heldCur) {
					// --table's rows come in the order its query asks for;
					// a --query's are checked.
					if less, ok := c.Cursor.less(s.heldCur.Cursor); s.opts.Query != "" && ok && less {
						return s.batch(out, fmt.Errorf("the rows do not come in the order of the cursor column %q (%s after %s): the query must ORDER BY it", s.opts.CursorColumn, c.Cursor, s.heldCur.Cursor))
					}
					// Every row of the held value has come.
					out = append(out, s.held...)
					s.held = s.held[:0]
					s.cur, s.curKey, s.advanced = s.heldCur, s.curKey[:0], true
				}
				s.heldCur = c
			}
			s.held = append(s.held, rec)
			s.page++
		}
		if len(out) >= readMax {
			return s.batch(out, nil)
		}
		err := s.rs.err()
		s.rs.close()
		s.rs = nil
		if err != nil {
			// What was held is read again from the cursor.
			s.dropHeld()
			if ctx.Err() != nil {
				return s.batch(out, ctx.Err())
			}
			if !sqldb.Transient(err) {
				return s.batch(out, fmt.Errorf("reading rows: %s", sqldb.Describe(err)))
			}
			s.failure = err
			continue
		}
		if out, err = s.ended(out); err != nil {
			return s.batch(out, err)
		}
	}
}

// tie notes rows that share a cursor value: without key columns, a row
// added later with the last value read would not be seen, which is worth a
// warning, once.
func (s *source) tie() {
	if s.warnedTie || s.opts.Table == "" || len(s.opts.KeyColumns) > 0 {
		return
	}
	s.warnedTie = true
	s.log.Warn().Str("cursor_column", s.opts.CursorColumn).
		Msg("rows share cursor values: they are read together, but a row added later with the last value read is not seen; give --key-columns (a primary key) to order them by it too")
}

// ended handles the end of a result read whole: what it held is handed
// over, unless more rows of the same cursor value may follow.
func (s *source) ended(out []record.Record) ([]record.Record, error) {
	s.next = time.Now()
	holding := s.heldCur != nil || len(s.heldKey) > 0
	switch {
	case s.kind == equal:
		out = append(out, s.held...)
		s.cur, s.curKey = s.eqValue, s.curKey[:0]
		s.eqValue = nil
	case s.kind == page && s.page >= s.opts.BatchRows && holding:
		// A full page: its last cursor value may have more rows beyond
		// it, read with the next page (after the value before). When
		// that value filled the whole page, all of its rows are read
		// at once.
		if !s.advanced {
			held, err := s.heldPosition()
			if err != nil {
				return out, err
			}
			s.eqValue = held
			s.log.Debug().Str("cursor", held.String()).Int("batch_rows", s.opts.BatchRows).
				Msg("more rows share one cursor value than --batch-rows: reading all of them")
		}
	default:
		out = append(out, s.held...)
		switch {
		case len(s.heldKey) > 0:
			s.curKey, s.heldKey = s.heldKey, s.curKey[:0]
			s.cur = nil
		case s.heldCur != nil:
			s.cur, s.curKey = s.heldCur, s.curKey[:0]
		}
		s.next = s.next.Add(s.opts.Interval.D())
	}
	s.dropHeld()
	return out, nil
}

// dropHeld forgets the rows not handed over: they are read again.
func (s *source) dropHeld() {
	s.held, s.heldCur, s.heldKey = s.held[:0], nil, s.heldKey[:0]
}

// heldPosition is the position of the rows held.
func (s *source) heldPosition() (*position, error) {
	if len(s.heldKey) > 0 {
		return s.decodePos(s.heldKey)
	}
	return s.heldCur, nil
}

// position is the position of the last row handed over, nil if none;
// decoded from its bytes if need be.
func (s *source) position() (*position, error) {
	if s.cur == nil && len(s.curKey) > 0 {
		p, err := s.decodePos(s.curKey)
		if err != nil {
			return nil, err
		}
		s.cur, s.curKey = p, s.curKey[:0]
	}
	return s.cur, nil
}

// batch is the records with the position after them, and err (Read's
// return). The records are never handed over without their position,
// which would have them published again after a restart: were the
// position not to decode (a value of a type a cursor cannot be), none is,
// and the error says why.
func (s *source) batch(out []record.Record, err error) (connector.Batch, error) {
	p, perr := s.position()
	if perr != nil {
		perr = fmt.Errorf("the position of the rows read cannot be saved: %w", perr)
		if len(out) > 0 {
			perr = fmt.Errorf("%w; the %d rows read before are not published (read again at the next start)", perr, len(out))
		}
		if err != nil {
			return connector.Batch{}, fmt.Errorf("%w (and %v)", err, perr)
		}
		return connector.Batch{}, perr
	}
	b := connector.Batch{Records: out}
	if p != nil {
		if b.Position, perr = json.Marshal(p); perr != nil {
			return connector.Batch{}, perr
		}
	}
	return b, err
}

// retry waits before trying again after err, a lost connection or a
// server restarting, and reconnects.
func (s *source) retry(ctx context.Context, err error) error {
	s.attempt++
	if !s.lost {
		s.lost = true
		s.env.Reconnecting()
		s.log.Warn().Str("error", sqldb.Describe(err)).Msg("lost the database connection: retrying")
	}
	if err := s.opts.Limit.Backoff().Failed(ctx, s.log, "querying "+s.target.Display, s.attempt, err, nil); err != nil {
		return err
	}
	return s.db.reconnect(ctx)
}

// query waits for the next poll, then runs the query that comes next.
func (s *source) query(ctx context.Context) error {
	if s.failure != nil {
		err := s.failure
		s.failure = nil
		if err := s.retry(ctx, err); err != nil {
			return err
		}
	}
	if err := retry.Sleep(ctx, time.Until(s.next)); err != nil {
		return err
	}
	q, args, kind, err := s.nextQuery(ctx)
	if err != nil || q == "" {
		return err
	}
	rs, err := s.db.query(ctx, q, args...)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sqldb.Transient(err) {
			s.failure = err
			return nil
		}
		return fmt.Errorf("querying: %s", sqldb.Describe(err))
	}
	if s.lost {
		s.lost, s.attempt = false, 0
		s.env.Reconnected()
		s.log.Info().Str("database", s.target.Display).Msg("reconnected to the database")
	}
	s.attempt = 0
	if s.lay, err = s.layout(rs.columns()); err != nil {
		rs.close()
		return err
	}
	s.rs, s.kind, s.page, s.advanced = rs, kind, 0, false
	// A --query's rows are checked to come in cursor order, which needs
	// each one decoded.
	if s.opts.Query == "" {
		if dec := rs.posDecoder(s.lay.pos); dec != nil {
			s.decodePos = dec
		} else {
			s.decodePos = nil
		}
	}
	return nil
}

// nextQuery is the query to run now and its arguments; "" when there is
// nothing to read yet (--delay).
func (s *source) nextQuery(ctx context.Context) (string, []any, resultKind, error) {
	after, err := s.position()
	if err != nil {
		return "", nil, 0, err
	}
	if after == nil && s.opts.CursorStart != "" {
		after = &position{Cursor: &cursor{Text: s.opts.CursorStart}}
	}
	if s.opts.Query != "" {
		var arg any
		if after != nil {
			var err error
			if arg, err = after.Cursor.arg(s.d); err != nil {
				return "", nil, 0, err
			}
		}
		return s.opts.Query, []any{arg}, whole, nil
	}
	var args []any
	// ph adds the arguments and returns their placeholders; "" for a
	// NULL key, which takes none.
	ph := func(p *position) ([]string, error) {
		var out []string
		for _, c := range append([]*cursor{p.Cursor}, p.Keys...) {
			if c == nil {
				out = append(out, "")
				continue
			}
			a, err := c.arg(s.d)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			out = append(out, s.d.Placeholder(len(args)))
		}
		return out, nil
	}
	order := s.col
	if len(s.opts.KeyColumns) > 0 {
		order += ", " + s.quoteAll(s.opts.KeyColumns)
	}
	if s.eqValue != nil {
		phs, err := ph(s.eqValue)
		if err != nil {
			return "", nil, 0, err
		}
		cols := append([]string{s.col}, s.quoteKeys(len(s.eqValue.Keys))...)
		cond := make([]string, len(cols))
		for i, c := range cols {
			if phs[i] == "" {
				cond[i] = c + " IS NULL"
				continue
			}
			cond[i] = c + " = " + phs[i]
		}
		return s.selectFrom() + strings.Join(cond, " AND ") + " ORDER BY " + order, args, equal, nil
	}
	var cond []string
	switch {
	case after == nil:
		cond = append(cond, s.col+" IS NOT NULL")
	case s.tuples && len(after.Keys) == len(s.opts.KeyColumns):
		// (cursor, keys) > (...): rows sharing the cursor value of the
		// last row read come after it by their keys.
		cols := append([]string{s.col}, s.quoteKeys(len(after.Keys))...)
		if s.d == sqldb.Postgres && !after.hasNull() && !slices.Contains(s.notNull, false) {
			phs, err := ph(after)
			if err != nil {
				return "", nil, 0, err
			}
			cond = append(cond, "("+strings.Join(cols, ", ")+") > ("+strings.Join(phs, ", ")+")")
			break
		}
		// MariaDB scans a whole index for a row-value comparison, where
		// it reads a range for this form: c >= v AND (c > v OR (c = v
		// AND (k1 > w OR (k1 = w AND k2 > x)))). A row comparison also
		// leaves out the rows with a NULL key its own values do not
		// decide, which PostgreSQL sorts after the others: there, where a
		// key may be NULL, this form says k1 > w OR k1 IS NULL. And a
		// NULL in the position is compared as the ORDER BY sorts it.
		vals := append([]*cursor{after.Cursor}, after.Keys...)
		nullsFirst := s.d != sqldb.Postgres
		one := func(i int) (string, error) {
			p, err := ph(&position{Cursor: vals[i]})
			if err != nil {
				return "", err
			}
			return p[0], nil
		}
		first, err := one(0)
		if err != nil {
			return "", nil, 0, err
		}
		// gt is column i after the position's value; "" when no value
		// is (PostgreSQL: after NULL).
		gt := func(i int) (string, error) {
			switch {
			case vals[i] == nil && nullsFirst:
				return cols[i] + " IS NOT NULL", nil
			case vals[i] == nil:
				return "", nil
			}
			v, err := one(i)
			if err != nil {
				return "", err
			}
			if !nullsFirst && i > 0 && !s.notNull[i-1] {
				return "(" + cols[i] + " > " + v + " OR " + cols[i] + " IS NULL)", nil
			}
			return cols[i] + " > " + v, nil
		}
		// none reports whether no row is after the position from column
		// i on (PostgreSQL: NULLs to the end).
		none := func(i int) bool {
			for ; i < len(cols); i++ {
				if vals[i] != nil || nullsFirst {
					return false
				}
			}
			return true
		}
		// The placeholders are numbered (PostgreSQL) or taken in order (?):
		// the text is written, and the arguments added, from the left.
		var after func(i int) (string, error)
		after = func(i int) (string, error) {
			g, err := gt(i)
			if err != nil || i == len(cols)-1 || none(i+1) {
				return g, err
			}
			eq := cols[i] + " IS NULL"
			if vals[i] != nil {
				v, err := one(i)
				if err != nil {
					return "", err
				}
				eq = cols[i] + " = " + v
			}
			rest, err := after(i + 1)
			if err != nil {
				return "", err
			}
			if g == "" {
				return eq + " AND (" + rest + ")", nil
			}
			return g + " OR (" + eq + " AND (" + rest + "))", nil
		}
		tail, err := after(0)
		if err != nil {
			return "", nil, 0, err
		}
		cond = append(cond, s.col+" >= "+first+" AND ("+tail+")")
	default:
		phs, err := ph(&position{Cursor: after.Cursor})
		if err != nil {
			return "", nil, 0, err
		}
		cond = append(cond, s.col+" > "+phs[0])
	}
	if s.opts.Delay > 0 {
		bound, err := s.bound(ctx)
		if err != nil || bound == nil {
			return "", nil, 0, err
		}
		phs, err := ph(&position{Cursor: bound})
		if err != nil {
			return "", nil, 0, err
		}
		cond = append(cond, s.col+" <= "+phs[0])
	}
	q := s.selectFrom() + strings.Join(cond, " AND ") + " ORDER BY " + order + " LIMIT " + strconv.Itoa(s.opts.BatchRows)
	return q, args, page, nil
}

// quoteKeys is the first n key columns, quoted.
func (s *source) quoteKeys(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = s.d.Quote(s.opts.KeyColumns[i])
	}
	return out
}

// selectFrom is the start of the --table queries, up to WHERE.
func (s *source) selectFrom() string {
	sel := "SELECT *"
	if s.hidden > 0 {
		sel += ", +" + s.col
		for _, k := range s.quoteKeys(s.hidden - 1) {
			sel += ", +" + k
		}
	}
	return sel + " FROM " + s.table + " WHERE "
}

func (s *source) quoteAll(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = s.d.Quote(c)
	}
	return strings.Join(q, ", ")
}

// bound is, with --delay, the highest cursor value the table held at
// least --delay ago: rows up to it are read. Nil when there is none yet:
// s.next says when to look again.
func (s *source) bound(ctx context.Context) (*cursor, error) {
	now := time.Now()
	if n := len(s.marks); n == 0 || now.Sub(s.marks[n-1].at) >= 100*time.Millisecond {
		rs, err := s.db.query(ctx, "SELECT MAX("+s.col+") FROM "+s.table)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if sqldb.Transient(err) {
				s.failure = err
				return nil, nil
			}
			return nil, fmt.Errorf("querying: %s", sqldb.Describe(err))
		}
		var max *cursor
		if rs.next() {
			max, err = rs.cursor(0)
		}
		if rerr := rs.err(); err == nil {
			err = rerr
		}
		rs.close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if sqldb.Transient(err) {
				s.failure = err
				return nil, nil
			}
			return nil, err
		}
		s.marks = append(s.marks, mark{now, max})
	}
	delay := s.opts.Delay.D()
	i := -1
	for j, m := range s.marks {
		if now.Sub(m.at) >= delay {
			i = j
		}
	}
	if i < 0 {
		s.next = s.marks[0].at.Add(delay)
		return nil, nil
	}
	s.marks = s.marks[i:]
	cur, err := s.position()
	if err != nil {
		return nil, err
	}
	if s.marks[0].max == nil || (cur != nil && !s.before(cur, s.marks[0].max)) {
		// Nothing past the cursor that is old enough.
		s.next = now.Add(min(s.opts.Interval.D(), delay))
		return nil, nil
	}
	return s.marks[0].max, nil
}

// before reports whether rows may come after the position p up to the
// cursor value max: p's cursor is before max, or, with --key-columns, p
// is a row among those of max (a page ended there), or that cannot be
// told here (then the database tells).
func (s *source) before(p *position, max *cursor) bool {
	less, ok := p.Cursor.less(max)
	if !ok || less {
		return true
	}
	return s.tuples && len(p.Keys) == len(s.opts.KeyColumns) && p.Cursor.equal(max)
}

// layout is where the columns the options name are in a result, and the
// JSON of the other columns' names.
type layout struct {
	n       int      // the row's columns (without the hidden ones)
	names   [][]byte // {"name": and ,"name":
	cursor  int
	keys    []int
	keyPfx  [][]byte
	posKeys []int // the columns of the keys' values in the position (--table with --key-columns)
	pos     []int // the cursor's column, then posKeys
	value   int   // --value-column, or -1
}

func (s *source) layout(cols []string) (*layout, error) {
	l := &layout{n: len(cols) - s.hidden, value: -1}
	if l.n < 1 {
		return nil, fmt.Errorf("the query returns no columns")
	}
	what := "table " + s.opts.Table
	if s.opts.Query != "" {
		what = "--query's result"
	}
	find := func(option, name string) (int, error) {
		if i := findColumn(cols[:l.n], name); i >= 0 {
			return i, nil
		}
		return -1, fmt.Errorf("%s: %s has no column %q (its columns: %s)", option, what, name, strings.Join(cols[:l.n], ", "))
	}
	var err error
	if l.cursor, err = find("--cursor-column", s.opts.CursorColumn); err != nil {
		return nil, err
	}
	if s.hidden > 0 {
		l.cursor = l.n
	}
	for i, k := range s.opts.KeyColumns {
		j, err := find("--key-columns", k)
		if err != nil {
			return nil, err
		}
		l.keys = append(l.keys, j)
		p := []byte{','}
		if i == 0 {
			p[0] = '{'
		}
		p = sqldb.AppendJSON(p, cols[j])
		l.keyPfx = append(l.keyPfx, append(p, ':'))
		if s.tuples {
			if s.hidden > 0 {
				j = l.n + 1 + i
			}
			l.posKeys = append(l.posKeys, j)
		}
	}
	if s.opts.ValueColumn != "" {
		if l.value, err = find("--value-column", s.opts.ValueColumn); err != nil {
			return nil, err
		}
	}
	l.pos = append([]int{l.cursor}, l.posKeys...)
	for i, c := range cols[:l.n] {
		p := []byte{','}
		if i == 0 {
			p[0] = '{'
		}
		p = sqldb.AppendJSON(p, c)
		l.names = append(l.names, append(p, ':'))
	}
	return l, nil
}

// findColumn finds name among cols: exactly, or else without regard to
// case if only one matches (PostgreSQL folds unquoted names to lower case).
func findColumn(cols []string, name string) int {
	found, n := -1, 0
	for i, c := range cols {
		if c == name {
			return i
		}
		if strings.EqualFold(c, name) {
			found, n = i, n+1
		}
	}
	if n != 1 {
		return -1
	}
	return found
}

// record makes the current row into a record, and returns its position
// (nil when its cursor is NULL).
func (s *source) record() (record.Record, *position, error) {
	l := s.lay
	var pos *position
	var offset int64
	var err error
	if s.decodePos == nil {
		if pos, err = s.rowPosition(); err != nil {
			return record.Record{}, nil, err
		}
		if pos != nil && pos.Cursor.Kind == "int" {
			offset, _ = strconv.ParseInt(pos.Cursor.Text, 10, 64)
		}
	} else if n, ok := s.rs.integer(l.cursor); ok {
		offset = n
	}
	if cap(s.buf)-len(s.buf) < 16<<10 {
		// A new slab: the records keep the old one.
		s.buf = make([]byte, 0, 512<<10)
	}
	start := len(s.buf)
	if l.value >= 0 {
		if b, ok := s.rs.content(l.value); ok {
			s.buf = append(s.buf, b...)
		} else if s.buf, err = s.rs.appendJSON(s.buf, l.value); err != nil {
			return record.Record{}, nil, fmt.Errorf("column %q: %w", s.opts.ValueColumn, err)
		}
	} else {
		for i := 0; i < l.n; i++ {
			s.buf = append(s.buf, l.names[i]...)
			if s.buf, err = s.rs.appendJSON(s.buf, i); err != nil {
				return record.Record{}, nil, fmt.Errorf("column %d: %w", i+1, err)
			}
		}
		if l.n == 0 {
			s.buf = append(s.buf, '{')
		}
		s.buf = append(s.buf, '}')
	}
	rec := record.Record{Value: s.buf[start:len(s.buf):len(s.buf)], Time: s.readTime}
	if len(l.keys) > 0 {
		start = len(s.buf)
		for i, k := range l.keys {
			s.buf = append(s.buf, l.keyPfx[i]...)
			if s.buf, err = s.rs.appendJSON(s.buf, k); err != nil {
				return record.Record{}, nil, fmt.Errorf("key column %q: %w", s.opts.KeyColumns[i], err)
			}
		}
		s.buf = append(s.buf, '}')
		rec.Key = s.buf[start:len(s.buf):len(s.buf)]
	}
	rec.Offset = offset
	return rec, pos, nil
}

// rowPosition decodes the current row's position: its cursor, and its
// keys (--table with --key-columns); nil when the cursor is NULL.
func (s *source) rowPosition() (*position, error) {
	l := s.lay
	c, err := s.rs.cursor(l.cursor)
	if err != nil || c == nil {
		return nil, err
	}
	pos := &position{Cursor: c}
	for _, k := range l.posKeys {
		kc := c
		if k != l.cursor {
			if kc, err = s.rs.cursor(k); err != nil {
				return nil, err
			}
		}
		pos.Keys = append(pos.Keys, kc) // nil for NULL
	}
	return pos, nil
}

// Close closes the result and the connection.
func (s *source) Close() error {
	if s.rs != nil {
		s.rs.close()
		s.rs = nil
	}
	if s.db != nil {
		s.db.close()
		s.db = nil
	}
	return nil
}

var _ connector.Positioned = (*source)(nil)
