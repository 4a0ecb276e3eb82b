package main

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// HeaderSQLState is the dead-letter header with the SQLSTATE (SQLite: the
// result code, SQLITE_<n>) of a row the database refused.
const HeaderSQLState = "culvert.sql.state"

type sink struct {
	opts   Options
	p      *parsedOptions
	env    connector.Env
	log    zerolog.Logger
	db     *sqldb.DB
	tables map[string]*table
	down   bool // the connection was lost: reconnect before the next write
	// batch counts the writes (from 1), for table.described.
	batch int
	// attempts counts the parts of a batch tried while isolating refused
	// rows (logged).
	attempts int

	// Scratch space, reused from write to write.
	names   names
	fields  []field
	colSlab []*column
	valSlab []jval
	opSlab  []op
	flat    []flatOp
	buf     []byte
	args    []any
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	p, err := opts.parse()
	if err != nil {
		return nil, err
	}
	if f := env.Format.Name(); f != format.JSON {
		return nil, schema.Invalid("format", "sql-sink writes the fields of JSON values to columns: --format %s does not apply (leave --format out)", f)
	}
	return &sink{opts: *opts, p: p, env: env, log: env.Log, tables: map[string]*table{}}, nil
}

// Open connects (retrying with --max-retries' backoff) and checks that
// the --table exists unless --auto-create may make it.
func (s *sink) Open(ctx context.Context) error {
	db, err := s.opts.Open(ctx, s.log)
	if err != nil {
		return err
	}
	s.db = db
	if s.p.table != "" {
		t, err := describe(ctx, db, s.p.table)
		if err != nil {
			return err
		}
		if t == nil && !s.opts.AutoCreate {
			return fmt.Errorf("table %s does not exist in %s: create it, or give --auto-create", s.p.table, db.Display)
		}
		if t != nil {
			for _, k := range s.p.keyColumns {
				if t.column(k) == nil {
					return fmt.Errorf("--key-columns: %q is not a column of table %s", k, t.name)
				}
			}
			if !s.opts.AutoEvolve {
				// Else every record would be a dead letter.
				for _, c := range s.p.columns {
					if t.column(c) == nil {
						return schema.Invalid("columns", "%q is not a column of table %s: add the column, leave it out of --columns, or give --auto-evolve", c, t.name)
					}
				}
			}
			s.tables[t.name] = t
		}
	}
	mode := s.opts.Mode
	if s.opts.CDC {
		mode = "cdc"
	}
	s.log.Info().Str("table", s.opts.Table).Str("mode", mode).Str("dialect", string(db.Dialect)).Msg("ready to write")
	return nil
}

// Write writes recs in one database transaction and returns once it
// committed. Records that cannot be written (not a JSON object, no such
// column, refused by the database) are rejected with why; a lost
// connection is transient: the runner writes the batch again once the
// database is back (see reconnect).
//
// The records are read and written in chunks, the next chunk read while
// the database writes the last (see pipelined); a batch that needs a
// table made or a column added, or has rows that the database refuses,
// is then read and written whole (see whole).
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	if err := s.reconnect(ctx); err != nil {
		return err
	}
	s.batch++
	s.resetScratch()
	rejected, err := s.pipelined(ctx, recs)
	if errors.Is(err, errWhole) {
		s.resetScratch()
		rejected, err = s.whole(ctx, recs)
	}
	if err != nil {
		return s.failed(ctx, err)
	}
	if len(rejected) == 0 {
		return nil
	}
	// In the order of the records, as they were on the topic.
	sort.Slice(rejected, func(i, j int) bool { return rejected[i].item.rec < rejected[j].item.rec })
	out := make([]connector.RejectedRecord, len(rejected))
	for i, r := range rejected {
		out[i] = s.rejected(recs[r.item.rec], r.err)
	}
	return &connector.Rejected{Records: out}
}

// resetScratch empties the scratch space of plan, for a new batch.
func (s *sink) resetScratch() {
	s.fields, s.colSlab, s.valSlab, s.opSlab = s.fields[:0], s.colSlab[:0], s.valSlab[:0], s.opSlab[:0]
}

// errWhole says that a batch must be written by whole.
var errWhole = errors.New("write the batch whole")

// chunk is the records read at a time by pipelined.
const chunk = 1024

// pipelined writes recs in one transaction, chunk records at a time: a
// goroutine reads the next chunk while the database writes the last, as
// a client library encodes rows while the server parses them. It returns
// errWhole, having rolled back, when a chunk needs a table made or a
// column added (that would wait for the locks of its own transaction) or
// the database refused a row (isolating it needs the whole batch).
func (s *sink) pipelined(ctx context.Context, recs []record.Record) ([]rejection, error) {
	type planned struct {
		items []item
		rej   []rejection
		err   error
	}
	pctx, cancel := context.WithCancel(ctx)
	ch := make(chan planned, 1)
	go func() {
		defer close(ch)
		for start := 0; start < len(recs); start += chunk {
			items, rej, err := s.plan(pctx, recs[start:min(start+chunk, len(recs))], true)
			for i := range items {
				items[i].rec += start
			}
			for i := range rej {
				rej[i].item.rec += start
			}
			select {
			case ch <- planned{items, rej, err}:
			case <-pctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range ch { // the reader is done with the scratch space
		}
	}()
	var rejected []rejection
	err := s.withSession(ctx, func(sess session) error {
		if err := s.begin(ctx, sess); err != nil {
			return err
		}
		pg, streams := sess.(pgSession)
		var cs *copyStream
		// failed rolls back after err and says what the batch comes to.
		failed := func(err error) error {
			if cs != nil {
				cs.close()
			}
			if rerr := s.end(ctx, sess, "ROLLBACK"); rerr != nil {
				return err
			}
			if errors.Is(err, errNotPlain) {
				s.log.Info().Str("why", err.Error()).Msg("COPY to the table in the text format from now on")
			}
			if errors.Is(err, errNeedsDDL) || errors.Is(err, errNotPlain) || s.rowLevel(err) {
				s.log.Debug().Str("why", sqldb.Describe(err)).Msg("writing the batch again, whole")
				return errWhole
			}
			return err
		}
		for p := range ch {
			err := p.err
			if err == nil {
				rejected = append(rejected, p.rej...)
				if streams {
					err = s.runStreaming(ctx, pg, p.items, &cs)
				} else {
					err = s.run(ctx, sess, p.items)
				}
			}
			if err != nil {
				return failed(err)
			}
		}
		if cs != nil {
			err := cs.close()
			cs = nil
			if err != nil {
				return failed(err)
			}
		}
		if err := pctx.Err(); err != nil {
			s.end(ctx, sess, "ROLLBACK")
			return err
		}
		return s.end(ctx, sess, "COMMIT")
	})
	return rejected, err
}

// whole reads recs, making tables and adding columns as the options
// allow, and writes them in one transaction, isolating the rows that the
// database refuses (writeItems).
func (s *sink) whole(ctx context.Context, recs []record.Record) ([]rejection, error) {
	items, rejected, err := s.plan(ctx, recs, false)
	if err != nil {
		return nil, err
	}
	var refused []rejection
	err = s.withSession(ctx, func(sess session) error {
		var err error
		refused, err = s.writeItems(ctx, sess, items)
		return err
	})
	return append(rejected, refused...), err
}

// withSession runs f on one connection of the pool. Should f fail with
// a transaction open, the connection is rolled back, or dropped.
func (s *sink) withSession(ctx context.Context, f func(session) error) error {
	if s.db.Dialect == sqldb.Postgres {
		return s.db.WithPgx(ctx, func(c *pgx.Conn) error {
			err := f(pgSession{c})
			if err != nil && !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
				if rerr := (pgSession{c}).exec(ctx, "ROLLBACK"); rerr != nil {
					c.Close(ctx)
				}
			}
			return err
		})
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = f(sqlSession{conn})
	if err != nil {
		// The transaction may still be open on the connection: roll it
		// back, or have the pool drop the connection.
		if rerr := (sqlSession{conn}).exec(ctx, "ROLLBACK"); rerr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	return err
}

// rejected makes the dead letter of a record: one the database refused
// says so, with the SQLSTATE in a header too.
func (s *sink) rejected(r record.Record, err error) connector.RejectedRecord {
	err = s.db.Err(err)
	code := sqldb.Code(err)
	if code == "" {
		return connector.RejectedRecord{Record: r, Reason: err.Error()}
	}
	return connector.RejectedRecord{Record: r, Reason: "refused by the database: " + sqldb.Describe(err),
		Headers: []record.Header{{Key: HeaderSQLState, Value: []byte(code)}}}
}

// failed returns the error that ends a write that failed as a whole: a
// lost connection (or a deadlock) is transient, so is a table or column
// that went missing (the tables are looked up again); the rest stops the
// sink.
func (s *sink) failed(ctx context.Context, err error) error {
	err = s.db.Err(err)
	var st stopped
	if ctx.Err() != nil || errors.As(err, &st) {
		return err
	}
	switch {
	case missing(err):
		clear(s.tables)
		return connector.Transient(fmt.Errorf("%s (looking the tables up again)", explain(err)))
	case sqldb.Transient(err):
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		perr := s.db.PingContext(pctx)
		cancel()
		if perr != nil && !s.down {
			s.down = true
			s.env.Reconnecting()
			s.log.Warn().Str("error", sqldb.Describe(err)).Msg("lost the database connection, reconnecting")
		}
		return connector.Transient(errors.New(explain(err)))
	}
	return errors.New(explain(err))
}

// explain is err's message with the database's part as sqldb.Describe
// words it (SQLSTATE, message, detail), after what the sink was doing.
func explain(err error) string {
	var inner error
	var pg *pgconn.PgError
	var my *mysql.MySQLError
	switch {
	case errors.As(err, &pg):
		inner = pg
	case errors.As(err, &my):
		inner = my
	default:
		return err.Error()
	}
	if doing, ok := strings.CutSuffix(err.Error(), inner.Error()); ok {
		return doing + sqldb.Describe(inner)
	}
	return sqldb.Describe(err)
}

// reconnect waits, after a lost connection, until the database answers
// again, retrying with --max-retries' backoff (forever by default).
func (s *sink) reconnect(ctx context.Context) error {
	if !s.down {
		return nil
	}
	b := s.opts.Limit.Backoff()
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.db.PingContext(pctx)
		cancel()
		if err == nil {
			s.down = false
			s.env.Reconnected()
			s.log.Info().Str("database", s.db.Display).Msg("reconnected to the database")
			return nil
		}
		err = s.db.Err(err)
		if !sqldb.Transient(err) {
			return fmt.Errorf("reconnecting to %s: %s", s.db.Display, sqldb.Describe(err))
		}
		if err := b.Failed(ctx, s.log, "reconnecting to "+s.db.Display, attempt, err, nil); err != nil {
			return err
		}
	}
}

// Close closes the database. It is idempotent.
func (s *sink) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}
