package main

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
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
	// attempts counts the parts of a batch tried while isolating refused
	// rows (logged).
	attempts int

	// Scratch space, reused from write to write.
	names   names
	fields  []field
	colSlab []*column
	valSlab []jval
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
	return &sink{opts: *opts, p: p, env: env, log: env.Log, tables: map[string]*table{}, names: names{}}, nil
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

// Write writes recs in one database transaction (see writeItems) and
// returns once it committed. Records that cannot be written (not a JSON
// object, no such column, refused by the database) are rejected with
// why; a lost connection is transient: the runner writes the batch again
// once the database is back (see reconnect).
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	if err := s.reconnect(ctx); err != nil {
		return err
	}
	items, rejected, err := s.plan(ctx, recs)
	if err == nil {
		var refused []rejection
		refused, err = s.writeAll(ctx, items)
		rejected = append(rejected, refused...)
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

// writeAll writes items on one connection.
func (s *sink) writeAll(ctx context.Context, items []item) (rej []rejection, err error) {
	if s.db.Dialect == sqldb.Postgres {
		err = s.db.WithPgx(ctx, func(c *pgx.Conn) error {
			var err error
			rej, err = s.writeItems(ctx, pgSession{c}, items)
			return err
		})
		return rej, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rej, err = s.writeItems(ctx, sqlSession{conn}, items)
	if err != nil {
		// The transaction may still be open on the connection: roll it
		// back, or have the pool drop the connection.
		if rerr := (sqlSession{conn}).exec(ctx, "ROLLBACK"); rerr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	return rej, err
}

// rejected makes the dead letter of a record: one the database refused
// says so, with the SQLSTATE in a header too.
func (s *sink) rejected(r record.Record, err error) connector.RejectedRecord {
	code := sqldb.Code(err)
	if code == "" {
		return connector.RejectedRecord{Record: r, Reason: err.Error()}
	}
	err = s.db.Err(err)
	return connector.RejectedRecord{Record: r, Reason: "refused by the database: " + sqldb.Describe(err),
		Headers: []record.Header{{Key: HeaderSQLState, Value: []byte(code)}}}
}

// failed returns the error that ends a write that failed as a whole: a
// lost connection (or a deadlock) is transient, so is a table or column
// that went missing (the tables are looked up again); the rest stops the
// sink.
func (s *sink) failed(ctx context.Context, err error) error {
	err = s.db.Err(err)
	if ctx.Err() != nil {
		return err
	}
	switch {
	case missing(err):
		clear(s.tables)
		return connector.Transient(fmt.Errorf("%s (looking the tables up again)", sqldb.Describe(err)))
	case sqldb.Transient(err):
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		perr := s.db.PingContext(pctx)
		cancel()
		if perr != nil && !s.down {
			s.down = true
			s.env.Reconnecting()
			s.log.Warn().Str("error", sqldb.Describe(err)).Msg("lost the database connection, reconnecting")
		}
		return connector.Transient(fmt.Errorf("%s", sqldb.Describe(err)))
	}
	return fmt.Errorf("%s", sqldb.Describe(err))
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
