package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// source streams a publication's changes from a logical replication slot.
//
// One goroutine (run) owns the replication connection: it takes the
// snapshot when the slot is new, then receives pgoutput's messages,
// gathers each transaction and hands it to Read as one batch. The batch's
// Ack (the records are durable on the bus) moves acked forward; the
// standby status updates, every --status-interval and when the server
// asks, report acked as the flushed position, so the slot's confirmed
// position never passes what is on the bus.
type source struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger
	// keep: positions are saved on the bus (not --slot-drop-on-stop).
	keep bool

	target *sqldb.Target
	db     *sqldb.DB
	dec    *decoder
	rels   map[uint32]*relation
	// noKeyReported are the tables reported as having no primary key.
	noKeyReported map[uint32]bool
	metrics       *metrics

	resume position
	// newSlot: the slot is to be created (and a snapshot taken with
	// --snapshot initial) by run; dropFirst: an old one is dropped first
	// (an interrupted snapshot).
	newSlot, dropFirst bool

	out    chan connector.Batch
	fatal  chan error
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// confirmed is the slot's confirmed position when streaming started.
	confirmed pglogrepl.LSN
	// acked is the end of the last transaction durable on the bus.
	acked atomic.Uint64
	// handed and ackedN count the batches handed to Read and acknowledged.
	handed, ackedN atomic.Int64
	// failed: a batch could not be published; nothing is confirmed past it.
	failed atomic.Bool
	// progress is when (Unix ns) a batch was last acknowledged, or handed
	// to Read when none was waiting.
	progress atomic.Int64

	// Owned by run:
	tx *txn
	// handedEnd is the end of the last transaction handed to Read.
	handedEnd pglogrepl.LSN
	// skipBefore: transactions that committed before it are on the bus
	// already (or on their way there).
	skipBefore pglogrepl.LSN
	// skipTx, skipTxRecords: the first records of the transaction that
	// commits at skipTx are on the bus already.
	skipTx        pglogrepl.LSN
	skipTxRecords int
	// walEnd is the furthest position the server said it has sent.
	walEnd pglogrepl.LSN
	// conn is the replication connection while streaming; detached: it
	// was let go of while handOver waited.
	conn     *pgconn.PgConn
	detached bool
}

// txn is a transaction being received.
type txn struct {
	final pglogrepl.LSN // its commit's LSN
	xid   uint32
	ts    time.Time
	recs  []record.Record
	// count is the records of the transaction so far, handed or not.
	count int
	// skip: the whole transaction is on the bus already; skipRecords: its
	// first records are.
	skip        bool
	skipRecords int
	// chunks: batches of it already handed to Read (--max-tx-records).
	chunks int
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	o := *opts
	if o.Slot == "" {
		o.Slot = defaultSlot(env.Topic)
	}
	t, err := o.Target()
	if err != nil {
		return nil, err
	}
	return &source{opts: o, env: env, log: env.Log.With().Str("slot", o.Slot).Logger(), keep: !o.SlotDropOnStop, target: t,
		dec: newDecoder(), rels: map[uint32]*relation{}, noKeyReported: map[uint32]bool{}}, nil
}

// PositionKey keeps the position on the bus under the slot's name, but
// for throwaway runs (--slot-drop-on-stop).
func (s *source) PositionKey() string {
	if !s.keep {
		return ""
	}
	return s.opts.Slot
}

// Open connects, checks the server, creates the publication when it is
// missing, reports tables without a primary key, finds out whether the
// slot is new, and starts the replication goroutine.
func (s *source) Open(ctx context.Context, resume []byte) error {
	s.opts.Warn(s.log)
	var err error
	if s.keep {
		if s.resume, err = decodePosition(resume); err != nil {
			return err
		}
	}
	if s.db, err = s.opts.Open(ctx, s.log); err != nil {
		return err
	}
	if err := s.setup(ctx); err != nil {
		s.db.Close()
		s.db = nil
		return err
	}
	s.metrics = newMetrics(s.env, s.opts.Slot)
	s.out = make(chan connector.Batch, 8)
	s.fatal = make(chan error, 1)
	s.done = make(chan struct{})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.pollLag(runCtx)
	go func() {
		defer close(s.done)
		if err := s.run(runCtx); err != nil && runCtx.Err() == nil {
			s.fatal <- err
		}
	}()
	return nil
}

// setup does what Open checks and prepares on the normal connection.
func (s *source) setup(ctx context.Context) error {
	var walLevel string
	if err := s.db.QueryRowContext(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("reading wal_level: %w", s.db.Err(err))
	}
	if walLevel != "logical" {
		return fmt.Errorf("the server's wal_level is %s: logical replication needs wal_level = logical (in postgresql.conf, then a restart of the server)", walLevel)
	}
	// The server drops a replication client silent for wal_sender_timeout.
	var timeoutMS int64
	if err := s.db.QueryRowContext(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_sender_timeout'").Scan(&timeoutMS); err == nil &&
		timeoutMS > 0 && s.opts.StatusInterval.D() >= time.Duration(timeoutMS)*time.Millisecond/2 {
		s.log.Warn().Str("status_interval", s.opts.StatusInterval.String()).Dur("wal_sender_timeout", time.Duration(timeoutMS)*time.Millisecond).
			Msg("--status-interval is not well below the server's wal_sender_timeout: the server may drop the replication connection between two status updates")
	}
	if err := s.ensurePublication(ctx); err != nil {
		return err
	}
	if err := s.reportTables(ctx); err != nil {
		return err
	}
	var plugin, database string
	var confirmed sql.NullString
	var ours string
	err := s.db.QueryRowContext(ctx, "SELECT s.plugin, s.database, s.confirmed_flush_lsn::text, current_database() FROM pg_replication_slots s WHERE s.slot_name = $1", s.opts.Slot).
		Scan(&plugin, &database, &confirmed, &ours)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading replication slot %q: %w", s.opts.Slot, s.db.Err(err))
	}
	if exists && (plugin != "pgoutput" || database != ours) {
		return fmt.Errorf("replication slot %q exists for plugin %s on database %s: postgres-cdc-source needs a pgoutput slot on %s (give another --slot)", s.opts.Slot, plugin, database, ours)
	}
	switch {
	case s.resume.Snapshot == "started":
		// The snapshot was interrupted: it is taken again from the start,
		// on a new slot (the exported snapshot died with the connection).
		s.newSlot, s.dropFirst = true, exists
		s.log.Warn().Msg("the initial snapshot was interrupted: taking it again from the start, with a new slot (rows already published come again)")
	case !exists && s.resume.LSN != 0:
		return fmt.Errorf("replication slot %q does not exist, though the bus holds a position read from it (%s): the changes made since it was dropped are lost to it; "+
			"to start over (with a snapshot), give a new --slot", s.opts.Slot, pglogrepl.LSN(s.resume.LSN))
	case !exists:
		s.newSlot = true
	default:
		if s.confirmed, err = pglogrepl.ParseLSN(confirmed.String); err != nil {
			return fmt.Errorf("replication slot %q: confirmed_flush_lsn %q: %w", s.opts.Slot, confirmed.String, err)
		}
		s.log.Info().Str("confirmed_flush_lsn", s.confirmed.String()).Str("saved_lsn", pglogrepl.LSN(s.resume.LSN).String()).
			Msg("reusing the replication slot (no snapshot)")
	}
	s.acked.Store(uint64(max(s.confirmed, pglogrepl.LSN(s.resume.LSN))))
	s.skipBefore = pglogrepl.LSN(s.resume.LSN)
	s.skipTx, s.skipTxRecords = pglogrepl.LSN(s.resume.Tx), s.resume.TxRecords
	return nil
}

// ensurePublication creates the publication when it is missing; an
// existing one is used as it is, but must hold every --table.
func (s *source) ensurePublication(ctx context.Context) error {
	q := sqldb.Postgres.Quote
	var exists bool
	if err := s.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.opts.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("reading publication %q: %w", s.opts.Publication, s.db.Err(err))
	}
	if !exists {
		stmt := "CREATE PUBLICATION " + q(s.opts.Publication) + " FOR ALL TABLES"
		if len(s.opts.Table) > 0 {
			names := make([]string, len(s.opts.Table))
			for i, t := range s.opts.Table {
				sch, tb, _ := splitTable(t)
				names[i] = q(sch) + "." + q(tb)
			}
			stmt = "CREATE PUBLICATION " + q(s.opts.Publication) + " FOR TABLE " + strings.Join(names, ", ")
		}
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating publication %q (%s): %w", s.opts.Publication, stmt, s.db.Err(err))
		}
		s.log.Info().Str("publication", s.opts.Publication).Str("statement", stmt).Msg("created the publication")
		return nil
	}
	for _, t := range s.opts.Table {
		sch, tb, _ := splitTable(t)
		var in bool
		err := s.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
			s.opts.Publication, sch, tb).Scan(&in)
		if err != nil {
			return fmt.Errorf("reading publication %q: %w", s.opts.Publication, s.db.Err(err))
		}
		if !in {
			return fmt.Errorf("publication %q exists without table %s.%s: add it (ALTER PUBLICATION %s ADD TABLE %s.%s) or give another --publication",
				s.opts.Publication, sch, tb, q(s.opts.Publication), q(sch), q(tb))
		}
	}
	s.log.Info().Str("publication", s.opts.Publication).Msg("using the existing publication")
	return nil
}

// reportTables logs the publication's tables, and warns about those
// without a primary key: their records have a null key.
func (s *source) reportTables(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `
SELECT c.oid, p.schemaname, p.tablename, c.relreplident::text,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_publication_tables p
JOIN pg_namespace n ON n.nspname = p.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
WHERE p.pubname = $1 ORDER BY 1, 2`, s.opts.Publication)
	if err != nil {
		return fmt.Errorf("reading the tables of publication %q: %w", s.opts.Publication, s.db.Err(err))
	}
	defer rows.Close()
	var tables, partial []string
	for rows.Next() {
		var oid uint32
		var sch, tb, ident string
		var pk bool
		if err := rows.Scan(&oid, &sch, &tb, &ident, &pk); err != nil {
			return err
		}
		name := sch + "." + tb
		tables = append(tables, name)
		if !pk {
			s.noKeyReported[oid] = true
			s.log.Warn().Str("table", name).Str("replica_identity", identName(ident)).
				Msg("table without a primary key: its records have a null key; PostgreSQL refuses UPDATE and DELETE on it " +
					"while a publication publishes them, unless it has REPLICA IDENTITY FULL or USING INDEX")
		}
		if ident != "f" {
			partial = append(partial, name)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(tables) == 0 {
		s.log.Warn().Str("publication", s.opts.Publication).Msg("the publication has no tables: nothing will be published until tables are added to it")
		return nil
	}
	s.log.Info().Str("publication", s.opts.Publication).Strs("tables", tables).Msg("publication tables")
	if len(partial) > 0 {
		s.log.Info().Strs("tables", partial).Msg("tables without REPLICA IDENTITY FULL: the before of a delete holds the key's columns only, that of an update is null unless the key changed")
	}
	return nil
}

func identName(c string) string {
	switch c {
	case "d":
		return "default"
	case "f":
		return "full"
	case "i":
		return "index"
	case "n":
		return "nothing"
	}
	return c
}

// primaryKey returns the names of the primary key's columns of a table,
// in the key's order; nil when it has none.
func (s *source) primaryKey(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, relid uint32) ([]string, error) {
	rows, err := q.QueryContext(ctx, `
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)`, relid)
	if err != nil {
		return nil, s.db.Err(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// Read returns the next batch: a transaction (or a part of a large one),
// or rows of the snapshot.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	select {
	case b := <-s.out:
		return b, nil
	case err := <-s.fatal:
		return connector.Batch{}, err
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	}
}

// ackTo returns the Ack of a batch that ends a transaction at end (0: a
// batch that ends none).
func (s *source) ackTo(end pglogrepl.LSN) func(error) {
	return func(err error) {
		if err != nil {
			s.failed.Store(true)
		} else if end != 0 {
			for {
				cur := s.acked.Load()
				if uint64(end) <= cur || s.acked.CompareAndSwap(cur, uint64(end)) {
					break
				}
			}
		}
		s.progress.Store(time.Now().UnixNano())
		s.ackedN.Add(1)
	}
}

// Close stops replication after a last status update (so that the slot's
// confirmed position is what is on the bus), drops the slot with
// --slot-drop-on-stop, and closes the connections.
func (s *source) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		if s.metrics != nil {
			s.metrics.unregister()
		}
		if s.db == nil {
			return
		}
		if s.opts.SlotDropOnStop {
			s.dropSlot()
		}
		s.db.Close()
	})
	return nil
}

// dropSlot drops the slot (--slot-drop-on-stop), waiting a little for the
// server to release it from the replication connection just closed.
func (s *source) dropSlot() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, err := s.db.ExecContext(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", s.opts.Slot)
		if err == nil {
			s.log.Info().Msg("dropped the replication slot (--slot-drop-on-stop)")
			return
		}
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "55006" || ctx.Err() != nil { // 55006: the slot is still active
			s.log.Error().Err(s.db.Err(err)).Msg("could not drop the replication slot (--slot-drop-on-stop): drop it by hand (see the README)")
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
