package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// snapTable is a table of the publication, as the snapshot reads it.
type snapTable struct {
	oid           uint32
	schema, name  string
	cols          []string // the publication's column list (PostgreSQL 15), nil for none
	filter        *string  // the publication's row filter (PostgreSQL 15)
	pk            []string
	relation      *relation
	selectColumns string
}

// snapshot publishes every row of the publication's tables as it was at
// the slot's consistent point: it reads them in a REPEATABLE READ
// transaction that imports the snapshot the slot's creation exported, so
// that the changes streamed from the slot afterwards start exactly where
// the rows end. The rows are published in batches of --max-tx-records;
// the last batch saves the consistent point as the position.
func (s *source) snapshot(ctx context.Context, name string, point pglogrepl.LSN) error {
	started := time.Now()
	m := meta{lsn: point, ts: started}
	total := 0
	err := s.db.WithPgx(ctx, func(c *pgx.Conn) error {
		exec := func(q string) error {
			_, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
			return err
		}
		if err := exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return err
		}
		defer exec("ROLLBACK")
		if err := exec("SET TRANSACTION SNAPSHOT '" + strings.ReplaceAll(name, "'", "''") + "'"); err != nil {
			return fmt.Errorf("importing the slot's snapshot %s: %w", name, err)
		}
		for k, v := range sessionParams {
			if err := exec("SET LOCAL " + k + " = '" + v + "'"); err != nil {
				return err
			}
		}
		tables, err := s.snapshotTables(ctx, c)
		if err != nil {
			return err
		}
		if len(tables) > 0 {
			// As pg_dump does: no ALTER or DROP of a table until its rows
			// are read (writes go on). The tables are then listed again.
			names := make([]string, len(tables))
			for i, t := range tables {
				names[i] = sqldb.Postgres.Quote(t.schema) + "." + sqldb.Postgres.Quote(t.name)
			}
			if err := exec("LOCK TABLE " + strings.Join(names, ", ") + " IN ACCESS SHARE MODE"); err != nil {
				return fmt.Errorf("locking the publication's tables: %w", err)
			}
			if tables, err = s.snapshotTables(ctx, c); err != nil {
				return err
			}
		}
		var recs []record.Record
		for _, t := range tables {
			q := "SELECT " + t.selectColumns + " FROM " + sqldb.Postgres.Quote(t.schema) + "." + sqldb.Postgres.Quote(t.name)
			if t.filter != nil {
				q += " WHERE " + *t.filter
			}
			rows, err := c.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return fmt.Errorf("reading %s.%s: %w", t.schema, t.name, err)
			}
			if t.relation == nil {
				fds := rows.FieldDescriptions()
				names := make([]string, len(fds))
				oids := make([]uint32, len(fds))
				for i, fd := range fds {
					names[i], oids[i] = fd.Name, fd.DataTypeOID
				}
				t.relation = newRelation(t.oid, t.schema, t.name, 'd', names, oids, nil, t.pk)
			}
			n := 0
			for rows.Next() {
				recs = append(recs, s.dec.record(t.relation, opRead, row{}, row{vals: nonNil(rows.RawValues()), set: true}, false, m))
				n++
				if len(recs) >= s.opts.MaxTxRecords {
					b := connector.Batch{Records: recs, Ack: s.ackTo(0)}
					if s.keep {
						b.Position = position{Snapshot: "started"}.encode()
					}
					if err := s.handOver(ctx, b); err != nil {
						rows.Close()
						return err
					}
					recs = nil
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("reading %s.%s: %w", t.schema, t.name, err)
			}
			total += n
			s.log.Info().Str("table", t.schema+"."+t.name).Int("rows", n).Msg("snapshot of the table read")
		}
		b := connector.Batch{Records: recs, Ack: s.ackTo(point)}
		if s.keep {
			b.Position = position{LSN: lsn(point)}.encode()
		}
		return s.handOver(ctx, b)
	})
	if err != nil {
		return fmt.Errorf("snapshot: %w", s.target.Err(err))
	}
	s.log.Info().Int("rows", total).Dur("took", time.Since(started)).Str("consistent_point", point.String()).Msg("snapshot done: streaming changes")
	return nil
}

// nonNil makes the raw values of a row a row's values in place: NULL is
// nil, an empty value is empty but not nil. They are read before the next
// row.
func nonNil(raw [][]byte) [][]byte {
	for i, v := range raw {
		if v != nil && len(v) == 0 {
			raw[i] = []byte{}
		}
	}
	return raw
}

// snapshotTables lists the publication's tables, within the snapshot, with
// their column lists and row filters (PostgreSQL 15 and later) and their
// primary keys.
func (s *source) snapshotTables(ctx context.Context, c *pgx.Conn) ([]*snapTable, error) {
	var version int
	if err := c.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, err
	}
	extra := "NULL::text[], NULL::text"
	if version >= 150000 {
		// attnames only where the publication has a column list: without
		// one, SELECT * reads the columns the table has now (the view
		// reads the catalog as the snapshot saw it, and a column dropped
		// since would not parse).
		extra = `CASE WHEN EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication pb ON pb.oid = pr.prpubid
			WHERE pb.pubname = p.pubname AND pr.prrelid = c.oid AND pr.prattrs IS NOT NULL) THEN p.attnames END, p.rowfilter`
	}
	rows, err := c.Query(ctx, `
SELECT c.oid, p.schemaname, p.tablename, `+extra+`
FROM pg_publication_tables p
JOIN pg_namespace n ON n.nspname = p.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
WHERE p.pubname = $1 ORDER BY 2, 3`, s.opts.Publication)
	if err != nil {
		return nil, fmt.Errorf("reading the tables of publication %q: %w", s.opts.Publication, err)
	}
	var tables []*snapTable
	for rows.Next() {
		t := &snapTable{}
		if err := rows.Scan(&t.oid, &t.schema, &t.name, &t.cols, &t.filter); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.pk, err = s.primaryKey(ctx, s.db, t.oid); err != nil {
			return nil, err
		}
		t.selectColumns = "*"
		if t.cols != nil {
			q := make([]string, len(t.cols))
			for i, col := range t.cols {
				q[i] = sqldb.Postgres.Quote(col)
			}
			t.selectColumns = strings.Join(q, ", ")
		}
	}
	return tables, nil
}
