package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// sessionParams are set on every session of the connector, so that
// values come in the text forms values.go reads.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"bytea_output":       "hex",
	"extra_float_digits": "1",
}

// run keeps a replication session going: when the connection is lost (a
// server restart, the network), it connects again with --max-retries'
// backoff and resumes from what it handed to Read.
func (s *source) run(ctx context.Context) error {
	b := s.opts.Limit.Backoff()
	attempt := 0
	lost, waited := false, false
	for {
		resume := ""
		switch {
		case lost:
			resume = "replication resumed after reconnecting"
		case waited:
			resume = "replication resumed after waiting"
		}
		streamed, err := s.session(ctx, resume)
		if ctx.Err() != nil {
			return nil
		}
		if streamed {
			attempt, lost, waited = 0, false, false
		}
		if errors.Is(err, errDetached) {
			if err := s.waitAcked(ctx); err != nil {
				return nil
			}
			waited = true
			continue
		}
		if err == nil {
			err = errors.New("the server ended replication")
		}
		if !transient(err) {
			return err
		}
		if !lost {
			lost = true
			s.env.Reconnecting()
			s.log.Warn().Err(err).Msg("replication connection lost: connecting again")
		}
		attempt++
		if err := b.Failed(ctx, s.log, "connecting to "+s.target.Display, attempt, err, nil); err != nil {
			return err
		}
	}
}

// transient says whether a replication error may pass on a later try:
// sqldb's rule, and a slot still held by the session that was lost.
func transient(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "55006" { // object_in_use: the slot is active for another PID
		return true
	}
	return sqldb.Transient(err)
}

// session runs one replication connection: it creates the slot (and
// takes the snapshot) when that is still to do, then streams. resume is
// what to log once replication started again ("" for the first time);
// streamed says it started.
func (s *source) session(ctx context.Context, resume string) (streamed bool, err error) {
	cfg := s.target.PgConfig.Config.Copy()
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "postgres-cdc-source"
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(newBatchingReader(r), w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("replication connection to %s: %w", s.target.Display, s.target.Err(err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if s.newSlot {
		if err := s.createSlot(ctx, conn); err != nil {
			return false, err
		}
	}
	start := max(pglogrepl.LSN(s.acked.Load()), s.handedEnd)
	// What was handed to Read is on its way to the bus: not again.
	s.skipBefore = max(s.skipBefore, s.handedEnd)
	if s.tx != nil && s.tx.chunks > 0 {
		s.skipTx, s.skipTxRecords = s.tx.final, s.tx.count-len(s.tx.recs)
	}
	s.tx = nil
	err = pglogrepl.StartReplication(ctx, conn, s.opts.Slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '\"" + s.opts.Publication + "\"'"},
	})
	if err != nil {
		return false, fmt.Errorf("starting replication from slot %q at %s: %w", s.opts.Slot, start, s.target.Err(err))
	}
	if resume != "" {
		if resume == "replication resumed after reconnecting" {
			s.env.Reconnected()
		}
		s.log.Info().Str("from", start.String()).Msg(resume)
	} else {
		s.log.Info().Str("from", start.String()).Str("publication", s.opts.Publication).Msg("replication started")
	}
	return true, s.stream(ctx, conn)
}

// createSlot creates the slot; with --snapshot initial it publishes the
// publication's rows from the snapshot the creation exported first.
func (s *source) createSlot(ctx context.Context, conn *pgconn.PgConn) error {
	snap := s.opts.Snapshot == "initial"
	if snap && s.keep && s.resume.Snapshot != "started" {
		// Saved before the slot exists: a connector killed from now until
		// the snapshot's end takes it again (see setup).
		if err := s.markSnapshot(ctx); err != nil {
			return err
		}
	}
	if s.dropFirst {
		if err := pglogrepl.DropReplicationSlot(ctx, conn, s.opts.Slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
			var pg *pgconn.PgError
			if !errors.As(err, &pg) || pg.Code != "42704" { // undefined_object: gone already
				return fmt.Errorf("dropping replication slot %q: %w", s.opts.Slot, s.target.Err(err))
			}
		}
		s.dropFirst = false
	}
	action := "NOEXPORT_SNAPSHOT"
	if snap {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.opts.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		return fmt.Errorf("creating replication slot %q: %w", s.opts.Slot, s.target.Err(err))
	}
	s.dropFirst = true // if this session fails before the end, the next one starts over
	point, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("creating replication slot %q: consistent point %q: %w", s.opts.Slot, res.ConsistentPoint, err)
	}
	s.log.Info().Str("consistent_point", point.String()).Msg("created the replication slot")
	if snap {
		if err := s.snapshot(ctx, res.SnapshotName, point); err != nil {
			return err
		}
	} else if s.keep {
		if err := s.handOver(ctx, connector.Batch{Position: position{LSN: lsn(point)}.encode(), Ack: s.ackTo(point)}); err != nil {
			return err
		}
	}
	s.newSlot, s.dropFirst = false, false
	s.resume.Snapshot = ""
	s.confirmed = point
	s.acked.Store(uint64(point))
	s.handedEnd = point
	return nil
}

// markSnapshot saves "snapshot started" on the bus and waits until it is
// durable.
func (s *source) markSnapshot(ctx context.Context) error {
	done := make(chan error, 1)
	b := connector.Batch{Position: position{Snapshot: "started"}.encode(), Ack: func(err error) {
		s.ackTo(0)(err)
		done <- err
	}}
	if err := s.handOver(ctx, b); err != nil {
		return err
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("saving the position before the snapshot: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	s.resume.Snapshot = "started"
	return nil
}

// handOver gives a batch to Read, waiting while Read does not take it
// (the connector is paused, the bus is slow); while it waits, the
// replication connection may be let go of (see stuck).
func (s *source) handOver(ctx context.Context, b connector.Batch) error {
	if s.handed.Load() == s.ackedN.Load() {
		s.progress.Store(time.Now().UnixNano())
	}
	s.handed.Add(1)
	select {
	case s.out <- b:
		return nil
	default:
	}
	var tc <-chan time.Time
	if s.conn != nil {
		t := time.NewTicker(s.opts.StatusInterval.D())
		defer t.Stop()
		tc = t.C
	}
	for {
		select {
		case s.out <- b:
			return nil
		case <-tc:
			if s.conn != nil && s.stuck() {
				s.detach()
			}
		case <-ctx.Done():
			s.handed.Add(-1)
			return ctx.Err()
		}
	}
}

// stuck says that batches handed to Read have waited longer than
// --status-interval without one becoming durable on the bus (the
// connector is paused, the bus is down). The replication connection is
// then let go of until they are: the server must not be held, as a
// walsender waits for its client to confirm everything it sent before
// a fast shutdown of the server completes.
func (s *source) stuck() bool {
	return s.handed.Load() > s.ackedN.Load() && time.Since(time.Unix(0, s.progress.Load())) > s.opts.StatusInterval.D()
}

// errDetached ends a stream whose connection was let go of (stuck).
var errDetached = errors.New("replication connection let go of while records wait")

// detach closes the replication connection after a last status update.
func (s *source) detach() {
	s.lastStatus(s.conn)
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.conn.Close(cctx)
	cancel()
	s.conn = nil
	s.detached = true
	s.log.Info().Msg("records wait longer than --status-interval to be durable on the bus (paused, or a slow bus): " +
		"let go of the replication connection until they are")
}

// waitAcked waits until every batch handed to Read was acknowledged.
func (s *source) waitAcked(ctx context.Context) error {
	for s.handed.Load() > s.ackedN.Load() {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// confirmable is the position the slot may confirm: the end of the last
// transaction durable on the bus; or, when everything handed to Read is
// durable and no transaction is open, the furthest position the server
// sent (WAL without changes for this publication needs no keeping).
func (s *source) confirmable() pglogrepl.LSN {
	acked := pglogrepl.LSN(s.acked.Load())
	if s.tx == nil && !s.failed.Load() && s.handed.Load() == s.ackedN.Load() && s.walEnd > acked {
		return s.walEnd
	}
	return acked
}

// status sends a standby status update: what is durable on the bus is
// flushed.
func (s *source) status(conn *pgconn.PgConn) error {
	pos := s.confirmable()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos})
	if err != nil {
		return fmt.Errorf("sending a standby status update: %w", err)
	}
	return nil
}

// lastStatus sends a status update before the connection is closed, and
// waits (5s at most) until the slot shows it: a walsender that fails to
// send to a client that closed its connection exits without reading
// what the client sent last.
func (s *source) lastStatus(conn *pgconn.PgConn) {
	pos := s.confirmable()
	if err := s.status(conn); err != nil {
		s.log.Warn().Err(err).Msg("the last status update before closing the replication connection")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		var done bool
		err := s.db.QueryRowContext(ctx, "SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1", s.opts.Slot, pos.String()).Scan(&done)
		if err != nil || done {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Warn().Str("lsn", pos.String()).Msg("the slot did not confirm the last status update within 5s: what follows may come again")
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stream receives pgoutput's messages until ctx is done (then it sends a
// last status update) or the connection fails.
func (s *source) stream(ctx context.Context, conn *pgconn.PgConn) error {
	nc := conn.Conn()
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer stop()
	interval := s.opts.StatusInterval.D()
	next := time.Now().Add(interval)
	s.conn = conn
	defer func() { s.conn = nil }()
	var deadline time.Time
	for {
		if now := time.Now(); !now.Before(next) {
			if s.stuck() {
				s.detach()
				s.detached = false
				return errDetached
			}
			if err := s.status(conn); err != nil {
				return err
			}
			next = now.Add(interval)
		}
		if !next.Equal(deadline) {
			// The read deadline is when the next status update is due
			// (setting it for each message cost a tenth of the CPU time).
			nc.SetReadDeadline(next)
			deadline = next
		}
		if ctx.Err() != nil {
			s.lastStatus(conn)
			return nil
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !conn.IsClosed() {
				continue
			}
			return s.target.Err(err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("keepalive: %w", err)
				}
				s.walEnd = max(s.walEnd, k.ServerWALEnd)
				if k.ReplyRequested {
					next = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("XLogData: %w", err)
				}
				if err := s.handle(ctx, x); err != nil {
					return err
				}
				if s.detached {
					s.detached = false
					return errDetached
				}
			}
		case *pgproto3.ErrorResponse:
			return s.target.Err(pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("the server ended replication (CopyDone)")
		}
	}
}

// handle takes one pgoutput message.
func (s *source) handle(ctx context.Context, x pglogrepl.XLogData) error {
	if len(x.WALData) > 0 {
		switch x.WALData[0] {
		case 'I', 'U', 'D':
			// Most messages: read in place, without pglogrepl's copies.
			if err := s.change(ctx, x.WALData, x.WALStart); err != nil {
				return fmt.Errorf("decoding pgoutput message at %s: %w", x.WALStart, err)
			}
			return nil
		}
	}
	m, err := pglogrepl.Parse(x.WALData)
	if err != nil {
		return fmt.Errorf("decoding pgoutput message at %s: %w", x.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		s.tx = &txn{final: m.FinalLSN, xid: m.Xid, ts: m.CommitTime}
		if m.FinalLSN < s.skipBefore {
			s.tx.skip = true
		} else if m.FinalLSN == s.skipTx {
			s.tx.skipRecords = s.skipTxRecords
		}
	case *pglogrepl.CommitMessage:
		tx := s.tx
		s.tx = nil
		end := m.TransactionEndLSN
		s.walEnd = max(s.walEnd, end)
		if tx == nil || tx.skip {
			return nil
		}
		s.skipTx, s.skipTxRecords = 0, 0
		b := connector.Batch{Records: tx.recs, Ack: s.ackTo(end)}
		if s.keep {
			b.Position = position{LSN: lsn(end)}.encode()
		}
		if err := s.handOver(ctx, b); err != nil {
			return err
		}
		s.handedEnd = end
	case *pglogrepl.RelationMessage:
		return s.relation(ctx, m)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := s.relationOf(id)
			if err != nil {
				return err
			}
			if err := s.add(ctx, s.dec.truncateRecord(rel, s.meta(x.WALStart))); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *source) meta(at pglogrepl.LSN) meta {
	if s.tx == nil {
		return meta{lsn: at, ts: time.Now()}
	}
	return meta{lsn: at, txid: s.tx.xid, ts: s.tx.ts}
}

func (s *source) relationOf(id uint32) (*relation, error) {
	rel, ok := s.rels[id]
	if !ok {
		return nil, fmt.Errorf("pgoutput sent a change of relation %d before describing it", id)
	}
	return rel, nil
}

// change makes the record of an insert, update or delete, from
// pgoutput's message (Insert: I, relation, N and the new row; Update: U,
// relation, optionally K or O and the old row, N and the new row; Delete:
// D, relation, K or O and the old row).
func (s *source) change(ctx context.Context, b []byte, at pglogrepl.LSN) error {
	if s.tx == nil {
		return errors.New("a change outside a transaction")
	}
	if s.tx.skip {
		return nil
	}
	if len(b) < 6 {
		return errors.New("truncated change")
	}
	rel, err := s.relationOf(binary.BigEndian.Uint32(b[1:]))
	if err != nil {
		return err
	}
	d := s.dec
	old, new := &d.old, &d.new
	old.set, new.set = false, false
	keyOnly := false // 'O': the whole old row (REPLICA IDENTITY FULL); 'K': its key only
	i := 5
	op := opInsert
	switch b[0] {
	case 'U':
		op = opUpdate
		if b[i] == 'K' || b[i] == 'O' {
			keyOnly = b[i] == 'K'
			if i, err = parseTuple(b, i+1, old); err != nil {
				return err
			}
		}
	case 'D':
		op = opDelete
		if b[i] != 'K' && b[i] != 'O' {
			return fmt.Errorf("delete without the old row (%q)", b[i])
		}
		keyOnly = b[i] == 'K'
		if _, err = parseTuple(b, i+1, old); err != nil {
			return err
		}
	}
	if b[0] != 'D' {
		if i >= len(b) || b[i] != 'N' {
			return errors.New("change without the new row")
		}
		if _, err = parseTuple(b, i+1, new); err != nil {
			return err
		}
	}
	return s.add(ctx, d.record(rel, op, *old, *new, keyOnly, s.meta(at)))
}

// add adds a record to the open transaction, handing a part of it to
// Read when it reaches --max-tx-records.
func (s *source) add(ctx context.Context, r record.Record) error {
	tx := s.tx
	if tx == nil {
		return errors.New("pgoutput sent a change outside a transaction")
	}
	tx.count++
	if tx.count <= tx.skipRecords {
		return nil // on the bus already
	}
	tx.recs = append(tx.recs, r)
	if len(tx.recs) < s.opts.MaxTxRecords {
		return nil
	}
	b := connector.Batch{Records: tx.recs, Ack: s.ackTo(0)}
	if s.keep {
		b.Position = position{LSN: lsn(s.handedEnd), Tx: lsn(tx.final), TxRecords: tx.count}.encode()
	}
	if err := s.handOver(ctx, b); err != nil {
		return err
	}
	tx.recs = nil
	tx.chunks++
	return nil
}

// relation takes a table's description: its columns, its replica
// identity and (from the catalog) its primary key.
func (s *source) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	pk, err := s.primaryKey(ctx, s.db, m.RelationID)
	if err != nil {
		return fmt.Errorf("reading the primary key of %s.%s: %w", m.Namespace, m.RelationName, err)
	}
	names := make([]string, len(m.Columns))
	oids := make([]uint32, len(m.Columns))
	keys := make([]bool, len(m.Columns))
	for i, c := range m.Columns {
		names[i], oids[i], keys[i] = c.Name, c.DataType, c.Flags&1 != 0
	}
	rel := newRelation(m.RelationID, m.Namespace, m.RelationName, m.ReplicaIdentity, names, oids, keys, pk)
	if rel.pk == nil && !s.noKeyReported[m.RelationID] {
		s.noKeyReported[m.RelationID] = true
		if len(pk) == 0 {
			s.log.Warn().Str("table", rel.qualified()).Msg("table without a primary key: its records have a null key")
		} else {
			s.log.Warn().Str("table", rel.qualified()).Msg("the publication leaves out a column of the primary key: the records have a null key")
		}
	}
	s.rels[m.RelationID] = rel
	return nil
}
